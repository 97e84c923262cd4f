package auth

import (
	"context"
	"errors"
	"time"

	"github.com/maypok86/otter/v2"
	"go.uber.org/zap"
)

// CacheTTL bounds how long a revoked token may still be accepted.
const CacheTTL = 3 * time.Second

// lookupResult is a cached lookup: a principal, or nil for an unknown token
// (so a flood of bad tokens costs one query per token per TTL, not per request).
type lookupResult struct{ p *Principal }

// Authenticator resolves bearer secrets to principals through a short-lived
// cache in front of the Store.
type Authenticator struct {
	store   *Store
	cache   *otter.Cache[string, lookupResult]
	touched *otter.Cache[string, struct{}]
	log     *zap.Logger
}

// NewAuthenticator returns an authenticator over store.
func NewAuthenticator(store *Store, log *zap.Logger) *Authenticator {
	return &Authenticator{
		store: store,
		cache: otter.Must(&otter.Options[string, lookupResult]{
			MaximumSize:      100_000,
			ExpiryCalculator: otter.ExpiryWriting[string, lookupResult](CacheTTL),
		}),
		touched: otter.Must(&otter.Options[string, struct{}]{
			MaximumSize:      100_000,
			ExpiryCalculator: otter.ExpiryWriting[string, struct{}](time.Minute),
		}),
		log: log,
	}
}

// Authenticate returns the principal of secret, ErrUnknownToken for an
// unknown or revoked one, or another error when the store is unreachable.
func (a *Authenticator) Authenticate(ctx context.Context, secret string) (*Principal, error) {
	key := string(Hash(secret))
	if r, ok := a.cache.GetIfPresent(key); ok {
		if r.p == nil {
			return nil, ErrUnknownToken
		}
		return r.p, nil
	}
	p, err := a.store.Lookup(ctx, secret)
	switch {
	case errors.Is(err, ErrUnknownToken):
		a.cache.Set(key, lookupResult{})
		return nil, err
	case err != nil:
		return nil, err
	}
	a.cache.Set(key, lookupResult{p: p})
	a.touch(p.ID)
	return p, nil
}

// touch records last use at most once a minute per token, off the request path.
func (a *Authenticator) touch(id string) {
	if _, seen := a.touched.GetIfPresent(id); seen {
		return
	}
	a.touched.Set(id, struct{}{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.store.Touch(ctx, id); err != nil {
			a.log.Debug("token last-used not recorded", zap.Error(err))
		}
	}()
}

// Forget drops cached lookups so a revocation in this process applies at once.
func (a *Authenticator) Forget() { a.cache.InvalidateAll() }
