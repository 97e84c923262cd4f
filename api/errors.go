// Package api is the Gin REST API of trafficmanager: route writes (which
// start Temporal workflows), route reads, mutation status and audit queries.
package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/resilience"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Error is an API error with the code and status API.md lists. Handlers
// return it (or a domain error) and Abort maps everything in one place.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf-style constructors for the codes of API.md.
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
func Conflict(msg string) *Error    { return &Error{http.StatusConflict, "conflict", msg} }
func RateLimited(msg string) *Error { return &Error{http.StatusTooManyRequests, "rate_limited", msg} }
func Unavailable(msg string) *Error { return &Error{http.StatusServiceUnavailable, "unavailable", msg} }

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ToError maps any error to the API error a client sees. Internal details
// never reach the client; they are logged by Abort.
func ToError(err error) *Error {
	var apiErr *Error
	var inv *routes.InvalidError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &inv):
		return InvalidArgument(inv.Error())
	case errors.Is(err, routes.ErrInvalid):
		return InvalidArgument("invalid argument")
	case errors.Is(err, routes.ErrNotFound):
		return RouteNotFound("route not found")
	case errors.Is(err, routes.ErrConflict):
		return Conflict("route already exists with another url")
	case errors.Is(err, resilience.ErrUnavailable):
		return Unavailable("a dependency is unavailable; try again shortly")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return Unavailable("the request timed out; try again")
	}
	return &Error{http.StatusInternalServerError, "internal", "internal error"}
}

// WriteError writes err as the API error JSON and aborts the chain.
func WriteError(c *gin.Context, log *zap.Logger, err error) {
	e := ToError(err)
	if log != nil {
		switch {
		case e.Status == http.StatusServiceUnavailable: // expected during an outage; metrics count it
			log.Debug("request refused", zap.String("path", c.FullPath()), zap.Error(err))
		case e.Status >= 500:
			log.Error("request failed", zap.String("path", c.FullPath()), zap.Int("status", e.Status), zap.Error(err))
		}
	}
	var body errorBody
	body.Error.Code, body.Error.Message = e.Code, e.Message
	c.AbortWithStatusJSON(e.Status, body)
}
