package routes

import (
	"math"
	"slices"
)

// SplitSlots is the size of a split's slot table: the resolver hashes a
// routing key (X-Route-Key) to one of these slots, and the table says which
// version serves the slot. Each 1 % of weight is exactly 100 slots.
const SplitSlots = 10_000

// RebalanceSlots returns the slot table of a split with weights w, given
// the table it had before (prev over prevVersions; nil for a new split).
// Table entries are indexes into w.Versions() (name order).
//
// Every version gets exactly weight×100 slots, and the table moves as few
// slots as possible: a version whose weight went down releases exactly the
// slots it has too many, and only the versions whose weight went up take
// them. So raising one version's weight moves keys only into that
// version, whichever versions give the weight up — which no table computed
// from the current weights alone can do with three or more versions (see
// docs/splits.md). Which slots move is decided by weighted rendezvous
// scores, -ln(u(slot, version)) / weight, so the choice is deterministic
// and a new split's table is spread like a rendezvous-hashed one.
func RebalanceSlots(prev []byte, prevVersions []string, w Weights) []byte {
	versions := w.Versions()
	owner := make([]int, SplitSlots)
	for s := range owner {
		owner[s] = -1
	}
	if len(prev) == SplitSlots {
		remap := make([]int, len(prevVersions))
		for i, v := range prevVersions {
			remap[i] = slices.Index(versions, v) // -1: gone from the split
		}
		for s, i := range prev {
			if int(i) < len(remap) {
				owner[s] = remap[i]
			}
		}
	}
	seeds := make([]uint64, len(versions))
	for i, v := range versions {
		seeds[i] = SlotHash(v)
	}
	score := func(s, i int) float64 {
		h := SlotMix(seeds[i] ^ SlotMix(uint64(s)+0x9e3779b97f4a7c15))
		u := (float64(h>>11) + 0.5) / (1 << 53)
		return -math.Log(u) / float64(max(w[versions[i]], 1))
	}
	count := make([]int, len(versions))
	for _, i := range owner {
		if i >= 0 {
			count[i]++
		}
	}
	// Release: a version over its target gives up its worst-scored slots.
	for i, v := range versions {
		surplus := count[i] - w[v]*SplitSlots/100
		if surplus <= 0 {
			continue
		}
		var mine []int
		for s, o := range owner {
			if o == i {
				mine = append(mine, s)
			}
		}
		slices.SortFunc(mine, func(a, b int) int { return cmpScore(score(b, i), score(a, i), a, b) })
		for _, s := range mine[:surplus] {
			owner[s] = -1
		}
		count[i] -= surplus
	}
	// Claim: the free slots go to the versions under their target, best
	// score first.
	type pair struct {
		slot, version int
		score         float64
	}
	var pairs []pair
	for i, v := range versions {
		if count[i] >= w[v]*SplitSlots/100 {
			continue
		}
		for s, o := range owner {
			if o < 0 {
				pairs = append(pairs, pair{s, i, score(s, i)})
			}
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int { return cmpScore(a.score, b.score, a.slot*16+a.version, b.slot*16+b.version) })
	for _, p := range pairs {
		if owner[p.slot] < 0 && count[p.version] < w[versions[p.version]]*SplitSlots/100 {
			owner[p.slot] = p.version
			count[p.version]++
		}
	}
	out := make([]byte, SplitSlots)
	for s, o := range owner {
		out[s] = byte(max(o, 0)) // every slot is owned: the targets sum to SplitSlots
	}
	return out
}

func cmpScore(a, b float64, ta, tb int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return ta - tb
}

// SlotHash is FNV-1a, the hash of versions and routing keys in slot
// tables (the resolver hashes X-Route-Key with SlotMix(SlotHash(key))).
func SlotHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// SlotMix is the splitmix64 finaliser, spreading similar hashes evenly.
func SlotMix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
