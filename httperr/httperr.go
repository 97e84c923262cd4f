// Package httperr is the HTTP error contract of docs/api.md, shared by the
// REST API and the resolver: the error type and its codes, the one mapping
// from domain errors to statuses, and the JSON shape
// {"error":{"code":...,"message":...}}. It imports no workflow, Temporal or
// MongoDB code, so the resolver's binary does not carry the write path.
package httperr

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/resilience"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Error is an API error with the code and status docs/api.md lists.
// Handlers return it (or a domain error) and Write maps everything in one
// place.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Body is e as the client sees it.
func (e *Error) Body() Body {
	var b Body
	b.Error.Code, b.Error.Message = e.Code, e.Message
	return b
}

// Body is the JSON shape of every error response.
type Body struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Constructors for the codes of docs/api.md.
func InvalidArgument(msg string) *Error {
	return &Error{http.StatusBadRequest, "invalid_argument", msg}
}
func Unauthenticated(msg string) *Error {
	return &Error{http.StatusUnauthorized, "unauthenticated", msg}
}
func PermissionDenied(msg string) *Error {
	return &Error{http.StatusForbidden, "permission_denied", msg}
}
func RouteNotFound(msg string) *Error { return &Error{http.StatusNotFound, "route_not_found", msg} }
func MutationNotFound(msg string) *Error {
	return &Error{http.StatusNotFound, "mutation_not_found", msg}
}
func Conflict(msg string) *Error { return &Error{http.StatusConflict, "conflict", msg} }
func PreconditionFailed(msg string) *Error {
	return &Error{http.StatusPreconditionFailed, "precondition_failed", msg}
}
func RateLimited(msg string) *Error { return &Error{http.StatusTooManyRequests, "rate_limited", msg} }
func Unavailable(msg string) *Error { return &Error{http.StatusServiceUnavailable, "unavailable", msg} }

// StatusClientClosedRequest is nginx's 499: the client hung up before the
// answer. Nobody reads it; it labels logs and the request's recorded status.
const StatusClientClosedRequest = 499

// RequestTimeout is a request whose body did not arrive within the
// server's read timeout.
func RequestTimeout() *Error {
	return &Error{http.StatusRequestTimeout, "request_timeout", "the request body did not arrive within the read timeout"}
}

// Canceled is the error of a request whose client went away.
func Canceled() *Error {
	return &Error{StatusClientClosedRequest, "canceled", "the client closed the request"}
}

// RetryLater is a 503 with a Retry-After hint and the dependency error
// behind it: the cause stays in the chain (errors.As still finds it, and the
// log shows it), the client sees only Err.
type RetryLater struct {
	Err   *Error
	Cause error
	After time.Duration
	// Alert marks causes that are not an outage but need an operator (a
	// misconfiguration, a server bug): logged at error, not debug.
	Alert bool
}

func (e *RetryLater) Error() string   { return e.Err.Error() + ": " + e.Cause.Error() }
func (e *RetryLater) Unwrap() []error { return []error{e.Err, e.Cause} }

// From maps any error to the API error a client sees. Internal details
// never reach the client; they are logged by Write.
func From(err error) *Error {
	var apiErr *Error
	var inv *routes.InvalidError
	var conflict *routes.ConflictError
	var precondition *routes.PreconditionError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &inv):
		return InvalidArgument(inv.Error())
	case errors.As(err, &conflict):
		return Conflict(conflict.Reason) // it names the route in a batch
	case errors.As(err, &precondition):
		return PreconditionFailed(precondition.Reason)
	case errors.Is(err, routes.ErrInvalid):
		return InvalidArgument("invalid argument")
	case errors.Is(err, routes.ErrNotFound):
		return RouteNotFound("route not found")
	case errors.Is(err, routes.ErrConflict):
		return Conflict("route already exists with another url")
	case errors.Is(err, routes.ErrPreconditionFailed):
		return PreconditionFailed("the route's revision does not match If-Match")
	case errors.Is(err, resilience.ErrUnavailable):
		return Unavailable("a dependency is unavailable; try again shortly")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return Unavailable("the request timed out; try again")
	}
	return &Error{http.StatusInternalServerError, "internal", "internal error"}
}

// ForRequest is From for a request: whatever err says, a request whose
// client hung up (its context canceled) is canceled, not a failure of ours.
// Write and the API's write metrics both use it, so they agree.
func ForRequest(c *gin.Context, err error) *Error {
	e := From(err)
	// net/http also cancels the context when the read timeout cuts a slow
	// body off; that client may still be reading, and deserves its 408.
	if e.Status != http.StatusRequestTimeout && errors.Is(c.Request.Context().Err(), context.Canceled) {
		return Canceled()
	}
	return e
}

// Write writes err as the API error JSON and aborts the chain. A request
// whose client went away gets no body (there is nobody to read it), only
// the 499 status for the record, and is logged at info. log may be nil.
func Write(c *gin.Context, log *zap.Logger, err error) {
	e := ForRequest(c, err)
	var later *RetryLater
	isLater := errors.As(err, &later)
	if log != nil {
		switch {
		case e.Code == "canceled":
			log.Info("client closed the request", zap.String("path", c.FullPath()), zap.Error(err))
		case isLater && later.Alert:
			log.Error("dependency refused the request", zap.String("path", c.FullPath()), zap.Error(err))
		case e.Status == http.StatusServiceUnavailable: // expected during an outage; metrics count it
			log.Debug("request refused", zap.String("path", c.FullPath()), zap.Error(err))
		case e.Status >= 500:
			log.Error("request failed", zap.String("path", c.FullPath()), zap.Int("status", e.Status), zap.Error(err))
		}
	}
	if e.Code == "canceled" {
		c.AbortWithStatus(e.Status)
		return
	}
	if isLater && e.Status == http.StatusServiceUnavailable {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(later.After.Seconds()))))
	}
	c.AbortWithStatusJSON(e.Status, e.Body())
}
