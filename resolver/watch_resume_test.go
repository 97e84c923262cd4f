package resolver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trafficmanager/trafficmanager/routes"
)

// TestWatchEveryClientSeesEveryChangeOnceAcrossReconnects writes 1000
// changes from concurrent writers while clients drop their streams at
// random points and resume with their last id.
func TestWatchEveryClientSeesEveryChangeOnceAcrossReconnects(t *testing.T) {
	const changes, writers, clients, versions = 1000, 4, 6, 20
	e := newWatchEnv(t, WatchOptions{Tail: 200 * time.Millisecond}, nil)
	head, _, err := e.res.watch.Load().o.Feed.Head(context.Background(), e.tenant)
	if err != nil {
		t.Fatal(err)
	}

	type seen struct {
		reconnects int
		ids        []string
		revs       map[string]int64 // route version -> last revision seen
		dups       int
		bad        []string
	}
	results := make([]*seen, clients)
	var total atomic.Int64 // set once every change is written
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		res := &seen{revs: map[string]int64{}}
		results[c] = res
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			last := head.String()
			byID := map[string]bool{}
			progress := time.Now()
			done := func() bool { n := total.Load(); return n > 0 && int64(len(byID)) >= n }
			for reconnects := 0; ; reconnects++ {
				res.reconnects = reconnects
				s, code := openWatch(t, e.srv.URL, WatchPrefix+e.tenant, last, "")
				if code != 200 {
					t.Errorf("client %d: reconnect = %d", c, code)
					return
				}
				budget := 1 + rng.IntN(150) // events before dropping the stream
				for budget > 0 {
					var m sse
					var ok bool
					select {
					case m, ok = <-s.ch:
					case <-time.After(100 * time.Millisecond):
						if done() {
							s.Close()
							return
						}
						if time.Since(progress) > 30*time.Second {
							t.Errorf("client %d: stuck at %d events", c, len(res.ids))
							s.Close()
							return
						}
						continue
					}
					progress = time.Now()
					if !ok {
						break
					}
					if m.id != "" {
						last = m.id // an id-only message moves the resume point too
					}
					if m.event != "route_changed" {
						continue
					}
					ev := m.decode(t)
					if byID[ev.EventID] {
						res.dups++
					}
					byID[ev.EventID] = true
					if ev.Revision != res.revs[ev.Version]+1 {
						res.bad = append(res.bad, fmt.Sprintf("%s: revision %d after %d", ev.Version, ev.Revision, res.revs[ev.Version]))
					}
					res.revs[ev.Version] = ev.Revision
					res.ids = append(res.ids, ev.EventID)
					budget--
					if done() {
						s.Close()
						return
					}
				}
				s.Close()
				if done() {
					return
				}
			}
		}(c)
	}

	// Writers: each owns versions, so per-route revision order is the
	// order of its writer; routes are created then updated/toggled.
	start := time.Now()
	var ww sync.WaitGroup
	var mu sync.Mutex
	var all []string
	for w := 0; w < writers; w++ {
		ww.Add(1)
		go func(w int) {
			defer ww.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			created := map[int]bool{}
			active := map[int]bool{}
			for i := 0; i < changes/writers; i++ {
				v := w*versions + rng.IntN(versions)
				k := e.key("checkout", fmt.Sprintf("v%d", v))
				var a routes.Action
				var url string
				switch {
				case !created[v]:
					a, url = routes.ActionCreated, "https://c.example"
					created[v], active[v] = true, true
				case rng.IntN(2) == 0:
					a, url = routes.ActionUpdated, fmt.Sprintf("https://u%d.example", i)
				case active[v]:
					a, active[v] = routes.ActionDeactivated, false
				default:
					a, active[v] = routes.ActionActivated, true
				}
				ev := e.change(t, a, k, url, true)
				mu.Lock()
				all = append(all, ev.EventID)
				mu.Unlock()
			}
		}(w)
	}
	ww.Wait()
	t.Logf("%d changes written in %v", len(all), time.Since(start))
	total.Store(int64(len(all)))
	wg.Wait()
	for c, r := range results {
		got := map[string]bool{}
		for _, id := range r.ids {
			got[id] = true
		}
		missing := 0
		for _, id := range all {
			if !got[id] {
				missing++
			}
		}
		t.Logf("client %d: %d events over %d reconnects", c, len(r.ids), r.reconnects)
		if missing > 0 || r.dups > 0 || len(r.bad) > 0 || len(r.ids) != len(all) {
			t.Errorf("client %d: %d events, %d missing, %d twice, order: %v", c, len(r.ids), missing, r.dups, r.bad)
		}
	}
}
