package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/trafficmanager/trafficmanager/auth"
)

// TokenStore manages API tokens (auth.Store).
type TokenStore interface {
	Create(ctx context.Context, name string, role auth.Role, tenants []string) (*auth.Principal, string, error)
	List(ctx context.Context) ([]*auth.Principal, error)
	Revoke(ctx context.Context, id string) (*auth.Principal, error)
}

type createTokenRequest struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Tenants []string `json:"tenants"`
}

type createTokenResponse struct {
	*auth.Principal
	Token string `json:"token"`
}

func (s *Server) registerTokens(rg *gin.RouterGroup) {
	rg.POST("/tokens", s.createToken)
	rg.GET("/tokens", s.listTokens)
	rg.DELETE("/tokens/:id", s.revokeToken)
}

func (s *Server) tokensAllowed(c *gin.Context) bool {
	if s.o.Tokens == nil {
		WriteError(c, nil, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "token management is off (TM_AUTH=off)"})
		return false
	}
	if err := requireAdmin(c); err != nil {
		WriteError(c, nil, err)
		return false
	}
	return true
}

func (s *Server) createToken(c *gin.Context) {
	if !s.tokensAllowed(c) {
		return
	}
	var req createTokenRequest
	err := decodeJSON(c, &req, false)
	var role auth.Role
	if err == nil {
		role, err = auth.ParseRole(req.Role)
	}
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	p, secret, err := s.o.Tokens.Create(c.Request.Context(), req.Name, role, req.Tenants)
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	c.JSON(http.StatusCreated, createTokenResponse{Principal: p, Token: secret})
}

func (s *Server) listTokens(c *gin.Context) {
	if !s.tokensAllowed(c) {
		return
	}
	list, err := s.o.Tokens.List(c.Request.Context())
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	if list == nil {
		list = []*auth.Principal{}
	}
	c.JSON(http.StatusOK, gin.H{"tokens": list})
}

func (s *Server) revokeToken(c *gin.Context) {
	if !s.tokensAllowed(c) {
		return
	}
	p, err := s.o.Tokens.Revoke(c.Request.Context(), c.Param("id"))
	if errors.Is(err, auth.ErrNoToken) {
		WriteError(c, nil, &Error{Status: http.StatusNotFound, Code: "token_not_found", Message: "no such token"})
		return
	}
	if err != nil {
		WriteError(c, s.log, err)
		return
	}
	if f, ok := s.o.Auth.(interface{ Forget() }); ok {
		f.Forget() // this process stops accepting it at once; others within auth.CacheTTL
	}
	c.JSON(http.StatusOK, p)
}
