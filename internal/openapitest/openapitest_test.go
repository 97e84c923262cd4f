package openapitest_test

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/openapidoc"
	"github.com/trafficmanager/trafficmanager/internal/openapitest"
)

// load reads a document from the repository (not through its package, so
// this test builds while api/ or resolver/ are mid-change).
func load(t *testing.T, name string) *openapitest.Doc {
	t.Helper()
	src, err := os.ReadFile("../../" + name + "/openapi.yaml")
	require.NoError(t, err)
	js, err := openapidoc.JSON(src)
	require.NoError(t, err)
	d, err := openapitest.Load(name, js)
	require.NoError(t, err)
	return d
}

func TestTheDocumentsAreValidOpenAPI31(t *testing.T) {
	for _, name := range []string{"api", "resolver"} {
		d := load(t, name)
		require.True(t, d.Spec.IsOpenAPI31OrLater(), name)
	}
}

func TestAWorkflowIDWithSlashesFindsItsOperation(t *testing.T) {
	d := load(t, "api")
	for path, want := range map[string]string{
		"/api/v1/mutations/route/t/s/e/v/created/k":         "/api/v1/mutations/{workflow_id}",
		"/api/v1/mutations/route%2Ft%2Fs%2Fe%2Fv%2Fcreated": "/api/v1/mutations/{workflow_id}",
		"/api/v1/mutations":                                 "/api/v1/mutations",
	} {
		u, _ := url.Parse(path)
		r, params, err := d.Find(http.MethodGet, u)
		require.NoError(t, err, path)
		require.Equal(t, want, r.Path, path)
		if strings.Contains(want, "{") {
			require.True(t, strings.HasPrefix(params["workflow_id"], "route/t/s/e/v/created"), params)
		}
	}
	u, _ := url.Parse("/api/v1/mutations/batch/t/created/k/approve")
	r, params, err := d.Find(http.MethodPost, u)
	require.NoError(t, err)
	require.Equal(t, "/api/v1/mutations/{workflow_id}/approve", r.Path)
	require.Equal(t, "batch/t/created/k", params["workflow_id"])
}

func TestAnUndocumentedFieldFailsValidation(t *testing.T) {
	d := load(t, "resolver")
	req, _ := http.NewRequest(http.MethodGet, "http://r/api/v1/resolve/t/s/e/v1", nil)
	h := http.Header{"Content-Type": {"application/json"}, "X-Cache": {"hit"}}
	require.NoError(t, d.Check(openapitest.Exchange{Request: req, ReqBodyOK: true, Status: 200, Header: h, Body: []byte(`{"url":"http://x"}`)}))
	err := d.Check(openapitest.Exchange{Request: req, ReqBodyOK: true, Status: 200, Header: h, Body: []byte(`{"url":"http://x","extra":1}`)})
	require.ErrorContains(t, err, "extra")
	err = d.Check(openapitest.Exchange{Request: req, ReqBodyOK: true, Status: 418, Header: h, Body: []byte(`{}`)})
	require.ErrorContains(t, err, "status is not supported")
}
