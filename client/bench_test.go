package client

import (
	"context"
	"testing"
)

// BenchmarkResolveHit is the hot path: an answer in the map (issue 16's
// goal: at most 100 ns and no allocation, like the resolver's L1).
func BenchmarkResolveHit(b *testing.B) {
	c := New("http://127.0.0.1:1")
	defer c.Close()
	for i := 0; i < 10_000; i++ { // a realistic map, not one entry
		c.routes[routeKey{"acme", "svc", "prod", string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))}] = answer{url: "https://x.example", found: true}
	}
	c.routes[routeKey{"acme", "checkout", "prod", "v2"}] = answer{url: "https://checkout.example", found: true}
	ctx := context.Background()
	tenant, service, env, version := "acme", "checkout", "prod", "v2"
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if u, err := c.Resolve(ctx, tenant, service, env, version); err != nil || u == "" {
				b.Fatal(u, err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Resolve(ctx, tenant, service, env, version); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
