// Package api is the Gin REST API of trafficmanager: route writes (which
// start Temporal workflows), route reads, mutation status and audit queries.
package api

import (
	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/httperr"
)

// The API's errors, their mapping to statuses and their JSON shape live in
// package httperr, which the resolver shares without importing the write
// path. These names only keep the handlers reading as before.

// Error is an API error (httperr.Error).
type Error = httperr.Error

// StatusClientClosedRequest is nginx's 499 (httperr.StatusClientClosedRequest).
const StatusClientClosedRequest = httperr.StatusClientClosedRequest

func InvalidArgument(msg string) *Error    { return httperr.InvalidArgument(msg) }
func Unauthenticated(msg string) *Error    { return httperr.Unauthenticated(msg) }
func PermissionDenied(msg string) *Error   { return httperr.PermissionDenied(msg) }
func RouteNotFound(msg string) *Error      { return httperr.RouteNotFound(msg) }
func MutationNotFound(msg string) *Error   { return httperr.MutationNotFound(msg) }
func Conflict(msg string) *Error           { return httperr.Conflict(msg) }
func PreconditionFailed(msg string) *Error { return httperr.PreconditionFailed(msg) }
func RateLimited(msg string) *Error        { return httperr.RateLimited(msg) }
func Unavailable(msg string) *Error        { return httperr.Unavailable(msg) }
func RequestTimeout() *Error               { return httperr.RequestTimeout() }
func Canceled() *Error                     { return httperr.Canceled() }

// ToError maps any error to the API error a client sees (httperr.From).
func ToError(err error) *Error { return httperr.From(err) }

// requestError is httperr.ForRequest: WriteError and the write metrics both
// use it, so they agree.
func requestError(c *gin.Context, err error) *Error { return httperr.ForRequest(c, err) }

// WriteError writes err as the API error JSON and aborts the chain
// (httperr.Write).
func WriteError(c *gin.Context, log *zap.Logger, err error) { httperr.Write(c, log, err) }
