package routes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Outcome is what a mutation did, as the ledger records it.
type Outcome string

// The ledger's outcomes. A baseline row stands for the route's state when
// the ledger was introduced and replays as a change.
const (
	OutcomeChanged   Outcome = "changed"
	OutcomeUnchanged Outcome = "unchanged"
	OutcomeRejected  Outcome = "rejected"
	outcomeBaseline  Outcome = "baseline"
)

// Error types of rejected outcomes in the ledger.
const (
	rejectNotFound = "not_found"
	rejectConflict = "conflict"
	// rejectPrecondition: the route's revision was not the If-Match one.
	rejectPrecondition = "precondition_failed"
	// rejectInvalid: an argument only the route's state can refute (a
	// rollback to a revision the route never had); the message is
	// "field: reason".
	rejectInvalid = "invalid"
)

// Recorded is a mutation's outcome as the ledger recorded it when it
// first applied.
type Recorded struct {
	EventID string
	Outcome Outcome
	// Result is the change's result (Changed is true for changed and
	// baseline outcomes); zero for a rejection.
	Result Result
	// Err is the rejection (ErrNotFound or a *ConflictError), nil otherwise.
	Err error
}

// ledgerColumns are what a replay needs: the route's state after the
// mutation and before it, and its creation time from the route row.
const ledgerColumns = `l.event_id, l.tenant, l.service, l.env, l.version, l.outcome, l.revision, l.url, l.is_active,
	l.previous_url, l.previous_state, l.error_type, l.error_message, l.occurred_at, coalesce(e.created_at, l.occurred_at)`

const ledgerFrom = `route_ledger l LEFT JOIN endpoints e ON e.id = l.endpoint_id`

func scanRecorded(row pgx.Row) (Recorded, error) {
	var rec Recorded
	var r Route
	var outcome, errType, errMsg string
	var occurred, created time.Time
	err := row.Scan(&rec.EventID, &r.Tenant, &r.Service, &r.Env, &r.Version, &outcome, &r.Revision, &r.URL, &r.IsActive,
		&rec.Result.PreviousURL, &rec.Result.PreviousState, &errType, &errMsg, &occurred, &created)
	if err != nil {
		return Recorded{}, err
	}
	rec.Outcome = Outcome(outcome)
	switch rec.Outcome {
	case OutcomeRejected:
		rec.Result = Result{}
		rec.Err = recordedError(errType, errMsg)
		return rec, nil
	case OutcomeChanged, outcomeBaseline:
		rec.Result.Changed = true
	}
	r.CreatedAt, r.UpdatedAt = created, occurred
	rec.Result.Route = r
	return rec, nil
}

// recordedError rebuilds a recorded rejection from its error type and message.
func recordedError(errType, msg string) error {
	switch errType {
	case rejectConflict:
		return &ConflictError{Reason: msg}
	case rejectPrecondition:
		return &PreconditionError{Reason: msg}
	case rejectInvalid:
		field, reason, ok := strings.Cut(msg, ": ")
		if !ok {
			field, reason = "argument", msg
		}
		return &InvalidError{Field: field, Reason: reason}
	}
	return ErrNotFound
}

// lookup returns the ledger's record of eventID, if any.
func lookup(ctx context.Context, q pgx.Tx, eventID string) (Recorded, bool, error) {
	rec, err := scanRecorded(q.QueryRow(ctx, `SELECT `+ledgerColumns+` FROM `+ledgerFrom+` WHERE l.event_id = $1`, eventID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Recorded{}, false, nil
	}
	return rec, err == nil, err
}

// replay is the answer of a mutation found in the ledger: its recorded
// result, or its recorded rejection.
func (rec Recorded) replay() (Result, error) {
	return rec.Result, rec.Err
}

// Recorded returns the ledger's records of the given event ids, in no
// particular order; ids the ledger does not know are left out. It lets
// the API answer from the source of truth when a workflow cannot.
func (s *Store) Recorded(ctx context.Context, eventIDs ...string) ([]Recorded, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+ledgerColumns+` FROM `+ledgerFrom+` WHERE l.event_id = ANY($1)`, eventIDs)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Recorded, error) { return scanRecorded(row) })
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", translate(err))
	}
	return out, nil
}

// ledgerInsertSQL records one mutation.
const ledgerInsertSQL = `INSERT INTO route_ledger (event_id, endpoint_id, tenant, service, env, version, outcome, action,
	revision, url, is_active, previous_url, previous_state, changed_by, workflow_id, error_type, error_message, occurred_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, coalesce($18, now()))`

// recordUnchanged records that m found the route already in its state. The
// row keeps the time of that state, so a replay reports the same route.
func recordUnchanged(ctx context.Context, tx pgx.Tx, m Mutation, endpointID int64, r Route) error {
	_, err := tx.Exec(ctx, ledgerInsertSQL, m.EventID, endpointID, m.Key.Tenant, m.Key.Service, m.Key.Env, m.Key.Version,
		OutcomeUnchanged, m.Action, r.Revision, r.URL, r.IsActive, r.URL, State(r.IsActive), m.ChangedBy, m.WorkflowID, "", "", r.UpdatedAt)
	return err
}

// recordRejection records that m was rejected (route not found, or a
// conflict), so a re-run is rejected the same way whatever changed since.
func recordRejection(ctx context.Context, tx pgx.Tx, m Mutation, endpointID *int64, rejection error) error {
	errType, msg := rejectionFields(rejection)
	_, err := tx.Exec(ctx, ledgerInsertSQL, m.EventID, endpointID, m.Key.Tenant, m.Key.Service, m.Key.Env, m.Key.Version,
		OutcomeRejected, m.Action, 0, "", false, "", "", m.ChangedBy, m.WorkflowID, errType, msg, nil)
	return err
}

// rejectionFields is how the ledger stores a rejection (recordedError reads
// it back): its error type and message.
func rejectionFields(rejection error) (errType, msg string) {
	var ce *ConflictError
	var pe *PreconditionError
	var inv *InvalidError
	switch {
	case errors.As(rejection, &ce):
		return rejectConflict, ce.Reason
	case errors.As(rejection, &pe):
		return rejectPrecondition, pe.Reason
	case errors.As(rejection, &inv):
		return rejectInvalid, inv.Field + ": " + inv.Reason
	}
	return rejectNotFound, rejection.Error()
}

// errRerunRace says another run of the same mutation committed while this
// one was applying it; the caller tries again and finds it in the ledger.
var errRerunRace = errors.New("another run of this mutation committed concurrently")

// isLedgerDuplicate reports whether err is the ledger's unique event id.
func isLedgerDuplicate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "route_ledger_event_id_key"
}
