package resolver

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestResolverDoesNotLinkTheWritePath keeps the read path small (issue 16):
// the resolver's dependencies hold no Temporal SDK, no MongoDB driver and
// none of the write path's packages. Such an import usually arrives through
// a convenience (an error type, a logger adapter) in a package that also
// holds write-path code; move the piece into a package of its own (as
// httperr and observability's TemporalLogger did).
func TestResolverDoesNotLinkTheWritePath(t *testing.T) {
	const module = "github.com/trafficmanager/trafficmanager/"
	writePath := []string{module + "api", module + "workflows", module + "activities", module + "worker", module + "audit"}

	// go test puts $GOROOT/bin first on the PATH, so this is the go that
	// builds the test.
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, ".").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	importers := map[string][]string{} // package -> the dependencies that import it
	var deps []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		deps = append(deps, fields[0])
		for _, imp := range fields[1:] {
			importers[imp] = append(importers[imp], fields[0])
		}
	}
	for _, dep := range deps {
		bad := strings.HasPrefix(dep, "go.temporal.io/") || slices.Contains(writePath, dep) ||
			strings.HasPrefix(dep, "go.mongodb.org/") && !onlyGinsBSON(dep, importers[dep])
		if bad {
			t.Errorf("the resolver depends on %s (imported by %s)", dep, strings.Join(importers[dep], ", "))
		}
	}
}

// onlyGinsBSON reports whether a go.mongodb.org package is the BSON codec
// that Gin (since 1.11) links unconditionally for its BSON render and
// binding: no client, no network, reached from nothing of ours. The driver
// proper (go.mongodb.org/mongo-driver/v2/mongo...) is never allowed.
func onlyGinsBSON(pkg string, importers []string) bool {
	if strings.HasPrefix(pkg, "go.mongodb.org/mongo-driver/v2/mongo") {
		return false
	}
	for _, by := range importers {
		if !strings.HasPrefix(by, "github.com/gin-gonic/gin/") && !strings.HasPrefix(by, "go.mongodb.org/") {
			return false
		}
	}
	return true
}
