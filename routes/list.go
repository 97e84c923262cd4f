package routes

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Filter selects routes for List. Empty fields match everything.
type Filter struct {
	Tenants []string // restricts to these tenants when non-empty (token scope)
	Tenant  string
	Service string
	Env     string
	Active  *bool
	Limit   int
	Cursor  string // opaque, from a previous page's NextCursor
}

// Page is one page of List.
type Page struct {
	Routes     []Route `json:"routes"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// EncodeCursor and DecodeCursor turn the last key of a page into an opaque
// cursor and back.
func EncodeCursor(k Key) string {
	b, _ := json.Marshal([4]string{k.Tenant, k.Service, k.Env, k.Version})
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a cursor made by EncodeCursor.
func DecodeCursor(c string) (Key, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	var parts [4]string
	if err == nil {
		err = json.Unmarshal(b, &parts)
	}
	if err != nil {
		return Key{}, Invalid("cursor", "is not a cursor returned by this API")
	}
	return Key{Tenant: parts[0], Service: parts[1], Env: parts[2], Version: parts[3]}, nil
}

// List returns routes in key order, one page at a time.
func (s *Store) List(ctx context.Context, f Filter) (Page, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if len(f.Tenants) > 0 {
		where = append(where, "t.name = ANY("+arg(f.Tenants)+")")
	}
	if f.Tenant != "" {
		where = append(where, "t.name = "+arg(f.Tenant))
	}
	if f.Service != "" {
		where = append(where, "s.service_name = "+arg(f.Service))
	}
	if f.Env != "" {
		where = append(where, "en.env_name = "+arg(f.Env))
	}
	if f.Active != nil {
		where = append(where, "e.is_active = "+arg(*f.Active))
	}
	if f.Cursor != "" {
		k, err := DecodeCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		where = append(where, fmt.Sprintf("(t.name, s.service_name, en.env_name, e.version) > (%s, %s, %s, %s)",
			arg(k.Tenant), arg(k.Service), arg(k.Env), arg(k.Version)))
	}
	q := `SELECT ` + routeColumns + ` FROM ` + routeJoin
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY t.name, s.service_name, en.env_name, e.version LIMIT " + arg(f.Limit+1)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return Page{}, fmt.Errorf("list routes: %w", translate(err))
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Route, error) { return scanRoute(row) })
	if err != nil {
		return Page{}, fmt.Errorf("list routes: %w", translate(err))
	}
	p := Page{Routes: list}
	if len(list) > f.Limit {
		p.Routes = list[:f.Limit]
		p.NextCursor = EncodeCursor(p.Routes[f.Limit-1].Key())
	}
	if p.Routes == nil {
		p.Routes = []Route{}
	}
	return p, nil
}
