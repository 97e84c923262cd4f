package resolver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/trafficmanager/trafficmanager/cache"
	"github.com/trafficmanager/trafficmanager/events"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

type splitAnswerJSON struct {
	URL     string `json:"url"`
	Version string `json:"version"`
}

// getSplit resolves the env of sk unversioned, with routeKey as X-Route-Key
// when not empty: status, X-Cache, body (or error code), X-Route-Version.
func (in instance) getSplit(t testing.TB, sk routes.SplitKey, routeKey string) (int, string, splitAnswerJSON, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, ResolvePrefix+sk.Tenant+"/"+sk.Service+"/"+sk.Env, nil)
	if routeKey != "" {
		req.Header.Set(RouteKeyHeader, routeKey)
	}
	rec := httptest.NewRecorder()
	in.h.ServeHTTP(rec, req)
	var body splitAnswerJSON
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("200 body %s: %v", rec.Body, err)
		}
		if rec.Header().Get("X-Route-Version") != body.Version {
			t.Fatalf("X-Route-Version %q, body version %q", rec.Header().Get("X-Route-Version"), body.Version)
		}
		return rec.Code, rec.Header().Get("X-Cache"), body, ""
	}
	return rec.Code, rec.Header().Get("X-Cache"), body, decodeError(t, rec.Body.Bytes()).Error.Code
}

func putSplit(t testing.TB, st *routes.Store, sk routes.SplitKey, w routes.Weights) routes.SplitResult {
	t.Helper()
	res, err := st.ApplySplit(context.Background(), routes.SplitMutation{Action: routes.ActionSplitUpdated, Key: sk, Weights: w})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestUnversionedResolvePicksVersionsByTheSplit(t *testing.T) {
	pool, rdb := testenv.Postgres(t), testenv.Redis(t)
	st := routes.NewStore(pool)
	rc := cache.NewRedis(rdb, time.Minute)
	a, b := newInstance(t, Options{Store: st, Redis: rc}), newInstance(t, Options{Store: st, Redis: rc})
	sk := routes.SplitKey{Tenant: testenv.Name(t, "t"), Service: "checkout", Env: "prod"}
	ctx := context.Background()

	t.Run("an env with one active version and no split serves it", func(t *testing.T) {
		seed(t, st, routes.ActionCreated, sk.Route("v1"), "https://v1.example", true)
		code, xc, body, _ := a.getSplit(t, sk, "")
		if code != 200 || body.Version != "v1" || body.URL != "https://v1.example" || xc != "miss" {
			t.Fatalf("got %d %s %+v", code, xc, body)
		}
		if code, xc, _, _ := a.getSplit(t, sk, "k"); code != 200 || xc != "hit" {
			t.Fatalf("second resolve: %d %s, want an L1 hit", code, xc)
		}
	})

	t.Run("two active versions and no split: split_not_found, negative-cached", func(t *testing.T) {
		seed(t, st, routes.ActionCreated, sk.Route("v2"), "https://v2.example", true)
		a.Invalidate(ctx, sk.Route("v2"), 1) // the route event
		code, xc, _, errCode := a.getSplit(t, sk, "")
		if code != 404 || errCode != "split_not_found" || xc != "miss" {
			t.Fatalf("got %d %s %s", code, xc, errCode)
		}
		if code, xc, _, _ := a.getSplit(t, sk, ""); code != 404 || xc != "negative-hit" {
			t.Fatalf("again: %d %s", code, xc)
		}
	})

	t.Run("a 90/10 split: 10,000 random keys within 2 points, sticky on both instances", func(t *testing.T) {
		res := putSplit(t, st, sk, routes.Weights{"v1": 90, "v2": 10})
		if err := rc.InvalidateSplit(ctx, sk, res.Split.Revision); err != nil { // the workflow's step
			t.Fatal(err)
		}
		a.InvalidateSplit(ctx, sk) // the split_changed event
		b.InvalidateSplit(ctx, sk)
		keys := randomKeys(10_000, 3)
		first := map[string]string{}
		n := 0
		for _, k := range keys {
			code, _, body, _ := a.getSplit(t, sk, k)
			if code != 200 {
				t.Fatalf("%s: %d", k, code)
			}
			first[k] = body.Version
			if body.Version == "v2" {
				n++
			}
		}
		if pct := float64(n) / 100; pct < 8 || pct > 12 {
			t.Fatalf("v2 got %.2f %%, want 10 ± 2", pct)
		}
		for _, k := range keys[:500] {
			_, xc, body, _ := b.getSplit(t, sk, k)
			if body.Version != first[k] {
				t.Fatalf("key %s: instance b says %s, a said %s", k, body.Version, first[k])
			}
			_ = xc
		}
		if _, xc, _, _ := b.getSplit(t, sk, "x"); xc != "hit" {
			t.Fatalf("b: X-Cache %s, want hit", xc)
		}
		// Without a key: random by weight.
		n = 0
		for range 5000 {
			if _, _, body, _ := a.getSplit(t, sk, ""); body.Version == "v2" {
				n++
			}
		}
		if pct := float64(n) / 50; pct < 7 || pct > 13 {
			t.Fatalf("random picks: v2 got %.2f %%", pct)
		}

		t.Run("raising v2 moves keys only into v2; Redis is invalidated by the write path", func(t *testing.T) {
			res2 := putSplit(t, st, sk, routes.Weights{"v1": 50, "v2": 50})
			if err := rc.InvalidateSplit(ctx, sk, res2.Split.Revision); err != nil {
				t.Fatal(err)
			}
			a.InvalidateSplit(ctx, sk)
			moved := 0
			for _, k := range keys {
				_, _, body, _ := a.getSplit(t, sk, k)
				if body.Version != first[k] {
					if body.Version != "v2" {
						t.Fatalf("key %s moved from %s to %s", k, first[k], body.Version)
					}
					moved++
				}
			}
			if moved < 3000 {
				t.Fatalf("only %d keys moved to v2", moved)
			}
			_ = res
		})
	})

	t.Run("a version's url change shows after its route event", func(t *testing.T) {
		r2 := seed(t, st, routes.ActionUpdated, sk.Route("v2"), "https://v2-new.example", true)
		if err := rc.Invalidate(ctx, sk.Route("v2"), r2.Route.Revision); err != nil {
			t.Fatal(err)
		}
		a.Invalidate(ctx, sk.Route("v2"), r2.Route.Revision)
		for _, k := range randomKeys(200, 9) {
			if _, _, body, _ := a.getSplit(t, sk, k); body.Version == "v2" && body.URL != "https://v2-new.example" {
				t.Fatalf("v2 still served at %s", body.URL)
			}
		}
	})

	t.Run("a split_changed event on the topic is a split change, not a route change", func(t *testing.T) {
		res := putSplit(t, st, sk, routes.Weights{"v1": 100, "v2": 0})
		ev := events.FromSplitResult(uuid.NewString(), routes.ActionSplitUpdated, res, "test")
		raw, _ := json.Marshal(ev)
		decoded, err := events.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.InvalidateSplit(ctx, sk, res.Split.Revision); err != nil {
			t.Fatal(err)
		}
		before := counter(a.m.Invalidations)
		a.applyEvent(ctx, decoded, nil)
		if counter(a.m.Invalidations) != before+1 {
			t.Fatal("the split event was not applied")
		}
		for _, k := range randomKeys(100, 5) {
			if _, _, body, _ := a.getSplit(t, sk, k); body.Version != "v1" {
				t.Fatalf("key %s: %s under a 100/0 split", k, body.Version)
			}
		}
	})

	t.Run("bad names are 400", func(t *testing.T) {
		rec := serve(t, a.h, http.MethodGet, ResolvePrefix+"Acme/checkout/prod")
		if rec.Code != 400 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	})
}
