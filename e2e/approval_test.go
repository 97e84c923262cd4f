package e2e

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// approvalPlatform is a platform with tokens and tenant policies on, and the
// principals of the four-eyes tests: a writer of the tenant, an approver of
// the tenant, an approver of another tenant and the admin.
type approvalPlatform struct {
	*platform
	tenant                           string
	admin, writer, approver, foreign []string // Authorization headers
}

func bearer(secret string) []string { return []string{"Authorization", "Bearer " + secret} }

func startApprovalPlatform(t *testing.T) *approvalPlatform {
	t.Helper()
	return startApprovalPlatformWith(t, platformOptions{ackTimeout: 10 * time.Second})
}

// startApprovalPlatformWith is startApprovalPlatform with more options
// (auth and policies are always on).
func startApprovalPlatformWith(t *testing.T, o platformOptions) *approvalPlatform {
	t.Helper()
	o.auth, o.policies = true, true
	p := startPlatformWith(t, o)
	ap := &approvalPlatform{platform: p, tenant: testenv.Name(t, "team"), admin: bearer(p.admin)}
	token := func(name string, role auth.Role, tenants ...string) []string {
		_, secret, err := p.tokens.Create(context.Background(), name, role, tenants)
		require.NoError(t, err)
		return bearer(secret)
	}
	ap.writer = token("ci", auth.RoleWriter, ap.tenant)
	ap.approver = token("alice", auth.RoleApprover, ap.tenant)
	ap.foreign = token("bob", auth.RoleApprover, testenv.Name(t, "other"))
	return ap
}

// createRoute creates k as the admin and waits for its side effects.
func (ap *approvalPlatform) createRoute(t *testing.T, k routes.Key, url string) {
	t.Helper()
	res := ap.do(t, "POST", "/api/v1/routes", map[string]any{
		"tenant": k.Tenant, "service": k.Service, "env": k.Env, "version": k.Version, "url": url,
	}, ap.admin...)
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	ap.awaitStatus(t, res.Body["workflow_id"].(string), "completed")
}

// requireApproval sets the tenant's policy: writes to env wait for approval.
func (ap *approvalPlatform) requireApproval(t *testing.T, env string) {
	t.Helper()
	res := ap.do(t, "PUT", "/api/v1/tenants/"+ap.tenant+"/policy",
		map[string]any{"require_approval": map[string]any{"envs": []string{env}}, "approval_timeout": "1h"}, ap.admin...)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	got := ap.do(t, "GET", "/api/v1/tenants/"+ap.tenant+"/policy", nil, ap.admin...)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	require.Equal(t, []any{env}, got.Body["require_approval"].(map[string]any)["envs"], got.Raw)
}

// awaitStatus polls the mutation's status (as the admin) until it is want.
func (ap *approvalPlatform) awaitStatus(t *testing.T, wfID, want string) response {
	t.Helper()
	return awaitMutationStatus(t, ap.platform, wfID, want, ap.admin...)
}

// awaitMutationStatus polls GET /api/v1/mutations/{wfID} until its status
// is want.
func awaitMutationStatus(t *testing.T, p *platform, wfID, want string, headers ...string) response {
	t.Helper()
	var st response
	eventually(t, 30*time.Second, func() bool {
		st = p.do(t, "GET", "/api/v1/mutations/"+wfID, nil, headers...)
		return st.Body["status"] == want
	}, "mutation "+wfID+" reaches status "+want)
	return st
}

// recordClosedHistory waits until the workflow has closed, then records its
// history (recordHistory; only with TM_RECORD_HISTORIES).
func recordClosedHistory(t *testing.T, p *platform, wfID, name string) {
	t.Helper()
	if os.Getenv("TM_RECORD_HISTORIES") == "" {
		return
	}
	eventually(t, 30*time.Second, func() bool {
		d, err := p.tc.DescribeWorkflowExecution(context.Background(), wfID, "")
		require.NoError(t, err)
		return d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}, wfID+" closes")
	recordHistory(t, p, wfID, name)
}

// auditMetadata returns the metadata of the audit document of eventID.
func auditMetadata(t *testing.T, p *platform, eventID string) audit.Metadata {
	t.Helper()
	var doc struct {
		Metadata audit.Metadata `bson:"metadata"`
	}
	eventually(t, 10*time.Second, func() bool { return p.auditDocs(t, eventID) == 1 }, "the audit document of "+eventID)
	require.NoError(t, p.mongo.Collection(audit.CollectionName).FindOne(context.Background(), bson.D{{Key: "event_id", Value: eventID}}).Decode(&doc))
	return doc.Metadata
}

// A write to an env that needs approval waits (202 awaiting_approval, listed
// by GET /api/v1/mutations) until an approver of its tenant who did not ask
// for it approves; then it applies once, with requested_by and approved_by
// in its status and audit document. Neither the requester, nor a writer, nor
// an approver of another tenant can approve it; a second approval is 409.
func TestAnApprovedWriteAppliesOnceAfterAnotherPrincipalApproves(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	k := routes.Key{Tenant: ap.tenant, Service: "payments", Env: "prod", Version: "v1"}
	ap.createRoute(t, k, "https://a.example")
	ap.requireApproval(t, "prod")

	res := ap.do(t, "PUT", routePath(k), map[string]any{"url": "https://b.example"}, ap.writer...)
	require.Equal(t, http.StatusAccepted, res.Status, res.Raw)
	require.Equal(t, "awaiting_approval", res.Body["status"], res.Raw)
	wfID := res.Body["workflow_id"].(string)

	st := ap.do(t, "GET", "/api/v1/mutations/"+wfID, nil, ap.approver...)
	require.Equal(t, http.StatusOK, st.Status, st.Raw)
	require.Equal(t, "awaiting_approval", st.Body["status"], st.Raw)
	require.Contains(t, st.Raw, `"ci"`, "requested_by names the writer")
	require.NotEmpty(t, st.Body["expires_at"], st.Raw)
	require.Equal(t, "https://a.example", ap.do(t, "GET", routePath(k), nil, ap.admin...).Body["url"], "nothing applies before the approval")

	eventually(t, 15*time.Second, func() bool {
		l := ap.do(t, "GET", "/api/v1/mutations?status=awaiting_approval&tenant="+ap.tenant, nil, ap.approver...)
		require.Equal(t, http.StatusOK, l.Status, l.Raw)
		return strings.Contains(l.Raw, wfID)
	}, "GET /api/v1/mutations?status=awaiting_approval lists it")

	approve := "/api/v1/mutations/" + wfID + "/approve"
	mine := ap.do(t, "POST", approve, nil, ap.writer...)
	require.Equal(t, http.StatusForbidden, mine.Status, "the requester (a writer) cannot approve: %s", mine.Raw)
	require.Equal(t, "permission_denied", errorCode(mine))
	otherWriter := ap.do(t, "POST", approve, nil, bearerOf(t, ap, "ci-2", auth.RoleWriter)...)
	require.Equal(t, http.StatusForbidden, otherWriter.Status, "a writer cannot approve: %s", otherWriter.Raw)
	foreign := ap.do(t, "POST", approve, nil, ap.foreign...)
	require.Equal(t, http.StatusNotFound, foreign.Status, "an approver of another tenant does not see it: %s", foreign.Raw)
	require.Equal(t, "mutation_not_found", errorCode(foreign))
	require.Equal(t, "awaiting_approval", ap.do(t, "GET", "/api/v1/mutations/"+wfID, nil, ap.admin...).Body["status"])

	ok := ap.do(t, "POST", approve, map[string]any{"comment": "change CR-42"}, ap.approver...)
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
	require.Contains(t, ok.Raw, `"alice"`, "approved_by names the approver")
	// The same approver repeating its approval (a retry after a lost
	// answer) is answered as the first was; another principal's is 409.
	again := ap.do(t, "POST", approve, nil, ap.approver...)
	require.Equal(t, http.StatusOK, again.Status, again.Raw)
	require.Contains(t, again.Raw, `"alice"`, again.Raw)
	second := ap.do(t, "POST", approve, nil, ap.admin...)
	require.Equal(t, http.StatusConflict, second.Status, second.Raw)
	require.Equal(t, "mutation_not_pending", errorCode(second))

	done := ap.awaitStatus(t, wfID, "completed")
	require.Equal(t, "done", done.Body["steps"].(map[string]any)["committed"], done.Raw)
	got := ap.do(t, "GET", routePath(k), nil, ap.admin...)
	require.Equal(t, "https://b.example", got.Body["url"], got.Raw)
	require.EqualValues(t, 2, got.Body["revision"])
	evs := ap.eventsFor(t, k)
	require.Len(t, evs, 2, "the create's event and the approved update's")
	eventID := done.Body["event_id"].(string)
	require.Equal(t, eventID, evs[1].EventID)
	require.Equal(t, "ci", evs[1].RequestedBy)
	require.Equal(t, "alice", evs[1].ApprovedBy)
	md := auditMetadata(t, ap.platform, eventID)
	require.Equal(t, "ci", md.RequestedBy)
	require.Equal(t, "alice", md.ApprovedBy)
	late := ap.do(t, "POST", approve, nil, ap.admin...)
	require.Equal(t, http.StatusConflict, late.Status, "approving an ended mutation: %s", late.Raw)
	retried := ap.do(t, "POST", approve, nil, ap.approver...)
	require.Equal(t, http.StatusOK, retried.Status, "the approver's retry after the end: %s", retried.Raw)
	recordClosedHistory(t, ap.platform, wfID, "approval_history.json")

	// Four eyes also binds the admin: it cannot approve its own write.
	own := ap.do(t, "POST", routePath(k)+"/deactivate", nil, ap.admin...)
	require.Equal(t, http.StatusAccepted, own.Status, own.Raw)
	ownID := own.Body["workflow_id"].(string)
	self := ap.do(t, "POST", "/api/v1/mutations/"+ownID+"/approve", nil, ap.admin...)
	require.Equal(t, http.StatusForbidden, self.Status, "self-approval: %s", self.Raw)
	require.Equal(t, "permission_denied", errorCode(self))
	// ... and it can cancel it while it waits.
	cancelled := ap.do(t, "POST", "/api/v1/mutations/"+ownID+"/cancel", nil, ap.admin...)
	require.Equal(t, http.StatusOK, cancelled.Status, cancelled.Raw)
	require.Equal(t, "cancelled", cancelled.Body["status"], cancelled.Raw)
	require.Equal(t, http.StatusConflict, ap.do(t, "POST", "/api/v1/mutations/"+ownID+"/approve", nil, ap.approver...).Status)

	got = ap.do(t, "GET", routePath(k), nil, ap.admin...)
	require.EqualValues(t, 2, got.Body["revision"], got.Raw)
	require.Equal(t, true, got.Body["is_active"])
	require.Len(t, ap.eventsFor(t, k), 2)
	require.Equal(t, []int64{1, 2}, auditRevisions(t, ap.platform, k))
	requireConsistentTenant(t, ap.platform, ap.tenant)
}

// bearerOf makes one more token of the approval platform's tenant.
func bearerOf(t *testing.T, ap *approvalPlatform, name string, role auth.Role) []string {
	t.Helper()
	_, secret, err := ap.tokens.Create(context.Background(), name, role, []string{ap.tenant})
	require.NoError(t, err)
	return bearer(secret)
}

// A rejected write and one cancelled while it awaits approval end without a
// change: no revision, no event, no audit document.
func TestARejectedOrCancelledWriteAwaitingApprovalChangesNothing(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	k := routes.Key{Tenant: ap.tenant, Service: "payments", Env: "prod", Version: "v1"}
	ap.createRoute(t, k, "https://a.example")
	ap.requireApproval(t, "prod")

	upd := ap.do(t, "PUT", routePath(k), map[string]any{"url": "https://b.example"}, ap.writer...)
	require.Equal(t, http.StatusAccepted, upd.Status, upd.Raw)
	updID := upd.Body["workflow_id"].(string)
	long := ap.do(t, "POST", "/api/v1/mutations/"+updID+"/reject", map[string]any{"comment": strings.Repeat("x", 4096)}, ap.approver...)
	require.Equal(t, http.StatusBadRequest, long.Status, "an oversized comment: %s", long.Raw)
	require.Equal(t, "invalid_argument", errorCode(long))
	rej := ap.do(t, "POST", "/api/v1/mutations/"+updID+"/reject", map[string]any{"comment": "not during the freeze"}, ap.approver...)
	require.Equal(t, http.StatusOK, rej.Status, rej.Raw)
	st := ap.awaitStatus(t, updID, "rejected")
	require.NotEqual(t, "done", st.Body["steps"].(map[string]any)["committed"], st.Raw)
	require.Equal(t, http.StatusConflict, ap.do(t, "POST", "/api/v1/mutations/"+updID+"/approve", nil, ap.approver...).Status, "a rejected write cannot be approved")
	recordClosedHistory(t, ap.platform, updID, "approval_rejected_history.json")

	deact := ap.do(t, "POST", routePath(k)+"/deactivate", nil, ap.writer...)
	require.Equal(t, http.StatusAccepted, deact.Status, deact.Raw)
	deactID := deact.Body["workflow_id"].(string)
	c := ap.do(t, "POST", "/api/v1/mutations/"+deactID+"/cancel", nil, ap.writer...)
	require.Equal(t, http.StatusOK, c.Status, c.Raw)
	require.Equal(t, "cancelled", c.Body["status"], c.Raw)
	ap.awaitStatus(t, deactID, "cancelled")
	recordClosedHistory(t, ap.platform, deactID, "approval_cancelled_history.json")

	// A staging write of the same tenant needs no approval.
	staging := routes.Key{Tenant: ap.tenant, Service: "payments", Env: "staging", Version: "v1"}
	ap.createRoute(t, staging, "https://s.example")

	got := ap.do(t, "GET", routePath(k), nil, ap.admin...)
	require.Equal(t, "https://a.example", got.Body["url"], got.Raw)
	require.Equal(t, true, got.Body["is_active"])
	require.EqualValues(t, 1, got.Body["revision"])
	require.Len(t, ap.eventsFor(t, k), 1, "only the create's event")
	require.Equal(t, []int64{1}, auditRevisions(t, ap.platform, k))
	requireConsistentTenant(t, ap.platform, ap.tenant)
}

// Policies are the admin's; their bad input is 400.
func TestTenantPoliciesAreAdminOnlyAndValidated(t *testing.T) {
	t.Parallel()
	ap := startApprovalPlatform(t)
	path := "/api/v1/tenants/" + ap.tenant + "/policy"
	good := map[string]any{"require_approval": map[string]any{"envs": []string{"prod"}}, "approval_timeout": "72h"}
	for name, hdr := range map[string][]string{"writer": ap.writer, "approver": ap.approver} {
		res := ap.do(t, "PUT", path, good, hdr...)
		require.Equal(t, http.StatusForbidden, res.Status, "%s: %s", name, res.Raw)
	}
	for _, body := range []map[string]any{
		{"require_approval": map[string]any{"envs": []string{"Prod!"}}},
		{"require_approval": map[string]any{"envs": []string{"prod"}}, "approval_timeout": "soon"},
		{"require_approval": map[string]any{"envs": []string{"prod"}}, "approval_timeout": "30s"},
		{"require_approval": map[string]any{"envs": []string{"prod"}}, "approval_timeout": "9000h"},
		{"require_approval": map[string]any{"envs": []string{"prod"}}, "approve_by": "alice"},
	} {
		res := ap.do(t, "PUT", path, body, ap.admin...)
		require.Equal(t, http.StatusBadRequest, res.Status, "%v: %s", body, res.Raw)
		require.Equal(t, "invalid_argument", errorCode(res))
	}
	res := ap.do(t, "PUT", path, good, ap.admin...)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Contains(t, res.Raw, "72h")
}

// The dev server and the cluster register devstack.SearchAttributes at
// start; a mutation starts with every attribute of
// workflows.SearchAttributeNames (TmStatus since waiting mutations), and a
// missing one makes every write 503.
func TestTheDevStackRegistersEverySearchAttributeOfTheWorkflows(t *testing.T) {
	t.Parallel()
	require.ElementsMatch(t, workflows.SearchAttributeNames, devstack.SearchAttributes)
	require.ElementsMatch(t, workflows.KeywordListAttributeNames, devstack.KeywordListAttributes)
}
