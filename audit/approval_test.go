package audit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestAuditDocumentsCarryWhoRequestedAndWhoApprovedAChange(t *testing.T) {
	store := NewStore(testenv.Mongo(t))
	ctx := context.Background()
	tenant := testenv.Name(t, "team")
	e := events.Event{EventID: tenant + "-revert", EventType: events.TypeRouteChanged, Action: routes.ActionReverted,
		Tenant: tenant, Service: "payments", Env: "prod", Version: "v1", URL: "https://a.example", Revision: 3,
		RollbackTo: 1, ChangedBy: "alice", RequestedBy: "alice", ApprovedBy: "bob", OccurredAt: time.Now().UTC()}

	_, err := store.Insert(ctx, FromEvent(e, "workflow"))
	require.NoError(t, err)

	raw, err := store.Collection().FindOne(ctx, bson.M{"event_id": e.EventID}).Raw()
	require.NoError(t, err)
	require.Equal(t, "alice", raw.Lookup("metadata", "requested_by").StringValue())
	require.Equal(t, "bob", raw.Lookup("metadata", "approved_by").StringValue())
	require.EqualValues(t, 1, raw.Lookup("metadata", "rollback_to").AsInt64())
	require.Equal(t, "reverted", raw.Lookup("action").StringValue())

	var doc Document
	require.NoError(t, store.Collection().FindOne(ctx, bson.M{"event_id": e.EventID}).Decode(&doc))
	require.Equal(t, "alice", doc.Metadata.RequestedBy)
	require.Equal(t, "bob", doc.Metadata.ApprovedBy)

	plain := FromEvent(events.Event{EventID: "x"}, "workflow")
	b, err := bson.Marshal(plain)
	require.NoError(t, err)
	_, err = bson.Raw(b).LookupErr("metadata", "requested_by")
	require.Error(t, err, "a change nobody approved has no approval fields")
	_, err = bson.Raw(b).LookupErr("metadata", "approved_by")
	require.Error(t, err)
}
