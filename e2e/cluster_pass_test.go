package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// `go tool task test` runs the tests Taskfile.yml's CLUSTER_TESTS names a
// second time on the production Temporal server. `go test -run` matches
// nothing for a name that no longer exists, so a renamed test would leave
// that pass in silence: every name must be a test of this package.
func TestTheClusterPassNamesTestsThatExist(t *testing.T) {
	t.Parallel()
	taskfile, err := os.ReadFile("../Taskfile.yml")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*CLUSTER_TESTS: '\^\(([A-Za-z0-9_|]+)\)\$'$`).FindSubmatch(taskfile)
	require.NotNil(t, m, "Taskfile.yml has CLUSTER_TESTS: '^(TestA|TestB|…)$'")
	files, err := filepath.Glob("*_test.go")
	require.NoError(t, err)
	var src strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		src.Write(b)
	}
	names := strings.Split(string(m[1]), "|")
	require.GreaterOrEqual(t, len(names), 10)
	for _, name := range names {
		require.Contains(t, src.String(), "\nfunc "+name+"(t *testing.T) {", "CLUSTER_TESTS names %s, which is not a test of e2e", name)
	}
}
