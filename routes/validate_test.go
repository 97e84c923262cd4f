package routes_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/routes"
)

func TestNamesFollowTheContract(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"a lowercase name is valid", "team-a", true},
		{"a single character is valid", "a", true},
		{"63 characters are valid", strings.Repeat("a", 63), true},
		{"64 characters are too long", strings.Repeat("a", 64), false},
		{"an empty name is invalid", "", false},
		{"uppercase is invalid", "Team", false},
		{"a leading dash is invalid", "-team", false},
		{"a trailing dash is invalid", "team-", false},
		{"a dot is invalid", "team.a", false},
		{"unicode is invalid", "tëam", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := routes.ValidateName("tenant", tt.value)
			require.Equal(t, tt.ok, err == nil, err)
			if err != nil {
				require.ErrorIs(t, err, routes.ErrInvalid)
				require.Contains(t, err.Error(), "tenant")
			}
		})
	}
}

func TestVersionsAndURLsFollowTheContract(t *testing.T) {
	require.NoError(t, routes.ValidateVersion("V2.1_rc-1"))
	require.Error(t, routes.ValidateVersion(""))
	require.Error(t, routes.ValidateVersion(strings.Repeat("v", 65)))
	require.Error(t, routes.ValidateVersion("v/2"))
	for _, dots := range []string{".", ".."} {
		err := routes.ValidateVersion(dots)
		require.ErrorIs(t, err, routes.ErrInvalid, "%q cannot be addressed by URL", dots)
		require.Contains(t, err.Error(), "version")
	}
	require.NoError(t, routes.ValidateVersion("..."), "only the dot segments are unaddressable")
	require.NoError(t, routes.ValidateVersion(".v1"))

	require.NoError(t, routes.ValidateURL("https://payments.example:8443/v2?x=1"))
	require.NoError(t, routes.ValidateURL("http://10.0.0.1"))
	for _, bad := range []string{"", "payments.example", "ftp://x.example", "https://", "http:///path", " https://x.example", "https://x.example/a b", "https://" + strings.Repeat("a", 2048)} {
		require.Error(t, routes.ValidateURL(bad), bad)
	}
}

func FuzzValidateMutation(f *testing.F) {
	f.Add("team-a", "payments", "prod", "v2", "https://payments.example/v2")
	f.Add("", "", "", "", "")
	f.Add("A", "-", "x-", "v/1", "javascript:alert(1)")
	f.Add("t", "s", "e", "v", "http://[::1]:80/")
	f.Add("t", "s", "e", "..", "http://x.example/")
	f.Fuzz(func(t *testing.T, tenant, service, env, version, url string) {
		m := routes.Mutation{Action: routes.ActionCreated, Key: routes.Key{Tenant: tenant, Service: service, Env: env, Version: version}, URL: url}
		err := m.Validate()
		if err == nil {
			// Whatever validates must satisfy the contract's shape.
			if len(tenant) == 0 || len(tenant) > 63 || strings.ToLower(tenant) != tenant || len(version) > 64 || version == "." || version == ".." || len(url) > routes.MaxURLLen {
				t.Fatalf("accepted invalid mutation %+v", m)
			}
			if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
				// url.Parse lowercases the scheme; HTTP:// is accepted too
				if !strings.HasPrefix(strings.ToLower(url), "http") {
					t.Fatalf("accepted non-http url %q", url)
				}
			}
			return
		}
		require.ErrorIs(t, err, routes.ErrInvalid)
	})
}
