package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/propagation"
	"github.com/trafficmanager/trafficmanager/routes"
)

// Resolvers is what the api reads about the resolver instances: which are
// live and how far a change has reached them (*propagation.Registry).
type Resolvers interface {
	Live(ctx context.Context) ([]propagation.Resolver, error)
	Of(ctx context.Context, c propagation.Change) (propagation.Propagation, error)
	Wait(ctx context.Context, c propagation.Change) (propagation.Propagation, error)
}

var _ Resolvers = (*propagation.Registry)(nil)

// propagationTimeout bounds one propagation read for a mutation status.
const propagationTimeout = time.Second

// resolverJSON is one entry of GET /api/v1/resolvers.
type resolverJSON struct {
	ID            string    `json:"id"`
	Address       string    `json:"address,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// AppliedRevisions counts the route changes (events) the instance has
	// applied since it started. Not the revisions themselves: those name
	// routes of every tenant, and any token may list the resolvers.
	AppliedRevisions int64 `json:"applied_revisions"`
	LagMS            int64 `json:"lag_ms"`
}

// resolverView answers the resolver endpoints over a Resolvers (nil when
// the api has no Redis: GET /resolvers is 503 and mutations carry no
// propagation). The Server's methods delegate to it.
type resolverView struct {
	r   Resolvers
	log *zap.Logger
}

// list answers GET /api/v1/resolvers: 200 {"resolvers": [...]}, the live
// instances sorted by id. Any authenticated token may list them (the
// v1 group's middleware authenticates); nothing tenant-specific is shown.
func (v resolverView) list(c *gin.Context) {
	if v.r == nil {
		WriteError(c, nil, Unavailable("resolver reporting is not configured (TM_REDIS_URL)"))
		return
	}
	live, err := v.r.Live(c.Request.Context())
	if err != nil {
		WriteError(c, v.log, Unavailable("cannot read the resolvers' reports right now"))
		if c.Request.Context().Err() == nil {
			v.log.Warn("listing resolvers failed", zap.Error(err))
		}
		return
	}
	out := make([]resolverJSON, len(live))
	for i, r := range live {
		out[i] = resolverJSON{ID: r.ID, Address: r.Address, StartedAt: r.StartedAt, LastHeartbeat: r.LastHeartbeat,
			AppliedRevisions: r.AppliedEvents, LagMS: r.LagMS}
	}
	c.JSON(http.StatusOK, gin.H{"resolvers": out})
}

// change names route's current revision as the resolvers report it; its
// updated_at is the commit time of that revision.
func change(key routes.Key, revision int64, committedAt time.Time) propagation.Change {
	return propagation.Change{Key: key.String(), Revision: revision, CommittedAt: committedAt.UTC()}
}

// of returns the propagation of key's revision (committed at committedAt,
// zero when unknown), or nil without a registry or when Redis cannot say:
// a status answer never fails for it.
func (v resolverView) of(ctx context.Context, key routes.Key, revision int64, committedAt time.Time) *propagation.Propagation {
	if v.r == nil || revision <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, propagationTimeout)
	defer cancel()
	p, err := v.r.Of(ctx, change(key, revision, committedAt))
	if err != nil {
		v.log.Warn("propagation unknown", zap.Stringer("route", key), zap.Int64("revision", revision), zap.Error(err))
		return nil
	}
	return &p
}

// wait waits until every live resolver has applied route's revision or ctx
// ends (the write's remaining ack time), and returns the propagation then
// and whether it is complete. nil without a registry or when Redis never
// answered.
func (v resolverView) wait(ctx context.Context, route routes.Route) (*propagation.Propagation, bool) {
	if v.r == nil || route.Revision <= 0 {
		return nil, false
	}
	p, err := v.r.Wait(ctx, change(route.Key(), route.Revision, route.UpdatedAt))
	if err == nil {
		return &p, true
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		v.log.Warn("propagation unknown", zap.Stringer("route", route.Key()), zap.Int64("revision", route.Revision), zap.Error(err))
	}
	if p.Pending == nil { // Redis never answered before ctx ended
		return nil, false
	}
	return &p, false
}

// propagatedResponse is a single write's answer with its propagation
// (?wait=propagated).
type propagatedResponse struct {
	mutationResponse
	Propagation *propagation.Propagation `json:"propagation,omitempty"`
}

// propagated turns a single write's answer (status, body) into its
// ?wait=propagated answer: it waits within ctx (the rest of the write's
// ack timeout) until every live resolver has applied the committed
// revision, and answers the same status with "propagation" when they
// have, else 202 with the propagation so far. Other bodies (errors,
// batches, 202s) pass unchanged, and so does everything without a
// registry: the answer then has no "propagation".
func (v resolverView) propagated(ctx context.Context, status int, body any) (int, any) {
	resp, ok := body.(mutationResponse)
	if !ok || v.r == nil || status >= http.StatusMultipleChoices || status == http.StatusAccepted {
		return status, body
	}
	out := propagatedResponse{mutationResponse: resp}
	var complete bool
	if ctx.Err() == nil {
		out.Propagation, complete = v.wait(ctx, resp.Route)
	}
	if out.Propagation == nil {
		// The ack timeout is spent (the answer came from the ledger) or
		// Redis did not answer in time: one more look of its own.
		out.Propagation = v.of(context.WithoutCancel(ctx), resp.Route.Key(), resp.Route.Revision, resp.Route.UpdatedAt)
		complete = out.Propagation != nil && out.Propagation.Complete
	}
	if !complete {
		status = http.StatusAccepted
	}
	return status, out
}

// ofStatus is the propagation of a mutation status's route: nil until the
// route is committed (the status then holds a routes.Route).
func (v resolverView) ofStatus(ctx context.Context, route any) *propagation.Propagation {
	r, ok := route.(routes.Route)
	if !ok {
		return nil
	}
	return v.of(ctx, r.Key(), r.Revision, r.UpdatedAt)
}

func (s *Server) resolvers() resolverView { return resolverView{r: s.o.Resolvers, log: s.log} }

// listResolvers answers GET /api/v1/resolvers.
func (s *Server) listResolvers(c *gin.Context) { s.resolvers().list(c) }

// propagationOf is the propagation of key's revision, nil without a
// registry or when Redis cannot say.
func (s *Server) propagationOf(ctx context.Context, key routes.Key, revision int64) *propagation.Propagation {
	return s.resolvers().of(ctx, key, revision, time.Time{})
}
