package consistency_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/consistency"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Split audit documents are checked against split_ledger, never reported
// as route orphans: one document per split revision, with its event id.
func TestSplitAuditDocumentsAreCheckedAgainstTheSplitLedger(t *testing.T) {
	s := newStores(t)
	ctx := context.Background()
	store := routes.NewStore(s.pool)
	sk := routes.SplitKey{Tenant: testenv.Name(t, "team"), Service: "checkout", Env: "prod"}
	for _, v := range []string{"v1", "v2"} {
		res, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: sk.Route(v), URL: "https://" + v + ".example", Active: true, EventID: "c-" + v})
		require.NoError(t, err)
		_, err = s.coll.InsertOne(ctx, audit.FromEvent(events.FromResult("c-"+v, routes.ActionCreated, res, "t"), "workflow"))
		require.NoError(t, err)
	}
	var ids []string
	for i, w := range []routes.Weights{{"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}} {
		id := "split-" + string(rune('a'+i))
		res, err := store.ApplySplit(ctx, routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: w, EventID: id})
		require.NoError(t, err)
		_, err = s.coll.InsertOne(ctx, audit.FromSplitEvent(events.FromSplitResult(id, routes.ActionSplitUpdated, res, "t"), "workflow"))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	rep, err := consistency.Check(ctx, s.pool, s.coll, sk.Tenant)
	require.NoError(t, err)
	require.True(t, rep.Consistent(), "%+v", rep.Discrepancies)

	_, err = s.coll.DeleteOne(ctx, bson.D{{Key: "event_id", Value: ids[1]}})
	require.NoError(t, err)
	rep, err = consistency.Check(ctx, s.pool, s.coll, sk.Tenant)
	require.NoError(t, err)
	require.Len(t, rep.Discrepancies, 1, "%+v", rep.Discrepancies)
	d := rep.Discrepancies[0]
	require.Equal(t, consistency.KindMissingAudit, d.Kind)
	require.Equal(t, "split:"+sk.String(), d.Route)
	require.EqualValues(t, 2, d.Revision)
}
