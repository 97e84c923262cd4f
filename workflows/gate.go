package workflows

import "time"

// This file is the contract between the mutation workflows and the API for
// changes that wait before they apply (not_before, approval) and after
// (revert_after): the inputs the API sets, the updates it sends, and what
// the status query reports.

// More states of a mutation reported in Status.State (and in the TmStatus
// search attribute, see AttrStatus).
const (
	// StateAwaitingApproval: waiting for ApproveUpdate or RejectUpdate by
	// another principal, at most Approval.Timeout.
	StateAwaitingApproval = "awaiting_approval"
	// StateDenied: an approver rejected it (RejectUpdate); it never
	// committed. The API reports it as status "rejected".
	StateDenied = "rejected"
	// StateExpired: no decision within Approval.Timeout; it never committed.
	StateExpired = "expired"
	// StateRevertPending: applied; its revert waits on a timer until
	// Status.RevertAt (cancellable with CancelUpdate).
	StateRevertPending = "revert_pending"
	// StateRunning and StateCompleted are the TmStatus values of a mutation
	// that applies now, and of one that has ended after applying.
	StateRunning   = "running"
	StateCompleted = "completed"
)

// Updates of a mutation awaiting approval. Both take a Decision and return
// the Status. They are rejected with ErrTypeNotPending unless the mutation
// is awaiting approval, and ApproveUpdate with ErrTypeSelfApproval when the
// approver is the requester (four eyes).
const (
	ApproveUpdate = "approve"
	RejectUpdate  = "reject"
)

// ErrTypeSelfApproval is the error type of an approval by the requester.
const ErrTypeSelfApproval = "SelfApproval"

// Actor is a principal as the workflows record it: the token's id (empty
// with TM_AUTH=off) and name.
type Actor struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// Decision is the argument of ApproveUpdate and RejectUpdate.
type Decision struct {
	By      Actor  `json:"by"`
	Comment string `json:"comment,omitempty"`
}

// Approval asks a mutation to wait for a decision before it applies.
type Approval struct {
	// Timeout ends the wait with StateExpired.
	Timeout time.Duration `json:"timeout"`
}

// Revert reports a mutation's revert_after.
type Revert struct {
	// State is pending, done, skipped or cancelled.
	State string `json:"state"`
	// At is when the revert applies (or applied).
	At time.Time `json:"at"`
	// Revision is the revision the revert produced (done).
	Revision int64 `json:"revision,omitempty"`
	// EventID is the revert's own event id (RevertEventID).
	EventID string `json:"event_id,omitempty"`
	// Reason says why it was skipped.
	Reason string `json:"reason,omitempty"`
}

// Revert states.
const (
	RevertPending   = "pending"
	RevertDone      = "done"
	RevertSkipped   = "skipped"
	RevertCancelled = "cancelled"
)
