package resolver

import (
	"testing"

	"github.com/trafficmanager/trafficmanager/events"
)

func TestWatchCursorsRoundTripAndOrderAsStrings(t *testing.T) {
	a, b := Cursor{Xid: 7, Seq: 300}, Cursor{Xid: 8, Seq: 2}
	for _, c := range []Cursor{a, b, {}, {Xid: 1<<64 - 1, Seq: 1<<63 - 1}} {
		if got, err := ParseCursor(c.String()); err != nil || got != c {
			t.Fatalf("ParseCursor(%s) = %v %v, want %v", c, got, err, c)
		}
	}
	if !(a.String() < b.String()) || !a.Less(b) {
		t.Fatal("a cursor's string does not order like the cursor")
	}
	for _, bad := range []string{"", "42", "zz" + a.String()[2:], a.String() + "0", "8" + a.String()[1:16] + "8000000000000000"} {
		if _, err := ParseCursor(bad); err == nil {
			t.Errorf("ParseCursor(%q) accepted", bad)
		}
	}
}

// A batch transaction that took its xid before waiting for another's row
// lock commits the later revision under the lower xid: the read puts the
// route back in revision order, and sends ids only where resuming from
// them neither repeats nor skips a change.
func TestWatchReadsKeepEachRoutesRevisionOrder(t *testing.T) {
	ch := func(xid uint64, seq int64, version string, rev int64) Change {
		return Change{Cursor: Cursor{Xid: xid, Seq: seq}, Event: events.Event{Service: "s", Env: "e", Version: version, Revision: rev}}
	}
	cs := []Change{
		ch(10, 1, "other", 1),
		ch(11, 5, "x", 6), // the batch: lower xid, later revision
		ch(12, 4, "x", 5),
		ch(13, 6, "other", 2),
	}
	inRevisionOrder(cs)
	var got []int64
	for _, c := range cs {
		if c.Event.Version == "x" {
			got = append(got, c.Event.Revision)
		}
	}
	if len(got) != 2 || got[0] != 5 || got[1] != 6 {
		t.Fatalf("route x in order %v, want [5 6]", got)
	}
	wantID := []bool{true, false, true, true}
	for i, c := range cs {
		if c.ID != wantID[i] {
			t.Errorf("change %d (%v) has id %v, want %v", i, c.Cursor, c.ID, wantID[i])
		}
	}
	if cs[2].IDCursor != (Cursor{Xid: 12, Seq: 4}) {
		t.Errorf("the id after the swapped pair is %v, want the larger of the two", cs[2].IDCursor)
	}
}
