package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap/zaptest"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/config"
	"github.com/trafficmanager/trafficmanager/internal/devstack"
	"github.com/trafficmanager/trafficmanager/observability"
	"github.com/trafficmanager/trafficmanager/routes"
)

// serveAPI runs the api handler (Temporal a lazy client on a closed port:
// these requests never reach it) through listenAndServe with cfg's HTTP
// settings and returns its address.
func serveAPI(t *testing.T, cfg config.Config) string {
	t.Helper()
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	h := api.New(api.Options{Temporal: tc, TaskQueue: "timeouts", Routes: routes.NewStore(nil),
		Metrics: observability.NewWriteMetrics(reg), Registry: reg, Log: zaptest.NewLogger(t)}).Handler()
	port, err := devstack.FreePort()
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- listenAndServe(ctx, cfg, addr, h, nil, ready, zaptest.NewLogger(t)) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return addr
}

func TestABodyTrickledAByteAtATimeIsCutOffAtTheReadTimeout(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	addr := serveAPI(t, config.Config{HTTPReadTimeout: readTimeout, HTTPWriteTimeout: 5 * time.Second, HTTPIdleTimeout: 5 * time.Second, ShutdownTimeout: 2 * time.Second})

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = fmt.Fprintf(conn, "POST /api/v1/routes HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", addr)
	require.NoError(t, err)
	go func() { // one byte every 100 ms: 1000 bytes would take 100 s
		for range 1000 {
			time.Sleep(100 * time.Millisecond)
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()

	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	cutAfter := time.Since(start)
	if err == nil {
		res.Body.Close()
		require.Equal(t, http.StatusRequestTimeout, res.StatusCode)
	} else {
		var ne net.Error
		require.False(t, errorsAs(err, &ne) && ne.Timeout(), "the server still held the connection after 5s: %v", err)
	}
	require.Less(t, cutAfter, readTimeout+time.Second, "cut off within the read timeout (plus slack)")
}

func TestRequestHeadersAreLimitedTo64KiB(t *testing.T) {
	addr := serveAPI(t, config.Config{HTTPReadTimeout: 5 * time.Second, HTTPWriteTimeout: 5 * time.Second, ShutdownTimeout: 2 * time.Second})
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
	require.NoError(t, err)
	req.Header.Set("X-Padding", strings.Repeat("p", 80<<10))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode)

	res, err = http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
}

func TestEveryListenerGetsTheConfiguredTimeouts(t *testing.T) {
	cfg, err := config.Load(func(string) string { return "" })
	require.NoError(t, err)
	srv := newHTTPServer(cfg, http.NotFoundHandler())
	require.Equal(t, 30*time.Second, srv.ReadTimeout)
	require.Equal(t, 5*time.Second, srv.ReadHeaderTimeout)
	require.Greater(t, srv.WriteTimeout, cfg.WriteAckTimeout, "a write's 202 always gets out")
	require.Equal(t, 120*time.Second, srv.IdleTimeout)
	require.Equal(t, 64<<10, srv.MaxHeaderBytes)
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
