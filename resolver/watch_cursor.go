package resolver

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"sort"

	"github.com/trafficmanager/trafficmanager/events"
)

// Cursor is a position in the ledger's commit order: the writing
// transaction's id (xid8), then the ledger row's seq. Seq alone is not
// commit order: a transaction locks its route (and so takes its xid) before
// it draws a seq, and two concurrent transactions may commit in the other
// order than their seqs. Ordered by (xid, seq) and read only below the
// oldest running transaction (pg_snapshot_xmin), every row that commits
// later sorts after every row already read, so following the cursor skips
// nothing: a transaction still running when a row was read has an xid of at
// least that xmin, which is greater than the xid of every row read.
type Cursor struct {
	Xid uint64
	Seq int64
}

// String is the opaque, increasing id of SSE: 32 hex digits, so the ids of
// one stream also increase as strings.
func (c Cursor) String() string {
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(c.Xid >> (56 - 8*i))
		b[8+i] = byte(uint64(c.Seq) >> (56 - 8*i))
	}
	return hex.EncodeToString(b[:])
}

// Less orders cursors.
func (c Cursor) Less(d Cursor) bool {
	return c.Xid < d.Xid || c.Xid == d.Xid && c.Seq < d.Seq
}

// ParseCursor reads a cursor from its String form.
func ParseCursor(s string) (Cursor, error) {
	if len(s) != 32 {
		return Cursor{}, errors.New("not a watch cursor")
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return Cursor{}, errors.New("not a watch cursor")
	}
	var c Cursor
	for i := 0; i < 8; i++ {
		c.Xid = c.Xid<<8 | uint64(b[i])
		c.Seq = c.Seq<<8 | int64(b[8+i])
	}
	if c.Seq < 0 {
		return Cursor{}, errors.New("not a watch cursor")
	}
	return c, nil
}

// Change is one committed route change with its cursor.
type Change struct {
	Cursor Cursor
	Event  events.Event
	// ID says whether the change's SSE message carries an id, and IDCursor
	// is that id (see inRevisionOrder).
	ID       bool
	IDCursor Cursor
}

// inRevisionOrder puts one read of changes (in cursor order) into each
// route's revision order and marks the changes whose cursor is a safe
// resume point. Cursor order (xid, seq) is what makes a read complete, but
// it is not always a route's revision order: a batch transaction that took
// its xid, then waited for a row lock another transaction held, commits a
// later revision under a lower xid. Both become settled in the same read
// (the waiting one holds xmin below the other's xid until it ends), so
// swapping a route's changes among the places they hold in the read puts
// them right; other routes keep cursor order. An id is sent only where
// every change of the read up to it, and none after it, is at or below it:
// a client that resumes from there gets the rest once. Between the two
// changes of such a swap there is no id, so a client that disconnects just
// there gets the first again; a pair split across a full page keeps cursor
// order. Both need two transactions racing for one route's lock.
func inRevisionOrder(cs []Change) {
	type route struct{ service, env, version string }
	last := make(map[route]int64, len(cs))
	inverted := false
	for i := range cs {
		k := route{cs[i].Event.Service, cs[i].Event.Env, cs[i].Event.Version}
		if r, ok := last[k]; ok && cs[i].Event.Revision < r {
			inverted = true
			break
		}
		last[k] = cs[i].Event.Revision
	}
	if inverted {
		places := map[route][]int{}
		for i := range cs {
			k := route{cs[i].Event.Service, cs[i].Event.Env, cs[i].Event.Version}
			places[k] = append(places[k], i)
		}
		for _, ps := range places {
			if len(ps) < 2 {
				continue
			}
			rows := make([]Change, len(ps))
			for j, p := range ps {
				rows[j] = cs[p]
			}
			sort.SliceStable(rows, func(a, b int) bool { return rows[a].Event.Revision < rows[b].Event.Revision })
			for j, p := range ps {
				cs[p] = rows[j]
			}
		}
	}
	if len(cs) == 0 {
		return
	}
	suffixMin := make([]Cursor, len(cs))
	suffixMin[len(cs)-1] = cs[len(cs)-1].Cursor
	for i := len(cs) - 2; i >= 0; i-- {
		suffixMin[i] = suffixMin[i+1]
		if cs[i].Cursor.Less(suffixMin[i]) {
			suffixMin[i] = cs[i].Cursor
		}
	}
	var prefixMax Cursor
	for i := range cs {
		if prefixMax.Less(cs[i].Cursor) {
			prefixMax = cs[i].Cursor
		}
		cs[i].ID = i == len(cs)-1 || prefixMax.Less(suffixMin[i+1])
		cs[i].IDCursor = prefixMax
	}
}

// frame renders c as one SSE message.
func frame(c Change) []byte {
	data, _ := json.Marshal(c.Event) // an Event always encodes
	b := make([]byte, 0, len(data)+72)
	if c.ID {
		b = append(b, "id: "...)
		b = append(b, c.IDCursor.String()...)
		b = append(b, '\n')
	}
	b = append(b, "event: route_changed\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
