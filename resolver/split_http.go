package resolver

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/trafficmanager/trafficmanager/httperr"
	"github.com/trafficmanager/trafficmanager/routes"
)

// RouteKeyHeader makes an unversioned resolve sticky: the same key gets
// the same version while the split's weights stay the same.
const RouteKeyHeader = "X-Route-Key"

// serveSplitResolve answers GET /api/v1/resolve/{tenant}/{service}/{env}:
// 200 {"url", "version"} with X-Route-Version and X-Cache, or 404
// split_not_found. key is the path suffix "t/s/e" (the split L1's key);
// the request's count and latency are recorded by serveResolve.
func (r *Resolver) serveSplitResolve(c *gin.Context, key string, k routes.Key) {
	sk := routes.SplitKey{Tenant: k.Tenant, Service: k.Service, Env: k.Env}
	var routeKey string
	if v := c.Request.Header[RouteKeyHeader]; len(v) > 0 {
		routeKey = v[0]
	}
	a, err := r.resolveSplit(c.Request.Context(), key, sk, routeKey)
	if err != nil {
		if errors.Is(err, routes.ErrInvalid) {
			httperr.Write(c, r.log, err)
			return
		}
		httperr.Write(c, r.log, httperr.Unavailable("split lookup is unavailable; try again"))
		return
	}
	h := c.Writer.Header()
	h["X-Cache"] = xCache[a.src]
	if !a.Found() {
		httperr.Write(c, nil, &httperr.Error{Status: http.StatusNotFound, Code: "split_not_found",
			Message: "the env has no split and not exactly one active version"})
		return
	}
	h["X-Route-Version"] = a.choice.header
	h["Content-Type"] = jsonContentType
	c.Writer.WriteHeader(http.StatusOK)
	_, _ = c.Writer.Write(a.choice.body)
}
