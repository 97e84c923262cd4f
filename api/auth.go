package api

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/maypok86/otter/v2"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/trafficmanager/trafficmanager/auth"
)

// Authenticator resolves a bearer secret (auth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (*auth.Principal, error)
}

// RequireToken is the one middleware that decides 401: it authenticates the
// bearer token and stores the principal for Authorize and changedBy.
// Role and tenant checks (403/404) happen in Authorize, next to the tenant
// the request names.
func RequireToken(a Authenticator, log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		secret, ok := auth.BearerSecret(c.GetHeader("Authorization"))
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="trafficmanager"`)
			WriteError(c, nil, Unauthenticated("a bearer token is required"))
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
		defer cancel()
		p, err := a.Authenticate(ctx, secret)
		if errors.Is(err, auth.ErrUnknownToken) {
			c.Header("WWW-Authenticate", `Bearer realm="trafficmanager", error="invalid_token"`)
			WriteError(c, nil, Unauthenticated("unknown or revoked token"))
			return
		}
		if err != nil {
			if c.Request.Context().Err() == nil { // else the client left: WriteError says so
				log.Warn("token lookup failed", zap.Error(err))
			}
			WriteError(c, nil, Unavailable("cannot check the token right now"))
			return
		}
		c.Set("principal", p.Name)
		c.Set("principal_id", p.ID)
		c.Set("scope", Scope(p))
		c.Set("role", p.Role)
		c.Next()
	}
}

// requireAdmin guards token management.
func requireAdmin(c *gin.Context) error {
	if v, ok := c.Get("role"); ok && v != auth.RoleAdmin {
		return PermissionDenied("only an admin token may manage tokens")
	}
	return nil
}

// TenantLimiter is the per-tenant write rate limit, checked before any
// workflow starts so a noisy tenant cannot slow the others down.
type TenantLimiter struct {
	rps      rate.Limit
	burst    int
	limiters *otter.Cache[string, *rate.Limiter]
}

// NewTenantLimiter allows rps writes per second per tenant with burst.
func NewTenantLimiter(rps float64, burst int) *TenantLimiter {
	return &TenantLimiter{
		rps:   rate.Limit(rps),
		burst: burst,
		limiters: otter.Must(&otter.Options[string, *rate.Limiter]{
			MaximumSize:      100_000,
			ExpiryCalculator: otter.ExpiryAccessing[string, *rate.Limiter](10 * time.Minute),
		}),
	}
}

// Allow takes one token from tenant's bucket, or says how long to wait.
func (l *TenantLimiter) Allow(tenant string) (bool, time.Duration) {
	lim, _ := l.limiters.ComputeIfAbsent(tenant, func() (*rate.Limiter, bool) {
		return rate.NewLimiter(l.rps, l.burst), false
	})
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

func rateLimited(c *gin.Context, wait time.Duration) error {
	c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	return RateLimited("tenant write rate limit exceeded; retry after " + wait.Round(time.Millisecond).String())
}
