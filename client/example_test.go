package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/trafficmanager/trafficmanager/client"
)

// A service resolves its upstreams through the client: the first Resolve of
// a tenant opens the tenant's watch stream and asks the resolver; later ones
// are answered from memory until the stream reports a change.
//
// The resolver here is a stand-in with one route and a stream that stays
// quiet, so the output is deterministic; in a service the URL is the
// resolver's (trafficmanager resolver, TM_RESOLVER_ADDR), and with
// TM_RESOLVER_AUTH=on add client.WithToken.
func Example() {
	resolver := httptest.NewServer(standIn())
	defer resolver.Close()

	c := client.New(resolver.URL)
	defer c.Close()
	ctx := context.Background()

	url, err := c.Resolve(ctx, "acme", "checkout", "prod", "v2")
	fmt.Println(url, err)
	url, err = c.Resolve(ctx, "acme", "checkout", "prod", "v2") // from memory now
	fmt.Println(url, err)
	_, err = c.Resolve(ctx, "acme", "checkout", "prod", "v3")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	hits, misses, _, _ := c.Stats()
	fmt.Println("hits:", hits, "misses:", misses)
	// Output:
	// https://checkout-v2.internal <nil>
	// https://checkout-v2.internal <nil>
	// true
	// hits: 1 misses: 2
}

// standIn answers like a resolver with one active route whose watch stream
// reports no change.
func standIn() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/resolve/acme/checkout/prod/v2", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"url":"https://checkout-v2.internal"}`)
	})
	mux.HandleFunc("GET /api/v1/resolve/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":"route_not_found","message":"route not found"}}`)
	})
	mux.HandleFunc("GET /api/v1/watch/acme", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	return mux
}
