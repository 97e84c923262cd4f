package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/routes"
)

func TestNotBefore(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		v         string
		wantErr   bool
		given     bool
		scheduled bool
	}{
		{name: "no not_before applies now", v: ""},
		{name: "an hour ahead is scheduled", v: "2026-12-01T10:00:00Z", given: true, scheduled: true},
		{name: "an offset is accepted", v: "2026-12-01T11:00:00+01:00", given: true, scheduled: true},
		{name: "90 days ahead is the limit", v: "2027-03-01T09:00:00Z", given: true, scheduled: true},
		{name: "more than 90 days ahead is refused", v: "2027-03-01T09:00:01Z", wantErr: true},
		{name: "now applies now", v: "2026-12-01T09:00:00Z", given: true},
		{name: "a minute ago applies now", v: "2026-12-01T08:59:00Z", given: true},
		{name: "further in the past is refused", v: "2026-12-01T08:58:59Z", wantErr: true},
		{name: "years ago is refused", v: "2020-01-01T00:00:00Z", wantErr: true},
		{name: "a date without a time is refused", v: "2026-12-02", wantErr: true},
		{name: "garbage is refused", v: "tomorrow", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nb, err := parseNotBefore(tc.v, now)
			if tc.wantErr {
				e := ToError(err)
				require.Equal(t, 400, e.Status)
				require.Equal(t, "invalid_argument", e.Code)
				require.Contains(t, e.Message, "not_before")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.given, nb != nil)
			require.Equal(t, tc.scheduled, nb.scheduled())
		})
	}
}

func TestARequestHashNamesItsNotBefore(t *testing.T) {
	a := &notBefore{at: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	b := &notBefore{at: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	var none *notBefore
	require.NotEqual(t, a.requestHash(testMutation), b.requestHash(testMutation))
	require.NotEqual(t, none.requestHash(testMutation), a.requestHash(testMutation))
}

var testMutation = routes.Mutation{Action: routes.ActionUpdated, Key: routes.Key{Tenant: "team-a", Service: "payments", Env: "prod", Version: "v2"}, URL: "https://p.example"}
