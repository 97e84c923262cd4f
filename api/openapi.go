package api

import (
	_ "embed"

	"github.com/trafficmanager/trafficmanager/internal/openapidoc"
)

// openapiYAML is the OpenAPI 3.1 document of this API. Tests validate the
// end-to-end suite's traffic against it and check that it names every
// registered route (openapi_test.go).
//
//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI is the document as served at GET /api/v1/openapi.json.
var OpenAPI = openapidoc.MustJSON(openapiYAML)
