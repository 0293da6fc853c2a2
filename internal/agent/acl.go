package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/hashicorp/nomad/api"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/acl"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// ACL states shown by status.
const (
	aclPending   = "pending"
	aclReady     = "bootstrapped"
	aclElsewhere = "bootstrapped elsewhere"
)

// managementSecret returns the management token's secret: the one stored
// in the ACL directory (by the operator, or by this agent), else the one of
// the escrow the CA holder sealed to this server. The CA holder, holding
// neither, makes a random one and stores it before anything uses it; it
// reaches the other servers only in their escrows.
func (a *Agent) managementSecret() (string, error) {
	a.mgmtMu.Lock()
	defer a.mgmtMu.Unlock()
	dir := a.paths.ACLDir()
	if s, err := acl.LoadToken(dir, acl.ManagementTokenName); err == nil {
		return s, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	e, err := a.caStore().Escrow()
	if err == nil {
		return e.Management, nil
	}
	a.mu.Lock()
	holding := a.ca != nil
	a.mu.Unlock()
	if !holding {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("the escrowed CA key and management token have not arrived yet: %w", err)
		}
		return "", err
	}
	s := acl.NewManagementSecret()
	if err := acl.StoreTokens(dir, map[string]string{acl.ManagementTokenName: s}); err != nil {
		return "", err
	}
	a.log.Info("made the ACL management token", "file", filepath.Join(dir, acl.ManagementTokenName+".token"))
	return s, nil
}

// setupACL bootstraps Nomad's ACLs on the CA holder and applies the
// policies, node pools and tokens; the other servers check the management
// token and store the tokens. It reports the ACL state.
func (a *Agent) setupACL(ctx context.Context, p plan.Plan) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.tm.ACLAttempt)
	defer cancel()
	secret, err := a.managementSecret()
	if err != nil {
		return aclPending, err
	}
	c, err := a.nomad.Client(p, a.advertise)
	if err != nil {
		return aclPending, err
	}
	defer c.Close()
	b := acl.New(c)
	tokens := map[string]string{}
	if p.CAHolder == a.id {
		if _, err := b.Bootstrap(ctx, secret); err != nil {
			if errors.Is(err, acl.ErrBootstrappedElsewhere) {
				return aclElsewhere, err
			}
			return aclPending, err
		}
		res, err := b.Apply(ctx, secret, a.clusterPools())
		if err != nil {
			return aclPending, err
		}
		for policy, s := range res.Secrets {
			tokens[policy] = s
		}
		if res.Changed() {
			a.log.Info("ACL policies, node pools and tokens applied", "tokens", a.paths.ACLDir())
		}
	} else {
		self, err := b.API.TokenSelf(ctx, secret)
		if err != nil || self == nil {
			return aclPending, fmt.Errorf("the management token does not work yet (%v)", err)
		}
		list, err := b.API.ListTokens(ctx, secret)
		if err != nil {
			return aclPending, err
		}
		for _, policy := range []string{acl.PolicyReadonly, acl.PolicyDeployer, acl.PolicyOpsAdmin} {
			i := slices.IndexFunc(list, func(t *api.ACLTokenListStub) bool { return t.Name == acl.TokenName(policy) })
			if i < 0 {
				return aclPending, fmt.Errorf("the %s token does not exist yet", policy)
			}
			t, err := b.API.TokenInfo(ctx, secret, list[i].AccessorID)
			if err != nil || t == nil {
				return aclPending, fmt.Errorf("reading the %s token: %v", policy, err)
			}
			tokens[policy] = t.SecretID
		}
	}
	tokens[acl.ManagementTokenName] = secret
	if err := acl.StoreTokens(a.paths.ACLDir(), tokens); err != nil {
		return aclPending, err
	}
	return aclReady, nil
}

// clusterPools returns the seed's pools and every other pool a member uses.
func (a *Agent) clusterPools() []acl.Pool {
	pools := acl.DefaultPools()
	known := map[string]bool{"default": true, "all": true}
	for _, p := range pools {
		known[p.Name] = true
	}
	for _, m := range a.tr.Members() {
		if m.MetaErr != nil || m.State == gossip.StateLeft || known[m.Meta.Pool] {
			continue
		}
		known[m.Meta.Pool] = true
		pools = append(pools, acl.Pool{Name: m.Meta.Pool, Description: "Pool of node " + m.Name + ", registered by nomad-bootstrapd"})
	}
	return pools
}
