package policies_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trafficmanager/trafficmanager/internal/testenv"
	"github.com/trafficmanager/trafficmanager/policies"
	"github.com/trafficmanager/trafficmanager/routes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestAStoredPolicyIsReadBackNormalized(t *testing.T) {
	ctx := context.Background()
	store := policies.NewStore(testenv.Postgres(t))

	got, err := store.Get(ctx, "team-a")
	require.NoError(t, err)
	require.Equal(t, policies.Default("team-a"), got, "no policy: no approvals, 72h")

	p, err := store.Put(ctx, policies.Policy{Tenant: "team-a", RequireApprovalEnvs: []string{"prod", "eu-prod", "prod"}, UpdatedBy: "root"})
	require.NoError(t, err)
	require.Equal(t, []string{"eu-prod", "prod"}, p.RequireApprovalEnvs)
	require.Equal(t, 72*time.Hour, p.ApprovalTimeout)
	require.Equal(t, "root", p.UpdatedBy)
	require.False(t, p.UpdatedAt.IsZero())

	p, err = store.Put(ctx, policies.Policy{Tenant: "team-a", RequireApprovalEnvs: []string{}, ApprovalTimeout: time.Hour})
	require.NoError(t, err, "a put replaces")
	got, err = store.Get(ctx, "team-a")
	require.NoError(t, err)
	require.Equal(t, p.RequireApprovalEnvs, got.RequireApprovalEnvs)
	require.Equal(t, time.Hour, got.ApprovalTimeout)

	all, err := store.All(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)

	_, err = store.Put(ctx, policies.Policy{Tenant: "team-a", ApprovalTimeout: time.Second})
	require.ErrorIs(t, err, routes.ErrInvalid)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    policies.Policy
		ok   bool
	}{
		{"a minute is the shortest timeout", policies.Policy{Tenant: "a", ApprovalTimeout: time.Minute}, true},
		{"30 days is the longest", policies.Policy{Tenant: "a", ApprovalTimeout: 720 * time.Hour}, true},
		{"under a minute is refused", policies.Policy{Tenant: "a", ApprovalTimeout: 59 * time.Second}, false},
		{"over 30 days is refused", policies.Policy{Tenant: "a", ApprovalTimeout: 721 * time.Hour}, false},
		{"a bad env is refused", policies.Policy{Tenant: "a", RequireApprovalEnvs: []string{"-prod"}}, false},
		{"a bad tenant is refused", policies.Policy{Tenant: "A"}, false},
		{"too many envs are refused", policies.Policy{Tenant: "a", RequireApprovalEnvs: make([]string, policies.MaxEnvs+1)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, routes.ErrInvalid)
			}
		})
	}
}

// flakyStore is a policies.Storer whose All fails while down.
type flakyStore struct {
	mu   sync.Mutex
	down bool
	m    map[string]policies.Policy
}

func (f *flakyStore) Get(_ context.Context, tenant string) (policies.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.m[tenant]; ok {
		return p, nil
	}
	return policies.Default(tenant), nil
}

func (f *flakyStore) Put(_ context.Context, p policies.Policy) (policies.Policy, error) {
	if err := p.Validate(); err != nil {
		return policies.Policy{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[p.Tenant] = p
	return p, nil
}

func (f *flakyStore) All(context.Context) ([]policies.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errors.New("postgres is down")
	}
	var out []policies.Policy
	for _, p := range f.m {
		out = append(out, p)
	}
	return out, nil
}

func TestTheSnapshotAnswersFromMemoryOnceLoaded(t *testing.T) {
	ctx := context.Background()
	store := &flakyStore{down: true, m: map[string]policies.Policy{}}
	snap := policies.NewSnapshot(store, nil)

	_, err := snap.Current("team-a")
	require.ErrorIs(t, err, policies.ErrNotLoaded, "never loaded: the write path cannot know")
	require.Error(t, snap.Refresh(ctx))
	_, err = snap.Current("team-a")
	require.ErrorIs(t, err, policies.ErrNotLoaded)

	store.mu.Lock()
	store.down = false
	store.m["team-a"] = policies.Policy{Tenant: "team-a", RequireApprovalEnvs: []string{"prod"}, ApprovalTimeout: time.Hour}
	store.mu.Unlock()
	require.NoError(t, snap.Refresh(ctx))
	p, err := snap.Current("team-a")
	require.NoError(t, err)
	require.True(t, p.RequiresApproval("prod"))
	require.False(t, p.RequiresApproval("staging"))
	p, err = snap.Current("team-b")
	require.NoError(t, err)
	require.Equal(t, policies.Default("team-b"), p)

	store.mu.Lock()
	store.down = true
	store.mu.Unlock()
	require.Error(t, snap.Refresh(ctx))
	p, err = snap.Current("team-a")
	require.NoError(t, err, "Postgres down: the last policies still answer")
	require.True(t, p.RequiresApproval("prod"))

	store.mu.Lock()
	store.down = false
	store.mu.Unlock()
	_, err = snap.Put(ctx, policies.Policy{Tenant: "team-b", RequireApprovalEnvs: []string{"prod"}})
	require.NoError(t, err)
	p, err = snap.Current("team-b")
	require.NoError(t, err)
	require.True(t, p.RequiresApproval("prod"), "a put applies here at once")
}

func TestRunRefreshesInTheBackground(t *testing.T) {
	store := &flakyStore{m: map[string]policies.Policy{}}
	snap := policies.NewSnapshot(store, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go snap.Run(ctx)
	require.Eventually(t, func() bool { _, err := snap.Current("a"); return err == nil }, 2*time.Second, 10*time.Millisecond, "loaded at once")

	store.mu.Lock()
	store.m["a"] = policies.Policy{Tenant: "a", RequireApprovalEnvs: []string{"prod"}, ApprovalTimeout: time.Hour}
	store.mu.Unlock()
	require.Eventually(t, func() bool {
		p, _ := snap.Current("a")
		return p.RequiresApproval("prod")
	}, 3*policies.RefreshEvery, 50*time.Millisecond, "another process's put applies within the refresh interval")
}

func TestADatabaseWithoutThePolicyTableHasNoPolicies(t *testing.T) {
	pool := testenv.Postgres(t)
	_, err := pool.Exec(context.Background(), `DROP TABLE tenant_policies`)
	require.NoError(t, err)
	all, err := policies.NewStore(pool).All(context.Background())
	require.NoError(t, err, "an api ahead of its migration still takes writes")
	require.Empty(t, all)
}
