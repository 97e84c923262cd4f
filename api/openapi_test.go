package api_test

import (
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/internal/openapitest"
)

// A new endpoint without documentation, or a documented one nobody serves,
// fails here; what the endpoints answer is checked by the e2e suite.
func TestEveryRouteIsInTheOpenAPIDocumentAndBack(t *testing.T) {
	doc, err := openapitest.Load("api", api.OpenAPI)
	require.NoError(t, err)
	h := api.New(api.Options{Registry: prometheus.NewRegistry()}).Handler().(*gin.Engine)
	// The console's pages are HTML for browsers (docs/console.md), not API.
	require.Empty(t, openapitest.CheckRoutes(doc, h.Routes(), "/ui/"))
}
