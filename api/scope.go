package api

import "github.com/gin-gonic/gin"

// Scope is what the authentication middleware stores under "scope" for a
// request: the tenants the principal may act on, and whether it may write.
// A nil scope (auth off) allows everything.
type Scope interface {
	// Allows reports whether the principal may read (write=false) or
	// mutate (write=true) tenant's routes.
	Allows(tenant string, write bool) bool
	// Tenants returns the tenants visible to the principal; nil means all.
	Tenants() []string
}

func scopeOf(c *gin.Context) Scope {
	if v, ok := c.Get("scope"); ok {
		if s, ok := v.(Scope); ok {
			return s
		}
	}
	return nil
}

// Authorize checks the request's principal against tenant. A principal that
// cannot even read the tenant gets route_not_found, so that existence of
// another tenant's routes never leaks; one that can read but not write gets
// permission_denied.
func Authorize(c *gin.Context, tenant string, write bool) error {
	s := scopeOf(c)
	if s == nil || s.Allows(tenant, write) {
		return nil
	}
	if write && s.Allows(tenant, false) {
		return PermissionDenied("this token may not change routes of tenant " + tenant)
	}
	if write {
		return PermissionDenied("this token may not act on tenant " + tenant)
	}
	return RouteNotFound("route not found")
}

// ScopeTenants returns the tenant restriction for a list or audit query:
// nil when the principal sees everything, else its tenants (intersected
// with an explicitly requested tenant).
func ScopeTenants(c *gin.Context, requested string) ([]string, error) {
	s := scopeOf(c)
	if s == nil || s.Tenants() == nil {
		return nil, nil
	}
	if requested != "" {
		if !s.Allows(requested, false) {
			return []string{}, PermissionDenied("this token may not read tenant " + requested)
		}
		return []string{requested}, nil
	}
	t := s.Tenants()
	if len(t) == 0 {
		return []string{""}, nil // matches nothing
	}
	return t, nil
}
