package api

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/policies"
	"github.com/trafficmanager/trafficmanager/routes"
	"github.com/trafficmanager/trafficmanager/workflows"
)

// Policies are the tenants' approval policies (policies.Snapshot): Get and
// Put go to Postgres, Current answers the write path from memory.
type Policies interface {
	Get(ctx context.Context, tenant string) (policies.Policy, error)
	Put(ctx context.Context, p policies.Policy) (policies.Policy, error)
	Current(tenant string) (policies.Policy, error)
}

var _ Policies = (*policies.Snapshot)(nil)

// policyBody is the JSON of a policy, in requests and answers.
type policyBody struct {
	Tenant          string          `json:"tenant,omitempty"`
	RequireApproval requireApproval `json:"require_approval"`
	ApprovalTimeout string          `json:"approval_timeout"`
	UpdatedAt       *time.Time      `json:"updated_at,omitempty"`
	UpdatedBy       string          `json:"updated_by,omitempty"`
}

type requireApproval struct {
	Envs []string `json:"envs"`
}

// policyRequest is PUT's body: no tenant (the path names it).
type policyRequest struct {
	RequireApproval *requireApproval `json:"require_approval"`
	ApprovalTimeout string           `json:"approval_timeout"`
}

func policyJSON(p policies.Policy) policyBody {
	out := policyBody{
		Tenant:          p.Tenant,
		RequireApproval: requireApproval{Envs: p.RequireApprovalEnvs},
		ApprovalTimeout: p.ApprovalTimeout.String(),
		UpdatedBy:       p.UpdatedBy,
	}
	if out.RequireApproval.Envs == nil {
		out.RequireApproval.Envs = []string{}
	}
	if !p.UpdatedAt.IsZero() {
		at := p.UpdatedAt.UTC()
		out.UpdatedAt = &at
	}
	return out
}

// parsePolicy turns PUT's body into a validated policy of tenant.
func parsePolicy(tenant string, req policyRequest, by string) (policies.Policy, error) {
	p := policies.Policy{Tenant: tenant, UpdatedBy: by}
	if req.RequireApproval != nil {
		p.RequireApprovalEnvs = req.RequireApproval.Envs
	}
	if req.ApprovalTimeout != "" {
		d, err := time.ParseDuration(req.ApprovalTimeout)
		if err != nil || d <= 0 {
			return p, routes.Invalid("approval_timeout", "must be a Go duration from 1m to 720h, as in 72h")
		}
		p.ApprovalTimeout = d
	}
	return p, p.Validate()
}

func (s *Server) registerPolicies(rg *gin.RouterGroup) {
	rg.GET("/tenants/:tenant/policy", s.getPolicy)
	rg.PUT("/tenants/:tenant/policy", s.putPolicy)
}

// policiesOn answers 503 when the server runs without policies.
func (s *Server) policiesOn(c *gin.Context) bool {
	if s.o.Policies == nil {
		WriteError(c, nil, Unavailable("tenant policies are not configured on this api"))
		return false
	}
	return true
}

// getPolicy is GET /api/v1/tenants/{tenant}/policy: an admin, or any
// token of the tenant, reads the stored policy (the default for a tenant
// without one).
func (s *Server) getPolicy(c *gin.Context) {
	tenant := c.Param("tenant")
	if err := routes.ValidateName("tenant", tenant); err != nil {
		WriteError(c, nil, err)
		return
	}
	if sc := scopeOf(c); sc != nil && !sc.Allows(tenant, false) {
		WriteError(c, nil, PermissionDenied("this token may not read tenant "+tenant))
		return
	}
	if !s.policiesOn(c) {
		return
	}
	p, err := read(c.Request.Context(), s, func(ctx context.Context) (policies.Policy, error) { return s.o.Policies.Get(ctx, tenant) })
	if err != nil {
		WriteError(c, s.log, s.policyStoreError(err))
		return
	}
	c.JSON(http.StatusOK, policyJSON(p))
}

// putPolicy is PUT /api/v1/tenants/{tenant}/policy (admin only).
func (s *Server) putPolicy(c *gin.Context) {
	tenant := c.Param("tenant")
	err := routes.ValidateName("tenant", tenant)
	if err == nil {
		if v, ok := c.Get("role"); ok && v != auth.RoleAdmin {
			err = PermissionDenied("only an admin token may set tenant policies")
		}
	}
	var req policyRequest
	if err == nil {
		err = decodeJSON(c, &req, false)
	}
	var p policies.Policy
	if err == nil {
		p, err = parsePolicy(tenant, req, cmp.Or(PrincipalName(c), "anonymous"))
	}
	if err == nil && !s.policiesOn(c) {
		return
	}
	if err == nil {
		if p, err = s.o.Policies.Put(c.Request.Context(), p); err != nil {
			err = s.policyStoreError(err)
		}
	}
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, policyJSON(p))
}

// policyStoreError keeps a policy's validation error and makes any other
// failure of the store (Postgres down) a 503, logged here.
func (s *Server) policyStoreError(err error) error {
	var apiErr *Error
	if errors.Is(err, routes.ErrInvalid) || errors.As(err, &apiErr) || errors.Is(err, context.Canceled) {
		return err
	}
	s.log.Warn("tenant policy store failed", zap.Error(err))
	return Unavailable("tenant policies cannot be read or stored right now; try again")
}

// approvalFor returns the Approval a write to these envs of tenant waits
// for, nil when the tenant's policy lists none of them. It reads the
// in-memory snapshot: 503 only when it was never loaded.
func (s *Server) approvalFor(tenant string, envs ...string) (*workflows.Approval, error) {
	if s.o.Policies == nil {
		return nil, nil
	}
	p, err := s.o.Policies.Current(tenant)
	if errors.Is(err, policies.ErrNotLoaded) {
		return nil, Unavailable("tenant policies are not loaded yet; retry with the same Idempotency-Key")
	}
	if err != nil {
		return nil, err
	}
	for _, env := range envs {
		if p.RequiresApproval(env) {
			return &workflows.Approval{Timeout: p.ApprovalTimeout}, nil
		}
	}
	return nil, nil
}
