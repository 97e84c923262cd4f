package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"

	"github.com/trafficmanager/trafficmanager/api"
	"github.com/trafficmanager/trafficmanager/internal/openapitest"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/resolver"
)

// openapiDocs validates every request and response of the suite that goes
// through http.DefaultTransport (http.Get, http.DefaultClient and every
// client without a Transport of its own) against the OpenAPI documents
// (api/openapi.yaml, resolver/openapi.yaml). A mismatch fails the test
// that sent it when its request carries openapitest.WithReporter (p.do,
// resolveSplit), and the package otherwise; TM_OPENAPI_VALIDATION=collect
// only lists mismatches, =off checks nothing.
var openapiDocs *openapitest.Transport

func validateOpenAPI() {
	apiDoc, err := openapitest.Load("api", api.OpenAPI)
	if err != nil {
		panic(err)
	}
	resolverDoc, err := openapitest.Load("resolver", resolver.OpenAPI)
	if err != nil {
		panic(err)
	}
	openapiDocs = openapitest.NewTransport(http.DefaultTransport, apiDoc, resolverDoc)
	http.DefaultTransport = openapiDocs
	byName = map[string]*openapitest.Doc{"api": apiDoc, "resolver": resolverDoc}
	testenv.AfterRun(func() bool {
		report, failed := openapiDocs.Summary()
		fmt.Fprint(os.Stderr, report)
		return !failed
	})
}

var byName map[string]*openapitest.Doc

// serves says that the server at base serves the document doc (api.OpenAPI
// or resolver.OpenAPI), so paths both documents have are checked against
// the right one.
func serves(base string, doc []byte) {
	u, err := url.Parse(base)
	if err != nil || openapiDocs == nil {
		return
	}
	name := "api"
	if &doc[0] == &resolver.OpenAPI[0] {
		name = "resolver"
	}
	openapiDocs.Register(u.Host, byName[name])
}
