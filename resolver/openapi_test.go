package resolver

import (
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/openapitest"
)

// A new endpoint without documentation, or a documented one nobody serves,
// fails here; what the endpoints answer is checked by the e2e suite.
func TestEveryRouteIsInTheOpenAPIDocumentAndBack(t *testing.T) {
	doc, err := openapitest.Load("resolver", OpenAPI)
	require.NoError(t, err)
	r, err := New(Options{Store: newMemStore()})
	require.NoError(t, err)
	h := r.Handler(prometheus.NewRegistry()).(*gin.Engine)
	require.Empty(t, openapitest.CheckRoutes(doc, h.Routes()))
}
