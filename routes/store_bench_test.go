package routes_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

// BenchmarkApply measures one commit of the write path on the machine's
// Postgres: a create (parents upserted, one statement) and an update (a
// transaction locking the row). The ledger's cost is the difference to the
// same benchmark before it (docs/temporal.md).
func BenchmarkApply(b *testing.B) {
	store := routes.NewStore(testenv.Postgres(b))
	ctx := context.Background()
	tenant := testenv.Name(b, "bench")
	b.Run("create", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			k := routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "c" + strconv.Itoa(i)}
			if _, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://a.example", Active: true,
				EventID: tenant + "-create-" + strconv.Itoa(i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	k := routes.Key{Tenant: tenant, Service: "payments", Env: "prod", Version: "u"}
	if _, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionCreated, Key: k, URL: "https://a.example", Active: true}); err != nil {
		b.Fatal(err)
	}
	b.Run("update", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := store.Apply(ctx, routes.Mutation{Action: routes.ActionUpdated, Key: k, URL: "https://" + strconv.Itoa(i) + ".example",
				EventID: tenant + "-update-" + strconv.Itoa(i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
