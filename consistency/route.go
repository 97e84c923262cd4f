package consistency

import (
	"fmt"
	"strings"
)

// routeState is a route as Postgres has it now.
type routeState struct {
	key      string // tenant:service:env:version
	revision int64
	url      string
	active   bool
}

// ledgerRow is a 'changed' or 'baseline' row of route_ledger.
type ledgerRow struct {
	revision int64
	eventID  string
	outcome  string
	url      string
	active   bool
}

// auditEntry is what the check needs of an audit document.
type auditEntry struct {
	revision int64
	eventID  string
	// badRevision: metadata.revision is missing or not a number.
	badRevision bool
}

// checkRoute compares a route with its ledger rows (sorted by revision) and
// its audit documents.
func checkRoute(r routeState, ledger []ledgerRow, docs []auditEntry) []Discrepancy {
	var out []Discrepancy
	add := func(kind Kind, rev int64, format string, args ...any) {
		out = append(out, Discrepancy{Route: r.key, Kind: kind, Revision: rev, Detail: fmt.Sprintf(format, args...)})
	}

	// The ledger: one row per revision from 1, or from the baseline when
	// the route predates the ledger, up to the current revision.
	byRev := make(map[int64][]ledgerRow, len(ledger))
	start := int64(1)
	for i, l := range ledger {
		if l.revision < 1 || l.revision > r.revision {
			add(KindExtraRevision, l.revision, "ledger row %s (%s) records revision %d but the route is at revision %d", l.eventID, l.outcome, l.revision, r.revision)
			continue
		}
		if l.outcome == "baseline" {
			if i == 0 {
				start = l.revision
			} else {
				add(KindMisplacedBaseline, l.revision, "baseline row %s is not the route's first ledger row", l.eventID)
			}
		}
		byRev[l.revision] = append(byRev[l.revision], l)
	}
	for rev := start; rev <= r.revision; rev++ {
		switch rows := byRev[rev]; {
		case len(rows) == 0:
			add(KindMissingRevision, rev, "no ledger row for revision %d (route is at revision %d)", rev, r.revision)
		case len(rows) > 1:
			add(KindDuplicateRevision, rev, "%d ledger rows for revision %d: %s", len(rows), rev, ledgerEvents(rows))
		}
	}
	if rows := byRev[r.revision]; len(rows) > 0 {
		newest := rows[len(rows)-1]
		if newest.url != r.url || newest.active != r.active {
			add(KindLedgerStateMismatch, r.revision, "route is url=%s active=%t, its ledger row %s says url=%s active=%t",
				r.url, r.active, newest.eventID, newest.url, newest.active)
		}
	}

	// The audit: exactly one document per revision 1..current, with the
	// ledger's event id where the ledger has that revision.
	docsByRev := make(map[int64][]auditEntry, len(docs))
	for _, d := range docs {
		switch {
		case d.badRevision:
			add(KindOrphanAudit, 0, "audit document %s has no numeric metadata.revision", d.eventID)
		case d.revision < 1 || d.revision > r.revision:
			add(KindOrphanAudit, d.revision, "audit document %s is for revision %d but the route is at revision %d", d.eventID, d.revision, r.revision)
		default:
			docsByRev[d.revision] = append(docsByRev[d.revision], d)
		}
	}
	for rev := int64(1); rev <= r.revision; rev++ {
		ds := docsByRev[rev]
		switch {
		case len(ds) == 0:
			add(KindMissingAudit, rev, "no audit document for revision %d", rev)
			continue
		case len(ds) > 1:
			add(KindDuplicateAudit, rev, "%d audit documents for revision %d: %s", len(ds), rev, auditEvents(ds))
		}
		rows := byRev[rev]
		if len(rows) == 0 {
			continue // before the baseline, or the ledger row is missing (reported above)
		}
		want := rows[len(rows)-1].eventID
		for _, d := range ds {
			if d.eventID != want {
				add(KindAuditEventMismatch, rev, "audit document has event_id %s, the ledger has %s", d.eventID, want)
			}
		}
	}
	return out
}

// orphanAudit reports the documents of a route that does not exist in
// Postgres.
func orphanAudit(key string, docs []auditEntry) []Discrepancy {
	out := make([]Discrepancy, 0, len(docs))
	for _, d := range docs {
		out = append(out, Discrepancy{Route: key, Kind: KindOrphanAudit, Revision: d.revision,
			Detail: fmt.Sprintf("audit document %s is for a route that does not exist in Postgres", d.eventID)})
	}
	return out
}

func ledgerEvents(rows []ledgerRow) string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.eventID
	}
	return strings.Join(ids, ", ")
}

func auditEvents(ds []auditEntry) string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.eventID
	}
	return strings.Join(ids, ", ")
}
