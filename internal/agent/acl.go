package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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

// aclSecret returns the management token's secret: one the operator stored
// in the ACL directory, else one derived from the CA key, which only the
// servers hold (the CA holder, and the others through the escrow).
func (a *Agent) aclSecret() (secret string, operator bool, err error) {
	if s, err := acl.LoadToken(a.paths.ACLDir(), acl.ManagementTokenName); err == nil {
		return s, true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	a.mu.Lock()
	ca := a.ca
	a.mu.Unlock()
	var seed []byte
	if ca != nil {
		if seed, err = ca.KeyPEM(); err != nil {
			return "", false, err
		}
	} else {
		if seed, err = a.caStore().EscrowedKey(); errors.Is(err, fs.ErrNotExist) {
			return "", false, fmt.Errorf("the escrowed CA key has not arrived yet: %w", err)
		} else if err != nil {
			return "", false, err
		}
	}
	return acl.ManagementSecret(seed), false, nil
}

// setupACL bootstraps Nomad's ACLs on the CA holder and applies the
// policies, node pools and tokens; the other servers check the management
// token and store the tokens. It reports the ACL state.
func (a *Agent) setupACL(ctx context.Context, p plan.Plan) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.tm.ACLAttempt)
	defer cancel()
	secret, operator, err := a.aclSecret()
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
	if !operator {
		tokens[acl.ManagementTokenName] = secret
	}
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
