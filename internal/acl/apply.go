package acl

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"

	"github.com/hashicorp/nomad/api"
)

// Pool is a Nomad node pool that [Bootstrapper.Apply] registers.
type Pool struct {
	// Name is the pool name: letters, digits, '-' and '_', at most 128.
	Name string
	// Description is shown by `nomad node pool list` (Nomad allows 256
	// characters).
	Description string
}

// DefaultPools returns the seed's three pools: warm, batch and special.
func DefaultPools() []Pool {
	return []Pool{
		{Name: "warm", Description: "Long-running services, stability first (managed by nomad-bootstrapd)"},
		{Name: "batch", Description: "Offline and short-lived jobs, throughput first (managed by nomad-bootstrapd)"},
		{Name: "special", Description: "Critical jobs, highest priority (managed by nomad-bootstrapd)"},
	}
}

// validPoolName is Nomad's node pool name rule (structs.validNodePoolName).
var validPoolName = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,128}$`)

// Action says what Apply did to one object.
type Action int

const (
	// Unchanged means the object already was as wanted.
	Unchanged Action = iota
	// Created means the object did not exist and was created.
	Created
	// Updated means the object existed and was changed.
	Updated
)

// String returns "unchanged", "created" or "updated".
func (a Action) String() string {
	switch a {
	case Unchanged:
		return "unchanged"
	case Created:
		return "created"
	case Updated:
		return "updated"
	default:
		return fmt.Sprintf("Action(%d)", int(a))
	}
}

// Result reports what [Bootstrapper.Apply] did.
type Result struct {
	// Policies maps each policy name to what was done to it.
	Policies map[string]Action
	// Pools maps each node pool name to what was done to it.
	Pools map[string]Action
	// Tokens maps the policy of each client token (readonly, deployer,
	// ops-admin) to what was done to the token.
	Tokens map[string]Action
	// Secrets maps the policy of each client token to the token's secret ID;
	// the caller stores them, e.g. with StoreTokens. Never log them.
	Secrets map[string]string
}

// Changed reports whether Apply created or updated anything.
func (r Result) Changed() bool {
	for _, m := range []map[string]Action{r.Policies, r.Pools, r.Tokens} {
		for _, a := range m {
			if a != Unchanged {
				return true
			}
		}
	}
	return false
}

// Apply puts the seed's access model in place with the management token
// mgmt, and is idempotent:
//
//   - the four [Policies] are written when missing or different (the one
//     named anonymous is what Nomad applies to requests without a token);
//   - the node pools [DefaultPools] followed by pools are registered when
//     missing or described differently, keeping any other settings an
//     operator gave them; a later pool of the same name overrides an earlier
//     one, and Nomad's built-in pools "default" and "all" are skipped;
//   - one client token per policy readonly, deployer and ops-admin, named
//     [TokenName](policy), is created when no token of that name exists;
//     otherwise the existing one (the oldest, should there be several) is
//     reused, and set back to that one policy and no roles if it was
//     changed.
//
// Pools are registered before the tokens are made, so clients that need them
// can be started as soon as Apply returns. On error, Result holds what was
// done before it.
func (b *Bootstrapper) Apply(ctx context.Context, mgmt string, pools []Pool) (Result, error) {
	res := Result{
		Policies: map[string]Action{},
		Pools:    map[string]Action{},
		Tokens:   map[string]Action{},
		Secrets:  map[string]string{},
	}
	want, err := mergePools(pools)
	if err != nil {
		return res, err
	}
	for _, p := range Policies() {
		a, err := b.applyPolicy(ctx, mgmt, p)
		if err != nil {
			return res, err
		}
		res.Policies[p.Name] = a
	}
	for _, p := range want {
		a, err := b.applyPool(ctx, mgmt, p)
		if err != nil {
			return res, err
		}
		res.Pools[p.Name] = a
	}
	existing, err := b.API.ListTokens(ctx, mgmt)
	if err != nil {
		return res, fmt.Errorf("acl: listing tokens: %w", err)
	}
	for _, policy := range tokenPolicies {
		secret, a, err := b.applyToken(ctx, mgmt, policy, existing)
		if err != nil {
			return res, err
		}
		res.Tokens[policy] = a
		res.Secrets[policy] = secret
	}
	return res, nil
}

// mergePools returns the default pools followed by extra, without the
// built-in pools, each name once at its first position with its last
// description.
func mergePools(extra []Pool) ([]Pool, error) {
	var out []Pool
	at := map[string]int{}
	for _, p := range append(DefaultPools(), extra...) {
		if p.Name == api.NodePoolDefault || p.Name == api.NodePoolAll {
			continue
		}
		if !validPoolName.MatchString(p.Name) {
			return nil, fmt.Errorf("acl: invalid node pool name %q: use letters, digits, '-' and '_', at most 128", p.Name)
		}
		if i, ok := at[p.Name]; ok {
			out[i].Description = p.Description
			continue
		}
		at[p.Name] = len(out)
		out = append(out, p)
	}
	return out, nil
}

func (b *Bootstrapper) applyPolicy(ctx context.Context, mgmt string, p Policy) (Action, error) {
	cur, err := b.API.PolicyInfo(ctx, mgmt, p.Name)
	if err != nil {
		return 0, fmt.Errorf("acl: reading policy %s: %w", p.Name, err)
	}
	a := Created
	if cur != nil {
		if cur.Rules == p.Rules && cur.Description == p.Description {
			return Unchanged, nil
		}
		a = Updated
	}
	if err := b.API.UpsertPolicy(ctx, mgmt, &api.ACLPolicy{Name: p.Name, Description: p.Description, Rules: p.Rules}); err != nil {
		return 0, fmt.Errorf("acl: writing policy %s: %w", p.Name, err)
	}
	return a, nil
}

func (b *Bootstrapper) applyPool(ctx context.Context, mgmt string, p Pool) (Action, error) {
	cur, err := b.API.NodePoolInfo(ctx, mgmt, p.Name)
	if err != nil {
		return 0, fmt.Errorf("acl: reading node pool %s: %w", p.Name, err)
	}
	a, np := Created, &api.NodePool{Name: p.Name, Description: p.Description}
	if cur != nil {
		if cur.Description == p.Description {
			return Unchanged, nil
		}
		// A client registering in a pool that does not exist yet creates
		// it without a description; keep whatever else is set.
		a, np = Updated, cur
		np.Description = p.Description
	}
	if err := b.API.RegisterNodePool(ctx, mgmt, np); err != nil {
		return 0, fmt.Errorf("acl: registering node pool %s: %w", p.Name, err)
	}
	return a, nil
}

func (b *Bootstrapper) applyToken(ctx context.Context, mgmt, policy string, existing []*api.ACLTokenListStub) (string, Action, error) {
	name := TokenName(policy)
	var found []*api.ACLTokenListStub
	for _, t := range existing {
		if t != nil && t.Name == name {
			found = append(found, t)
		}
	}
	if len(found) == 0 {
		tok, err := b.API.CreateToken(ctx, mgmt, &api.ACLToken{Name: name, Type: "client", Policies: []string{policy}})
		if err != nil {
			return "", 0, fmt.Errorf("acl: creating token %s: %w", name, err)
		}
		return tok.SecretID, Created, nil
	}
	oldest := slices.MinFunc(found, func(a, b *api.ACLTokenListStub) int { return cmp.Compare(a.CreateIndex, b.CreateIndex) })
	tok, err := b.API.TokenInfo(ctx, mgmt, oldest.AccessorID)
	if err != nil {
		return "", 0, fmt.Errorf("acl: reading token %s: %w", name, err)
	}
	if tok.Type == "client" && slices.Equal(tok.Policies, []string{policy}) && len(tok.Roles) == 0 {
		return tok.SecretID, Unchanged, nil
	}
	upd := *tok
	upd.Type = "client"
	upd.Policies = []string{policy}
	upd.Roles = nil
	if _, err := b.API.UpdateToken(ctx, mgmt, &upd); err != nil {
		return "", 0, fmt.Errorf("acl: updating token %s: %w", name, err)
	}
	return tok.SecretID, Updated, nil
}
