package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/trafficmanager/trafficmanager/routes"
)

// WorkflowType is the registered name of RouteMutation.
const WorkflowType = "RouteMutation"

// Search attribute keys set on every mutation workflow, so the Temporal UI
// and `temporal workflow list --query` can filter by route and action.
var (
	AttrTenant  = temporal.NewSearchAttributeKeyKeyword("TmTenant")
	AttrService = temporal.NewSearchAttributeKeyKeyword("TmService")
	AttrEnv     = temporal.NewSearchAttributeKeyKeyword("TmEnv")
	AttrVersion = temporal.NewSearchAttributeKeyKeyword("TmVersion")
	AttrAction  = temporal.NewSearchAttributeKeyKeyword("TmAction")
	// AttrStatus is where a mutation stands: StateScheduled,
	// StateAwaitingApproval, StateRunning, StateRevertPending, then
	// StateCompleted, StateDenied, StateExpired or StateCancelled. The API
	// sets it at start; the workflow upserts it as it moves on, so the
	// Temporal UI and GET /api/v1/mutations?status= can filter on it.
	AttrStatus = temporal.NewSearchAttributeKeyKeyword("TmStatus")
	// AttrRoutes lists the routes of a batch workflow as
	// "service/env/version" (its tenant is TmTenant), so the Temporal UI
	// finds the batch that imported a route: TmRoutes = 'payments/prod/v2'.
	// It holds the first routes of the batch up to MaxTmRoutes entries and
	// MaxTmRoutesBytes (Temporal refuses a search attribute value over 2 KB
	// by default).
	AttrRoutes = temporal.NewSearchAttributeKeyKeywordList("TmRoutes")
)

// SearchAttributeNames lists the keyword attributes the namespace needs.
var SearchAttributeNames = []string{"TmTenant", "TmService", "TmEnv", "TmVersion", "TmAction", "TmStatus"}

// KeywordListAttributeNames lists the keyword-list attributes the namespace
// needs.
var KeywordListAttributeNames = []string{"TmRoutes"}

// Bounds of TmRoutes on a batch workflow.
const (
	MaxTmRoutes      = 100
	MaxTmRoutesBytes = 1500
)

// TmRoutes returns the TmRoutes value of a batch of ms: the
// "service/env/version" of its first routes within MaxTmRoutes entries and
// MaxTmRoutesBytes of JSON.
func TmRoutes(ms []routes.Mutation) []string {
	var out []string
	size := 2 // []
	for _, m := range ms {
		v := m.Key.Service + "/" + m.Key.Env + "/" + m.Key.Version
		size += len(v) + 3 // "v",
		if len(out) == MaxTmRoutes || size > MaxTmRoutesBytes {
			break
		}
		out = append(out, v)
	}
	return out
}

// SearchAttributes returns the attributes of a mutation workflow.
func SearchAttributes(m routes.Mutation) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		AttrTenant.ValueSet(m.Key.Tenant),
		AttrService.ValueSet(m.Key.Service),
		AttrEnv.ValueSet(m.Key.Env),
		AttrVersion.ValueSet(m.Key.Version),
		AttrAction.ValueSet(string(m.Action)),
	)
}

// RevertEventID returns the event id of the revert of the mutation whose
// event id is eventID.
func RevertEventID(eventID string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("trafficmanager:revert:"+eventID)).String()
}

// WorkflowID returns the readable id of a mutation workflow:
// route/{tenant}/{service}/{env}/{version}/{action}/{key}, where key is the
// request's Idempotency-Key or a fresh id.
func WorkflowID(m routes.Mutation, key string) string {
	k := m.Key
	return "route/" + k.Tenant + "/" + k.Service + "/" + k.Env + "/" + k.Version + "/" + string(m.Action) + "/" + key
}

// EventIDFor returns the event id of the mutation workflow wfID (for a
// batch, its batch id): a name-based UUID, so anyone who knows the workflow
// id (a repeated request, the status endpoint) can find the mutation in
// the ledger, and every run of the workflow uses the same id.
func EventIDFor(wfID string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("trafficmanager:mutation:"+wfID)).String()
}

// RequestHash fingerprints what a request asks for (v, JSON-encoded), so a
// repeated Idempotency-Key with another request can be told apart from a
// retry of the same one.
func RequestHash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
