package consistency

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// kinds is what a test compares: kind and revision of every discrepancy.
type kr struct {
	Kind     Kind
	Revision int64
}

func kinds(ds []Discrepancy) []kr {
	out := []kr{}
	for _, d := range ds {
		out = append(out, kr{d.Kind, d.Revision})
	}
	return out
}

func TestCheckRoute(t *testing.T) {
	route := routeState{key: "t:s:e:v", revision: 3, url: "https://x/3", active: true}
	changed := func(rev int64, ev string) ledgerRow {
		return ledgerRow{revision: rev, eventID: ev, outcome: "changed", url: "https://x/3", active: true}
	}
	fullLedger := []ledgerRow{changed(1, "e1"), changed(2, "e2"), changed(3, "e3")}
	fullAudit := []auditEntry{{revision: 1, eventID: "e1"}, {revision: 2, eventID: "e2"}, {revision: 3, eventID: "e3"}}

	tests := []struct {
		name   string
		ledger []ledgerRow
		audit  []auditEntry
		want   []kr
	}{
		{"a route with one ledger row and one document per revision is consistent", fullLedger, fullAudit, []kr{}},
		{"a baseline row starts the ledger at its revision and earlier documents are not matched to it",
			[]ledgerRow{{revision: 2, eventID: "e2", outcome: "baseline"}, changed(3, "e3")},
			[]auditEntry{{revision: 1, eventID: "old"}, {revision: 2, eventID: "e2"}, {revision: 3, eventID: "e3"}}, []kr{}},
		{"a gap in the ledger is a missing revision",
			[]ledgerRow{changed(1, "e1"), changed(3, "e3")}, fullAudit, []kr{{KindMissingRevision, 2}}},
		{"a route without any ledger row misses every revision",
			nil, fullAudit, []kr{{KindMissingRevision, 1}, {KindMissingRevision, 2}, {KindMissingRevision, 3}}},
		{"two rows for one revision are a duplicate revision",
			[]ledgerRow{changed(1, "e1"), changed(2, "e2"), changed(2, "e2b"), changed(3, "e3")}, fullAudit,
			[]kr{{KindDuplicateRevision, 2}, {KindAuditEventMismatch, 2}}},
		{"a ledger row past the current revision is extra",
			append(fullLedger[:3:3], changed(4, "e4")), fullAudit, []kr{{KindExtraRevision, 4}}},
		{"a baseline after a changed row is misplaced",
			[]ledgerRow{changed(1, "e1"), {revision: 2, eventID: "e2", outcome: "baseline"}, changed(3, "e3")}, fullAudit,
			[]kr{{KindMisplacedBaseline, 2}}},
		{"the newest ledger row must hold the route's state",
			[]ledgerRow{changed(1, "e1"), changed(2, "e2"), {revision: 3, eventID: "e3", outcome: "changed", url: "https://x/3", active: false}},
			fullAudit, []kr{{KindLedgerStateMismatch, 3}}},
		{"a revision without a document is a missing audit",
			fullLedger, fullAudit[:2], []kr{{KindMissingAudit, 3}}},
		{"two documents for a revision are a duplicate audit, and the one with a foreign event id a mismatch",
			fullLedger, append(fullAudit[:3:3], auditEntry{revision: 2, eventID: "x"}),
			[]kr{{KindDuplicateAudit, 2}, {KindAuditEventMismatch, 2}}},
		{"a document for a revision beyond the route's is an orphan",
			fullLedger, append(fullAudit[:3:3], auditEntry{revision: 4, eventID: "e4"}), []kr{{KindOrphanAudit, 4}}},
		{"a document without a numeric revision is an orphan",
			fullLedger, append(fullAudit[:3:3], auditEntry{eventID: "e?", badRevision: true}), []kr{{KindOrphanAudit, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ElementsMatch(t, tc.want, kinds(checkRoute(route, tc.ledger, tc.audit)))
		})
	}
}
