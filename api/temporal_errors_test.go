package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/trafficmanager/trafficmanager/activities"
	"github.com/trafficmanager/trafficmanager/httperr"
)

// writeTo runs WriteError for err on a fresh recorder.
func writeTo(t *testing.T, log *zap.Logger, err error) *httptest.ResponseRecorder {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	c.Request = httptest.NewRequest(http.MethodPost, "/api/v1/routes", nil)
	WriteError(c, log, err)
	return rec
}

func TestTemporalServiceErrorsAre503WithRetryAfterNever500(t *testing.T) {
	for _, tt := range []struct {
		name       string
		err        error
		retryAfter string
		logged     zapcore.Level
	}{
		{"Unavailable", serviceerror.NewUnavailable("connection refused"), "1", zapcore.DebugLevel},
		{"ResourceExhausted backs off longer", serviceerror.NewResourceExhausted(enumspb.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT, "rps limit"), "5", zapcore.DebugLevel},
		{"a DeadlineExceeded that is not our ack deadline", serviceerror.NewDeadlineExceeded("context deadline exceeded"), "1", zapcore.DebugLevel},
		{"Aborted", serviceerror.NewAborted("aborted"), "1", zapcore.DebugLevel},
		{"Canceled by the service", serviceerror.NewCanceled("canceled"), "1", zapcore.DebugLevel},
		{"Internal, which an operator must see", serviceerror.NewInternal("shard ownership lost"), "1", zapcore.ErrorLevel},
		{"NamespaceNotFound (a misconfiguration)", serviceerror.NewNamespaceNotFound("nope"), "1", zapcore.ErrorLevel},
		{"PermissionDenied (a misconfiguration)", serviceerror.NewPermissionDenied("no", ""), "1", zapcore.ErrorLevel},
		{"a raw gRPC Unauthenticated status", status.Error(codes.Unauthenticated, "bad mTLS"), "1", zapcore.ErrorLevel},
		{"a wrapped Internal", fmt.Errorf("update with start: %w", serviceerror.NewInternal("boom")), "1", zapcore.ErrorLevel},
		{"our own context timing out in a status read", context.DeadlineExceeded, "1", zapcore.DebugLevel},
	} {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			rec := writeTo(t, zap.New(core), temporalError(tt.err))
			require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
			require.Equal(t, tt.retryAfter, rec.Header().Get("Retry-After"))
			var body httperr.Body
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			require.Equal(t, "unavailable", body.Error.Code)
			require.NotContains(t, body.Error.Message, tt.err.Error(), "the cause is logged, not sent")
			require.Equal(t, 1, logs.Len())
			require.Equal(t, tt.logged, logs.All()[0].Level)
		})
	}
}

func TestTemporalErrorKeepsRejectionsAnd202Semantics(t *testing.T) {
	rejected := temporal.NewNonRetryableApplicationError("routes[0] exists", activities.ErrTypeConflict, nil)
	rec := writeTo(t, zap.NewNop(), temporalError(rejected))
	require.Equal(t, http.StatusConflict, rec.Code, "a rejected commit is the client's answer")
	require.Empty(t, rec.Header().Get("Retry-After"))

	bug := temporal.NewApplicationError("unexpected", "SomethingElse")
	require.Equal(t, http.StatusInternalServerError, writeTo(t, zap.NewNop(), temporalError(bug)).Code,
		"an unexpected failure of our own workflow stays a 500")

	// The update's long poll ending just before our ack deadline still
	// means "not yet" (202), with the cause kept behind the 503.
	deadline := temporalError(serviceerror.NewDeadlineExceeded("update wait"))
	require.True(t, notYet(context.Background(), deadline))
	require.False(t, notYet(context.Background(), temporalError(serviceerror.NewInternal("x"))))
	var se *serviceerror.DeadlineExceeded
	require.True(t, errors.As(deadline, &se))

	require.True(t, isUnavailable(serviceerror.NewResourceExhausted(enumspb.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT, "x")),
		"a closed workflow's result that cannot be read is 503, not a conflict")
	require.False(t, isUnavailable(serviceerror.NewNotFound("no such workflow")))
}
