package workflows

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/routes"
)

// TmRoutes names a batch's routes as service/env/version, the first ones
// only: at most MaxTmRoutes, within MaxTmRoutesBytes of JSON (Temporal
// refuses a larger search attribute value and with it the whole start).
func TestTmRoutesListsTheFirstRoutesOfABatchWithinItsBounds(t *testing.T) {
	batch := func(n int, service, version string) []routes.Mutation {
		out := make([]routes.Mutation, n)
		for i := range out {
			out[i].Key = routes.Key{Tenant: "team-a", Service: service, Env: "prod", Version: fmt.Sprintf("%s%d", version, i)}
		}
		return out
	}
	ms := func(n int, version string) []routes.Mutation { return batch(n, "search", version) }
	require.Equal(t, []string{"search/prod/v0", "search/prod/v1"}, TmRoutes(ms(2, "v")))
	require.Empty(t, TmRoutes(nil))
	require.Len(t, TmRoutes(batch(1000, "s", "")), MaxTmRoutes, "short names: the count binds")

	for _, version := range []string{"v", strings.Repeat("x", 60)} {
		rs := TmRoutes(ms(1000, version))
		require.Less(t, len(rs), MaxTmRoutes, "longer names: the size binds")
		b, err := json.Marshal(rs)
		require.NoError(t, err)
		require.LessOrEqual(t, len(b), MaxTmRoutesBytes)
		require.Equal(t, "search/prod/"+version+"0", rs[0], "the first routes")
	}

	sa := BatchSearchAttributes("team-a", ms(3, "v")...)
	got, ok := sa.GetKeywordList(AttrRoutes)
	require.True(t, ok)
	require.Equal(t, []string{"search/prod/v0", "search/prod/v1", "search/prod/v2"}, got)
}
