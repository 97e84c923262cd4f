package resolver

import (
	"math"

	"github.com/trafficmanager/trafficmanager/routes"
)

// splitSlots is the size of a split's slot table: a key hashes to one of
// these slots, and the table says which version the slot is served by.
// 10,000 slots give every 1 % of weight about 100 slots (binomial spread:
// ±0.3 points at 10 %), at 10 KB per cached split.
const splitSlots = routes.SplitSlots

// slotTable maps every slot to an index into a split's versions.
type slotTable [splitSlots]uint8

// buildSlotTable is the fallback table when the stored one cannot be used
// (a version of the split is found inactive: a race with a deactivate) or
// when there is no split. It assigns every slot to a version by weighted rendezvous
// hashing: slot s goes to the version v with the smallest score
// -ln(u(s, v)) / w_v, where u(s, v) is a hash of the slot and the version's
// name mapped to (0, 1). The score of v depends only on v's own weight, so
// raising v's weight (others unchanged or scaled down together) only moves
// slots to v, and a version's share of the slots converges to its weight.
// The table depends on the weights alone: every resolver instance builds
// the same one, so a key is sticky across instances and restarts.
//
// versions must be in a fixed order (name order); weights of 0 get no slot.
func buildSlotTable(versions []string, w routes.Weights) *slotTable {
	t := new(slotTable)
	inv := make([]float64, len(versions))
	seeds := make([]uint64, len(versions))
	for i, v := range versions {
		if n := w[v]; n > 0 {
			inv[i] = 1 / float64(n)
		}
		seeds[i] = routes.SlotHash(v)
	}
	for s := range t {
		best, bestScore := 0, math.Inf(1)
		for i := range versions {
			if inv[i] == 0 {
				continue
			}
			h := routes.SlotMix(seeds[i] ^ routes.SlotMix(uint64(s)+0x9e3779b97f4a7c15))
			u := (float64(h>>11) + 0.5) / (1 << 53) // uniform in (0, 1)
			if score := -math.Log(u) * inv[i]; score < bestScore {
				best, bestScore = i, score
			}
		}
		t[s] = uint8(best)
	}
	return t
}

// keySlot is the slot of a routing key (X-Route-Key): FNV-1a, finalised
// by a 64-bit mixer so that similar keys spread evenly. No allocation.
func keySlot(key string) int {
	return int(routes.SlotMix(routes.SlotHash(key)) % splitSlots)
}
