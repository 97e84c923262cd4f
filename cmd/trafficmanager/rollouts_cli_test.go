package main

import (
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
