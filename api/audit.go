package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/trafficmanager/trafficmanager/audit"
	"github.com/trafficmanager/trafficmanager/routes"
)

// AuditQuerier is what the audit endpoints read through (audit.Store).
type AuditQuerier interface {
	ByRoute(ctx context.Context, r audit.RouteRef, p audit.Page) (audit.Result, error)
	Recent(ctx context.Context, days int, p audit.Page) (audit.Result, error)
	ByAction(ctx context.Context, action routes.Action, p audit.Page) (audit.Result, error)
	TimeRange(ctx context.Context, start, end time.Time, p audit.Page) (audit.Result, error)
}

var _ AuditQuerier = (*audit.Store)(nil)

// auditTimeout bounds one audit query, so an unreachable MongoDB answers
// 503 instead of holding the request.
const auditTimeout = 5 * time.Second

// defaultAuditDays is the window of /audit/recent without days.
const defaultAuditDays = 7

// RegisterAudit mounts the audit endpoints of API.md on rg. A nil q (no
// MongoDB configured) answers 503 after validating the parameters.
func RegisterAudit(rg *gin.RouterGroup, q AuditQuerier, log *zap.Logger) {
	if log == nil {
		log = zap.NewNop()
	}
	h := &auditHandlers{q: q, log: log}
	rg.GET("/audit/route", h.byRoute)
	rg.GET("/audit/recent", h.recent)
	rg.GET("/audit/action", h.byAction)
	rg.GET("/audit/time-range", h.timeRange)
}

type auditHandlers struct {
	q   AuditQuerier
	log *zap.Logger
}

// query is one audit query once its parameters are valid.
type auditQuery func(ctx context.Context, q AuditQuerier, p audit.Page) (audit.Result, error)

func (h *auditHandlers) byRoute(c *gin.Context) {
	r := audit.RouteRef{Tenant: c.Query("tenant"), Service: c.Query("service"), Env: c.Query("env"), Version: c.Query("version")}
	err := routes.Key{Tenant: r.Tenant, Service: r.Service, Env: r.Env, Version: r.Version}.Validate()
	h.run(c, err, r.Tenant, func(ctx context.Context, q AuditQuerier, p audit.Page) (audit.Result, error) {
		return q.ByRoute(ctx, r, p)
	})
}

func (h *auditHandlers) recent(c *gin.Context) {
	days := defaultAuditDays
	var err error
	if v, ok := c.GetQuery("days"); ok {
		days, err = strconv.Atoi(v)
		if err != nil || days < 1 || days > audit.MaxDays {
			err = InvalidArgument("days must be an integer from 1 to 365")
		}
	}
	tenant, terr := optionalTenant(c)
	h.run(c, errors.Join(err, terr), tenant, func(ctx context.Context, q AuditQuerier, p audit.Page) (audit.Result, error) {
		return q.Recent(ctx, days, p)
	})
}

func (h *auditHandlers) byAction(c *gin.Context) {
	action, err := routes.ParseAction(c.Query("action"))
	tenant, terr := optionalTenant(c)
	h.run(c, errors.Join(err, terr), tenant, func(ctx context.Context, q AuditQuerier, p audit.Page) (audit.Result, error) {
		return q.ByAction(ctx, action, p)
	})
}

func (h *auditHandlers) timeRange(c *gin.Context) {
	start, err := parseTime(c, "start")
	var end time.Time
	if err == nil {
		end, err = parseTime(c, "end")
	}
	if err == nil && !start.Before(end) {
		err = InvalidArgument("start must be before end")
	}
	tenant, terr := optionalTenant(c)
	h.run(c, errors.Join(err, terr), tenant, func(ctx context.Context, q AuditQuerier, p audit.Page) (audit.Result, error) {
		return q.TimeRange(ctx, start, end, p)
	})
}

// run finishes every audit request the same way: the first parameter error
// is a 400; then limit, cursor and the token's tenant scope; then the query
// under a timeout.
func (h *auditHandlers) run(c *gin.Context, paramErr error, tenant string, query auditQuery) {
	if paramErr != nil {
		WriteError(c, h.log, firstError(paramErr))
		return
	}
	var p audit.Page
	var err error
	p.Limit, err = ParseLimit(c)
	if err == nil {
		// An empty cursor is the first page; any other must be ours.
		if p.Cursor = c.Query("cursor"); p.Cursor != "" {
			_, _, err = audit.DecodeCursor(p.Cursor)
		}
	}
	if err == nil {
		p.Tenants, err = ScopeTenants(c, tenant)
		if err == nil && p.Tenants == nil && tenant != "" {
			p.Tenants = []string{tenant} // no token scope: the filter alone
		}
	}
	if err != nil {
		WriteError(c, h.log, err)
		return
	}
	if h.q == nil {
		WriteError(c, h.log, Unavailable("the audit store is not configured"))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), auditTimeout)
	defer cancel()
	res, err := query(ctx, h.q, p)
	if err != nil {
		if errors.Is(err, audit.ErrUnavailable) {
			h.log.Warn("audit query failed", zap.String("path", c.FullPath()), zap.Error(err))
			err = Unavailable("the audit store is unreachable; try again")
		}
		WriteError(c, h.log, err)
		return
	}
	if res.Events == nil {
		res.Events = []audit.Document{}
	}
	c.JSON(http.StatusOK, res)
}

// optionalTenant reads the tenant filter of the queries that are not about
// one route; empty means every tenant the token may read.
func optionalTenant(c *gin.Context) (string, error) {
	t := c.Query("tenant")
	if t == "" {
		return "", nil
	}
	return t, routes.ValidateName("tenant", t)
}

// parseTime reads a required RFC 3339 query parameter.
func parseTime(c *gin.Context, name string) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, InvalidArgument(name + " is required (RFC 3339, e.g. 2025-01-02T15:04:05Z)")
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, InvalidArgument(name + " must be an RFC 3339 time, e.g. 2025-01-02T15:04:05Z")
	}
	return t.UTC(), nil
}

// firstError unwraps an errors.Join to its first error, so the client sees
// one message about the first bad parameter.
func firstError(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := j.Unwrap(); len(errs) > 0 {
			return errs[0]
		}
	}
	return err
}
