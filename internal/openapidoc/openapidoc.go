// Package openapidoc serves an OpenAPI document that is kept in the
// repository as YAML (easier to review) and answered as JSON at
// GET /api/v1/openapi.json. The api and the resolver each embed their own
// document; tests (internal/openapitest) validate real traffic against them.
package openapidoc

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.yaml.in/yaml/v3"
)

// Path is where every process serves its document.
const Path = "/api/v1/openapi.json"

// JSON converts a YAML document to JSON.
func JSON(src []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	v, err := stringKeys(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// MustJSON is JSON for an embedded document: a bad one is a build mistake,
// caught by the package's tests.
func MustJSON(src []byte) []byte {
	b, err := JSON(src)
	if err != nil {
		panic(err)
	}
	return b
}

// stringKeys turns YAML's map[any]any (integer keys such as response
// codes) into JSON objects.
func stringKeys(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			c, err := stringKeys(e)
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
		return t, nil
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			c, err := stringKeys(e)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = c
		}
		return out, nil
	case []any:
		for i, e := range t {
			c, err := stringKeys(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	}
	return v, nil
}

// Handler answers the document (JSON bytes) without authentication.
func Handler(doc []byte) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "application/json; charset=utf-8", doc)
	}
}
