package auth_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestTokenNamesThatPostgresOrALogCannotHoldAreInvalid(t *testing.T) {
	store := auth.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	for _, tt := range []struct {
		name, value string
		ok          bool
	}{
		{"a plain name is valid", "ci-deploy", true},
		{"spaces and unicode are valid", "Zoë's laptop", true},
		{"128 characters are valid even when they take more bytes", strings.Repeat("é", 128), true},
		{"an empty name is invalid", "", false},
		{"a NUL byte is invalid (Postgres refuses it in text)", "a\x00b", false},
		{"a newline is invalid", "ci\nadmin", false},
		{"a tab is invalid", "ci\tjob", false},
		{"DEL is invalid", "ci\x7f", false},
		{"a C1 control character is invalid", "ci\u0085", false},
		{"invalid UTF-8 is invalid", "ci\xff", false},
		{"129 characters are too long", strings.Repeat("a", 129), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, secret, err := store.Create(ctx, tt.value, auth.RoleWriter, []string{"team-a"})
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, tt.value, p.Name, "stored as given")
				require.NotEmpty(t, secret)
				return
			}
			require.ErrorIs(t, err, routes.ErrInvalid)
			require.Contains(t, err.Error(), "name")
		})
	}
}

func TestAdminTokensAreNotTenantScoped(t *testing.T) {
	store := auth.NewStore(testenv.Postgres(t))
	ctx := context.Background()
	_, _, err := store.Create(ctx, "ops", auth.RoleAdmin, []string{"team-a"})
	require.ErrorIs(t, err, routes.ErrInvalid, "a scope that Allows would ignore is refused")
	require.EqualError(t, err, "tenants: admin tokens are not tenant-scoped; omit tenants")

	p, _, err := store.Create(ctx, "ops", auth.RoleAdmin, nil)
	require.NoError(t, err)
	require.Empty(t, p.TenantList)
	_, _, err = store.Create(ctx, "ops-2", auth.RoleAdmin, []string{})
	require.NoError(t, err, "an empty list is no scope")
}

func TestTheBearerSchemeIsCaseInsensitive(t *testing.T) {
	for _, tt := range []struct {
		header, secret string
		ok             bool
	}{
		{"Bearer tm_x", "tm_x", true},
		{"bearer tm_x", "tm_x", true},
		{"BEARER tm_x", "tm_x", true},
		{"bEaReR tm_x", "tm_x", true},
		{"Bearer   tm_x  ", "tm_x", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer    ", "", false},
		{"Bearertm_x", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"", "", false},
		{"tm_x", "", false},
	} {
		t.Run(tt.header, func(t *testing.T) {
			secret, ok := auth.BearerSecret(tt.header)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.secret, secret)
		})
	}
}
