package acl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/nomad/api"
)

// fakeNomad is an in-memory API that knows one management secret.
type fakeNomad struct {
	leaderAfter int // Leader answers "" this many times first
	leaderCalls int

	mgmt     string // "" until bootstrapped
	resetIdx uint64
	policies map[string]*api.ACLPolicy
	pools    map[string]*api.NodePool
	tokens   []*api.ACLToken
	writes   int
	index    uint64
}

func newFake() *fakeNomad {
	return &fakeNomad{
		policies: map[string]*api.ACLPolicy{},
		pools: map[string]*api.NodePool{
			"default": {Name: "default", Description: "Default node pool."},
			"all":     {Name: "all", Description: "Node pool with all nodes in the cluster."},
		},
	}
}

var errDenied = errors.New("fake: Permission denied")

func (f *fakeNomad) auth(token string) error {
	if f.mgmt == "" || token != f.mgmt {
		return errDenied
	}
	return nil
}

func (f *fakeNomad) Leader(context.Context) (string, error) {
	f.leaderCalls++
	if f.leaderCalls <= f.leaderAfter {
		return "", nil
	}
	return "127.0.0.1:4647", nil
}

func (f *fakeNomad) BootstrapACL(_ context.Context, secret string) (*api.ACLToken, error) {
	if f.mgmt != "" {
		return nil, fmt.Errorf("%w: ACL bootstrap already done (reset index: %d)", ErrAlreadyBootstrapped, f.resetIdx)
	}
	f.writes++
	f.index++
	f.mgmt, f.resetIdx = secret, f.index
	tok := &api.ACLToken{AccessorID: "boot", SecretID: secret, Name: "Bootstrap Token", Type: "management", CreateIndex: f.index}
	f.tokens = append(f.tokens, tok)
	return tok, nil
}

func (f *fakeNomad) TokenSelf(_ context.Context, secret string) (*api.ACLToken, error) {
	for _, t := range f.tokens {
		if t.SecretID == secret {
			return t, nil
		}
	}
	return nil, nil
}

func (f *fakeNomad) PolicyInfo(_ context.Context, token, name string) (*api.ACLPolicy, error) {
	if err := f.auth(token); err != nil {
		return nil, err
	}
	return f.policies[name], nil
}

func (f *fakeNomad) UpsertPolicy(_ context.Context, token string, p *api.ACLPolicy) error {
	if err := f.auth(token); err != nil {
		return err
	}
	f.writes++
	cp := *p
	f.policies[p.Name] = &cp
	return nil
}

func (f *fakeNomad) ListTokens(_ context.Context, token string) ([]*api.ACLTokenListStub, error) {
	if err := f.auth(token); err != nil {
		return nil, err
	}
	var out []*api.ACLTokenListStub
	for _, t := range f.tokens {
		out = append(out, &api.ACLTokenListStub{AccessorID: t.AccessorID, Name: t.Name, Type: t.Type, Policies: t.Policies, CreateIndex: t.CreateIndex})
	}
	return out, nil
}

func (f *fakeNomad) TokenInfo(_ context.Context, token, accessorID string) (*api.ACLToken, error) {
	if err := f.auth(token); err != nil {
		return nil, err
	}
	for _, t := range f.tokens {
		if t.AccessorID == accessorID {
			cp := *t
			return &cp, nil
		}
	}
	return nil, errors.New("fake: ACL token not found")
}

func (f *fakeNomad) CreateToken(_ context.Context, token string, t *api.ACLToken) (*api.ACLToken, error) {
	if err := f.auth(token); err != nil {
		return nil, err
	}
	f.writes++
	f.index++
	cp := *t
	cp.AccessorID = fmt.Sprintf("acc-%d", f.index)
	cp.SecretID = fmt.Sprintf("secret-%d", f.index)
	cp.CreateIndex = f.index
	f.tokens = append(f.tokens, &cp)
	return &cp, nil
}

func (f *fakeNomad) UpdateToken(_ context.Context, token string, t *api.ACLToken) (*api.ACLToken, error) {
	if err := f.auth(token); err != nil {
		return nil, err
	}
	for i, cur := range f.tokens {
		if cur.AccessorID == t.AccessorID {
			f.writes++
			cp := *t
			f.tokens[i] = &cp
			return &cp, nil
		}
	}
	return nil, errors.New("fake: ACL token not found")
}

func (f *fakeNomad) NodePoolInfo(_ context.Context, token, name string) (*api.NodePool, error) {
	if err := f.auth(token); err != nil {
		return nil, err
	}
	if p, ok := f.pools[name]; ok {
		cp := *p
		return &cp, nil
	}
	return nil, nil
}

func (f *fakeNomad) RegisterNodePool(_ context.Context, token string, p *api.NodePool) error {
	if err := f.auth(token); err != nil {
		return err
	}
	if p.Name == "default" || p.Name == "all" {
		return errors.New("fake: modifying built-in node pool is not allowed")
	}
	f.writes++
	cp := *p
	f.pools[p.Name] = &cp
	return nil
}

func TestWaitLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNomad{leaderAfter: 8}
		b := &Bootstrapper{API: f}
		start := time.Now()
		if err := b.WaitLeader(t.Context(), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if got, want := time.Since(start), 8*DefaultPollInterval; got != want {
			t.Errorf("leader found after %v, want %v", got, want)
		}

		f = &fakeNomad{leaderAfter: 1 << 30}
		b = &Bootstrapper{API: f, PollInterval: time.Second}
		start = time.Now()
		err := b.WaitLeader(t.Context(), 4500*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no leader elected") {
			t.Fatalf("err = %v, want a deadline with no leader", err)
		}
		if got := time.Since(start); got != 4500*time.Millisecond {
			t.Errorf("gave up after %v, want 4.5s", got)
		}
		if f.leaderCalls != 5 {
			t.Errorf("asked %d times, want 5 (at 0s, 1s, ... 4s)", f.leaderCalls)
		}
	})
}

func TestBootstrapFake(t *testing.T) {
	ctx := t.Context()
	f := newFake()
	b := &Bootstrapper{API: f}
	secret := NewManagementSecret()

	if _, err := b.Bootstrap(ctx, "not-a-uuid"); err == nil || f.writes != 0 {
		t.Fatalf("non-UUID secret: err %v, %d writes", err, f.writes)
	}
	tok, err := b.Bootstrap(ctx, secret)
	if err != nil || tok.SecretID != secret {
		t.Fatalf("first bootstrap: %v, %+v", err, tok)
	}
	tok, err = b.Bootstrap(ctx, secret)
	if err != nil || tok.SecretID != secret || tok.Type != "management" {
		t.Fatalf("second bootstrap: %v, %+v", err, tok)
	}
	writes := f.writes
	_, err = b.Bootstrap(ctx, NewManagementSecret())
	if !errors.Is(err, ErrBootstrappedElsewhere) {
		t.Fatalf("foreign bootstrap: %v, want ErrBootstrappedElsewhere", err)
	}
	if !strings.Contains(err.Error(), "write 1 into <data_dir>/server/acl-bootstrap-reset") {
		t.Errorf("message does not give the reset index: %v", err)
	}
	if f.writes != writes {
		t.Errorf("a refused bootstrap wrote %d times", f.writes-writes)
	}
}

func TestApplyFake(t *testing.T) {
	ctx := t.Context()
	f := newFake()
	b := &Bootstrapper{API: f}
	mgmt := "00000000-0000-4000-8000-000000000001"
	if _, err := b.Bootstrap(ctx, mgmt); err != nil {
		t.Fatal(err)
	}
	// A client registered in "batch" before Apply: the pool exists
	// without a description, with settings of its own.
	f.pools["batch"] = &api.NodePool{Name: "batch", Meta: map[string]string{"team": "data"}}
	// Two tokens of one name (left by an earlier, concurrent run): the
	// older one is reused and its drifted policies put back.
	f.tokens = append(f.tokens,
		&api.ACLToken{AccessorID: "dep-new", SecretID: "s-new", Name: TokenName(PolicyDeployer), Type: "client", Policies: []string{PolicyDeployer}, CreateIndex: 50},
		&api.ACLToken{AccessorID: "dep-old", SecretID: "s-old", Name: TokenName(PolicyDeployer), Type: "client", Policies: []string{PolicyReadonly}, CreateIndex: 40},
	)
	f.index = 100

	res, err := b.Apply(ctx, mgmt, []Pool{
		{Name: "gpu", Description: "GPU nodes"},
		{Name: "default", Description: "ignored"},
		{Name: "warm", Description: "Overridden"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Result{
		Policies: map[string]Action{PolicyAnonymous: Created, PolicyReadonly: Created, PolicyDeployer: Created, PolicyOpsAdmin: Created},
		Pools:    map[string]Action{"warm": Created, "batch": Updated, "special": Created, "gpu": Created},
		Tokens:   map[string]Action{PolicyReadonly: Created, PolicyDeployer: Updated, PolicyOpsAdmin: Created},
		Secrets:  map[string]string{PolicyReadonly: "secret-101", PolicyDeployer: "s-old", PolicyOpsAdmin: "secret-102"},
	}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("first Apply (-want +got):\n%s", d)
	}
	if got := f.pools["batch"]; got.Description != DefaultPools()[1].Description || got.Meta["team"] != "data" {
		t.Errorf("batch pool = %+v: description not set or meta lost", got)
	}
	if got := f.pools["warm"].Description; got != "Overridden" {
		t.Errorf("warm description %q, want the caller's", got)
	}
	if got := f.pools["default"].Description; got != "Default node pool." {
		t.Errorf("built-in pool touched: %q", got)
	}

	writes := f.writes
	res, err = b.Apply(ctx, mgmt, []Pool{{Name: "gpu", Description: "GPU nodes"}, {Name: "warm", Description: "Overridden"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed() || f.writes != writes {
		t.Errorf("second Apply changed things (%d writes): %+v", f.writes-writes, res)
	}
	if d := cmp.Diff(want.Secrets, res.Secrets); d != "" {
		t.Errorf("secrets changed (-want +got):\n%s", d)
	}

	if _, err := b.Apply(ctx, mgmt, []Pool{{Name: "bad name"}}); err == nil {
		t.Error("invalid pool name accepted")
	}
	if _, err := b.Apply(ctx, "00000000-0000-4000-8000-000000000002", nil); !errors.Is(err, errDenied) {
		t.Errorf("Apply with a wrong token: %v", err)
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Unchanged: "unchanged", Created: "created", Updated: "updated", Action(9): "Action(9)"} {
		if a.String() != want {
			t.Errorf("%d: %q, want %q", int(a), a.String(), want)
		}
	}
}
