package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/config"
)

func TestPprofIsMountedOnlyWhenTurnedOn(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	get := func(h http.Handler, path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	off := withPprof(config.Config{}, app)
	require.Equal(t, http.StatusTeapot, get(off, "/debug/pprof/"), "TM_PPROF=off leaves the path to the service")

	on := withPprof(config.Config{Pprof: true}, app)
	require.Equal(t, http.StatusOK, get(on, "/debug/pprof/"))
	require.Equal(t, http.StatusOK, get(on, "/debug/pprof/goroutine?debug=1"))
	require.Equal(t, http.StatusTeapot, get(on, "/api/v1/resolve/a/b/c/d"), "every other path still reaches the service")
}
