package workflows

import (
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
)

// SearchAttributeNames lists the keyword attributes the namespace needs.
var SearchAttributeNames = []string{"TmTenant", "TmService", "TmEnv", "TmVersion", "TmAction"}

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

// WorkflowID returns the readable id of a mutation workflow:
// route/{tenant}/{service}/{env}/{version}/{action}/{key}, where key is the
// request's Idempotency-Key or a fresh id.
func WorkflowID(m routes.Mutation, key string) string {
	k := m.Key
	return "route/" + k.Tenant + "/" + k.Service + "/" + k.Env + "/" + k.Version + "/" + string(m.Action) + "/" + key
}
