package audit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

func ttl(n int32) *int32 { return &n }

func TestAuditPlanOccurredIndexReplacesTheOtherVariant(t *testing.T) {
	plain := indexInfo{name: occurredIndex, occurredOnly: true}
	day := indexInfo{name: occurredTTLIndex, occurredOnly: true, ttl: ttl(86400)}
	week := indexInfo{name: occurredTTLIndex, occurredOnly: true, ttl: ttl(7 * 86400)}
	others := []indexInfo{{name: "_id_"}, {name: "event_id_unique"}, {name: "action_occurred_at"}}
	cases := []struct {
		name       string
		existing   []indexInfo
		want       indexInfo
		wantDrop   []string
		wantCreate bool
	}{
		{"a new collection gets the plain index", others, plain, nil, true},
		{"the plain index is kept", append(others, plain), plain, nil, false},
		{"turning retention on drops the plain index", append(others, plain), day, []string{occurredIndex}, true},
		{"the same retention is kept", append(others, day), day, nil, false},
		{"another retention replaces the TTL index", append(others, day), week, []string{occurredTTLIndex}, true},
		{"turning retention off drops the TTL index", append(others, day), plain, []string{occurredTTLIndex}, true},
		{"a foreign index on occurred_at alone is replaced", append(others, indexInfo{name: "occurred_at_-1", occurredOnly: true}), plain, []string{"occurred_at_-1"}, true},
		{"our name on another key is replaced", append(others, indexInfo{name: occurredIndex}), plain, []string{occurredIndex}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drop, create := planOccurredIndex(tc.existing, tc.want)
			require.Equal(t, tc.wantDrop, drop)
			require.Equal(t, tc.wantCreate, create)
		})
	}
}

func TestAuditOccurredWantedClampsRetention(t *testing.T) {
	require.Nil(t, occurredWanted(0).ttl)
	require.Equal(t, int32(1), *occurredWanted(time.Millisecond).ttl, "never 0, which would expire at once")
	require.Equal(t, int32(30*86400), *occurredWanted(30 * 24 * time.Hour).ttl)
	require.Equal(t, int32(1<<31-1), *occurredWanted(200 * 365 * 24 * time.Hour).ttl)
}

func indexNames(t *testing.T, s *Store) map[string]*int32 {
	t.Helper()
	specs, err := s.coll.Indexes().ListSpecifications(context.Background())
	require.NoError(t, err)
	out := map[string]*int32{}
	for _, sp := range specs {
		out[sp.Name] = sp.ExpireAfterSeconds
	}
	return out
}

func TestAuditEnsureIndexesSwitchesRetentionOnAndOff(t *testing.T) {
	store := NewStore(testenv.Mongo(t))
	ctx := context.Background()
	require.NoError(t, store.EnsureIndexes(ctx, 0))
	require.NoError(t, store.EnsureIndexes(ctx, 0), "idempotent")
	names := indexNames(t, store)
	for _, n := range []string{"event_id_unique", "route_occurred_at", "action_occurred_at", occurredIndex} {
		require.Contains(t, names, n)
	}
	require.NotContains(t, names, occurredTTLIndex)

	err := store.EnsureIndexes(ctx, 30*24*time.Hour)
	names = indexNames(t, store)
	if errors.Is(err, ErrRetentionUnsupported) {
		// FerretDB v1 has no TTL indexes: the plain index stays.
		require.Contains(t, names, occurredIndex)
		require.NotContains(t, names, occurredTTLIndex)
	} else {
		require.NoError(t, err)
		require.NotContains(t, names, occurredIndex)
		require.Equal(t, int32(30*86400), *names[occurredTTLIndex])
	}

	require.NoError(t, store.EnsureIndexes(ctx, 0))
	names = indexNames(t, store)
	require.Contains(t, names, occurredIndex)
	require.NotContains(t, names, occurredTTLIndex)
}

func TestAuditEnsureIndexesReplacesALeftoverVariantOnTheServer(t *testing.T) {
	store := NewStore(testenv.Mongo(t))
	ctx := context.Background()
	// What an older retention setting left behind (its TTL option aside,
	// which FerretDB cannot store): an index on occurred_at named for TTL.
	_, err := store.coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "occurred_at", Value: -1}}, Options: options.Index().SetName(occurredTTLIndex),
	})
	require.NoError(t, err)
	require.NoError(t, store.EnsureIndexes(ctx, 0))
	names := indexNames(t, store)
	require.Contains(t, names, occurredIndex)
	require.NotContains(t, names, occurredTTLIndex)
}
