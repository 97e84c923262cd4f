package auth_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/auth"
	"github.com/trafficmanager/trafficmanager/internal/testenv"
)

func TestTheRoleMatrix(t *testing.T) {
	mine, other := "team-a", "team-b"
	for _, tc := range []struct {
		role                           auth.Role
		read, write, approve           bool
		readOther, writeOther, apOther bool
	}{
		{role: auth.RoleAdmin, read: true, write: true, approve: true, readOther: true, writeOther: true, apOther: true},
		{role: auth.RoleWriter, read: true, write: true},
		{role: auth.RoleReader, read: true},
		{role: auth.RoleApprover, read: true, approve: true},
		{role: auth.RoleResolver},
	} {
		t.Run(string(tc.role), func(t *testing.T) {
			p := &auth.Principal{Role: tc.role, TenantList: []string{mine}}
			if tc.role == auth.RoleAdmin {
				p.TenantList = nil
			}
			require.Equal(t, tc.read, p.Allows(mine, false), "reads its tenant")
			require.Equal(t, tc.write, p.Allows(mine, true), "writes its tenant")
			require.Equal(t, tc.approve, p.Approves(mine), "approves its tenant")
			require.Equal(t, tc.readOther, p.Allows(other, false), "reads another tenant")
			require.Equal(t, tc.writeOther, p.Allows(other, true), "writes another tenant")
			require.Equal(t, tc.apOther, p.Approves(other), "approves another tenant")
		})
	}
}

func TestAnApproverTokenCanBeCreated(t *testing.T) {
	r, err := auth.ParseRole("approver")
	require.NoError(t, err)
	store := auth.NewStore(testenv.Postgres(t))
	p, secret, err := store.Create(context.Background(), "lead", r, []string{"team-a"})
	require.NoError(t, err, "the schema accepts the role")
	require.Equal(t, auth.RoleApprover, p.Role)
	got, err := store.Lookup(context.Background(), secret)
	require.NoError(t, err)
	require.True(t, got.Approves("team-a"))
	_, _, err = store.Create(context.Background(), "lead", r, nil)
	require.Error(t, err, "an approver needs a tenant")
	_, err = auth.ParseRole("owner")
	require.Error(t, err)
}
