package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRolloutStepsAndIdsAreReadFromTheCommandLine(t *testing.T) {
	st, err := parseRolloutStep("10:5m")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"weight": 10, "pause": "5m"}, st)
	st, err = parseRolloutStep("100")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"weight": 100}, st)
	for _, bad := range []string{"ten:5m", "10:soon", ""} {
		_, err := parseRolloutStep(bad)
		require.Error(t, err, bad)
	}
	p, err := rolloutPath("rollout/team-a/checkout/prod/k1")
	require.NoError(t, err)
	require.Equal(t, "/api/v1/rollouts/team-a/checkout/prod/k1", p)
	p, err = rolloutPath("team-a/checkout/prod/k1")
	require.NoError(t, err)
	require.Equal(t, "/api/v1/rollouts/team-a/checkout/prod/k1", p)
	_, err = rolloutPath("k1")
	require.Error(t, err)
}

func TestRolloutsListPrintsAPageAndItsNextCursor(t *testing.T) {
	bin := buildBinary(t)
	f, api := newFakeAPI(t, map[string]fakeAnswer{
		"GET /api/v1/rollouts": {200, `{"rollouts":[
			{"id":"team-a/checkout/prod/k1","workflow_id":"rollout/team-a/checkout/prod/k1","status":"awaiting_approval",
			 "service":"checkout","env":"prod","to":"v2","started_at":"2026-11-29T21:00:00Z"}],"next_cursor":"c2"}`},
	})
	flags := []string{"--api-url", api, "--token", "tm_reader"}
	res := runCLI(t, bin, nil, append([]string{"rollouts", "list", "--tenant", "team-a", "--status", "awaiting_approval", "--limit", "1", "--cursor", "c1"}, flags...)...)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 3, res.stdout)
	require.Regexp(t, `^ID\s+STATUS\s+TO\s+STARTED$`, lines[0])
	require.Regexp(t, `^team-a/checkout/prod/k1\s+awaiting_approval\s+v2\s+2026-11-29T21:00:00Z$`, lines[1])
	require.Contains(t, lines[2], "--cursor c2")
	sent := f.sent()
	require.Len(t, sent, 1)
	require.Equal(t, "cursor=c1&limit=1&status=awaiting_approval&tenant=team-a", sent[0].query)

	res = runCLI(t, bin, nil, append([]string{"rollouts", "list", "--limit", "201"}, flags...)...)
	require.Equal(t, 2, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
}
