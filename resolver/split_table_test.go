package resolver

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/trafficmanager/trafficmanager/routes"
)

// tableOf is the resolver's view of a stored slot table.
func tableOf(slots []byte) *slotTable {
	t := new(slotTable)
	copy(t[:], slots)
	return t
}

// pickTable resolves a key as an L1 hit does: one hash, one array index.
func pickTable(t *slotTable, versions []string, key string) string { return versions[t[keySlot(key)]] }

func randomKeys(n int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user-" + strconv.FormatUint(rng.Uint64(), 36)
	}
	return keys
}

func TestTenThousandRandomKeysFollowA90To10SplitWithinTwoPoints(t *testing.T) {
	w := routes.Weights{"v1": 90, "v2": 10}
	versions := w.Versions()
	table := tableOf(routes.RebalanceSlots(nil, nil, w))
	for seed := uint64(1); seed <= 5; seed++ {
		n := 0
		for _, k := range randomKeys(10_000, seed) {
			if pickTable(table, versions, k) == "v2" {
				n++
			}
		}
		if pct := float64(n) / 100; pct < 8 || pct > 12 {
			t.Fatalf("seed %d: %.2f %% of keys went to v2, want 10 ± 2", seed, pct)
		} else {
			t.Logf("seed %d: v2 got %.2f %% of 10,000 random keys", seed, pct)
		}
	}
}

func TestTheSameKeyGetsTheSameVersionWhileTheWeightsStay(t *testing.T) {
	w := routes.Weights{"a": 50, "b": 30, "c": 20}
	first, again := routes.RebalanceSlots(nil, nil, w), routes.RebalanceSlots(nil, nil, w)
	if string(first) != string(again) {
		t.Fatal("two builds of the same split differ: keys would not be sticky across instances")
	}
	versions := w.Versions()
	for _, k := range randomKeys(1000, 7) {
		if pickTable(tableOf(first), versions, k) != pickTable(tableOf(again), versions, k) {
			t.Fatalf("key %s moved", k)
		}
	}
}

// monotone applies the weights in turn, each table computed from the one
// before as the store does, and checks that every step moves keys (and
// slots) only into version up.
func monotone(t *testing.T, up string, steps ...routes.Weights) {
	t.Helper()
	keys := randomKeys(10_000, 11)
	prevW := steps[0]
	prev := routes.RebalanceSlots(nil, nil, prevW)
	for _, w := range steps[1:] {
		next := routes.RebalanceSlots(prev, prevW.Versions(), w)
		pv, nv := prevW.Versions(), w.Versions()
		moved := 0
		for s := range prev {
			if a, b := pv[prev[s]], nv[next[s]]; a != b {
				moved++
				if b != up {
					t.Fatalf("%v: slot %d moved from %s to %s, not into %s", w, s, a, b, up)
				}
			}
		}
		if want := (w[up] - prevW[up]) * 100; moved != want {
			t.Fatalf("%v: %d slots moved, want exactly %d", w, moved, want)
		}
		for _, k := range keys {
			if a, b := pickTable(tableOf(prev), pv, k), pickTable(tableOf(next), nv, k); a != b && b != up {
				t.Fatalf("%v: key %s moved from %s to %s", w, k, a, b)
			}
		}
		prev, prevW = next, w
	}
}

func TestRaisingAVersionsWeightOnlyMovesKeysIntoIt(t *testing.T) {
	t.Run("two versions, v2 from 10 to 20 to 50", func(t *testing.T) {
		monotone(t, "v2", routes.Weights{"v1": 90, "v2": 10}, routes.Weights{"v1": 80, "v2": 20}, routes.Weights{"v1": 50, "v2": 50})
	})
	t.Run("three versions, v2 from 10 to 20 to 50 taking from both others", func(t *testing.T) {
		monotone(t, "v2", routes.Weights{"v1": 45, "v2": 10, "v3": 45}, routes.Weights{"v1": 40, "v2": 20, "v3": 40},
			routes.Weights{"v1": 25, "v2": 50, "v3": 25})
	})
	t.Run("three versions, v2 from 10 to 20 to 50 taking from v3 only", func(t *testing.T) {
		monotone(t, "v2", routes.Weights{"v1": 30, "v2": 10, "v3": 60}, routes.Weights{"v1": 30, "v2": 20, "v3": 50},
			routes.Weights{"v1": 30, "v2": 50, "v3": 20})
	})
	t.Run("three versions, uneven takes", func(t *testing.T) {
		monotone(t, "v2", routes.Weights{"v1": 70, "v2": 10, "v3": 20}, routes.Weights{"v1": 65, "v2": 20, "v3": 15},
			routes.Weights{"v1": 35, "v2": 50, "v3": 15})
	})
	t.Run("a version joining at 0 and rising to 100", func(t *testing.T) {
		monotone(t, "v2", routes.Weights{"v1": 100, "v2": 0}, routes.Weights{"v1": 1, "v2": 99}, routes.Weights{"v1": 0, "v2": 100})
	})
}

func TestEveryVersionOwnsExactlyItsWeightInSlots(t *testing.T) {
	w := routes.Weights{"a": 1, "b": 9, "c": 40, "d": 50}
	slots := routes.RebalanceSlots(nil, nil, w)
	count := map[string]int{}
	for _, i := range slots {
		count[w.Versions()[i]]++
	}
	for v, n := range w {
		if count[v] != n*100 {
			t.Fatalf("%s owns %d slots, want %d", v, count[v], n*100)
		}
	}
}

// The fallback table (no stored one) is weighted rendezvous.
func TestTheFallbackTableFollowsTheWeights(t *testing.T) {
	table := buildSlotTable([]string{"v1", "v2"}, routes.Weights{"v1": 90, "v2": 10})
	n := 0
	for _, i := range table {
		n += int(i)
	}
	if n < 800 || n > 1200 {
		t.Fatalf("v2 has %d of 10,000 slots, want about 1,000", n)
	}
}
