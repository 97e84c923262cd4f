package consistency_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// A time-boxed change and its revert are two revisions like any others,
// and a skipped revert (its ledger row a rejection) is no discrepancy.
func TestCheckCountsRevertsAsRevisionsAndSkippedRevertsAsRejections(t *testing.T) {
	s := newStores(t)
	ctx := context.Background()
	store := routes.NewStore(s.pool)
	auditLog := audit.NewStore(s.coll.Database())
	k := routes.Key{Tenant: testenv.Name(t, "team"), Service: "payments", Env: "prod", Version: "v1"}
	apply := func(m routes.Mutation) error {
		m.Key = k
		res, err := store.Apply(ctx, m)
		if err == nil && res.Changed {
			ev := events.FromResult(m.EventID, m.Action, res, "alice")
			ev.RollbackTo, ev.RequestedBy = m.RollbackTo, "alice"
			_, err = auditLog.Insert(ctx, audit.FromEvent(ev, "workflow"))
		}
		return err
	}
	require.NoError(t, apply(routes.Mutation{Action: routes.ActionCreated, URL: "https://a.example", Active: true, EventID: "ev-1"}))
	require.NoError(t, apply(routes.Mutation{Action: routes.ActionUpdated, URL: "https://fallback.example", EventID: "ev-2"}))
	require.NoError(t, apply(routes.Mutation{Action: routes.ActionReverted, RollbackTo: 1, IfRevision: 2, EventID: "ev-2-revert"}))
	require.NoError(t, apply(routes.Mutation{Action: routes.ActionUpdated, URL: "https://fallback.example", EventID: "ev-4"}))
	require.NoError(t, apply(routes.Mutation{Action: routes.ActionUpdated, URL: "https://hotfix.example", EventID: "ev-5"}))
	err := apply(routes.Mutation{Action: routes.ActionReverted, RollbackTo: 3, IfRevision: 4, EventID: "ev-4-revert"})
	require.ErrorIs(t, err, routes.ErrPreconditionFailed)

	rep := s.check(k.Tenant)
	require.Equal(t, []found{}, foundIn(t, rep))
	require.EqualValues(t, 5, rep.Revisions)
	require.Equal(t, 5, rep.AuditDocs)
	require.Equal(t, 5, rep.LedgerRows, "one per revision; the skipped revert is a rejection")
}
