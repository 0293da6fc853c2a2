package nomadrun

import (
	"context"
	"net"
	"sort"

	"github.com/hashicorp/nomad/api"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/acl"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// Keys of the warnings Health returns.
const (
	WarnVersion = "nomad-version" // the running Nomad is not the one the configuration was rendered for
	WarnMixed   = "nomad-mixed"   // a Nomad server is older than a client
)

// Warning is a warning of the node's status, by key: a Msg shows it, an
// empty Msg clears it once its cause is gone.
type Warning struct {
	Key, Msg string
}

// Health queries the local Nomad agent under p: leader, peers, its own
// health, the servers it knows, the clients per pool and, on servers,
// autopilot; unit says how Nomad runs. The warnings say, in order, which
// warnings to show or clear; a key they leave out keeps what it had, since
// Nomad did not say.
func (r *Runner) Health(ctx context.Context, p plan.Plan, unit string) (status.NomadStatus, []Warning) {
	st := status.NomadStatus{Unit: unit, Version: r.Features().Version.String(), Peers: []string{}}
	c, err := r.localAPI(p)
	if err != nil {
		return st, nil
	}
	q, cancel := queryCtx(ctx)
	defer cancel()
	c.Raw().Query("/v1/status/leader", &st.Leader, q)
	var peers []string
	if _, err := c.Raw().Query("/v1/status/peers", &peers, q); err == nil && peers != nil {
		st.Peers = peers
	}
	q, cancel = queryCtx(ctx)
	defer cancel()
	var health api.AgentHealthResponse
	if _, err := c.Raw().Query("/v1/agent/health", &health, q); err != nil {
		return st, nil
	}
	ok := st.Leader != "" && len(st.Peers) == p.Expect
	if p.IsServer(r.node.ID) {
		ok = ok && health.Server != nil && health.Server.Ok
	}
	if r.RunsClient(p) {
		ok = ok && health.Client != nil && health.Client.Ok
	}
	st.Healthy = ok
	warns := r.cluster(ctx, c, p, &st)
	return st, warns
}

// cluster adds what Nomad says of the whole cluster to st, best effort,
// since a cluster that is still forming answers only some of it, and
// returns the warnings of what it says.
func (r *Runner) cluster(ctx context.Context, c *api.Client, p plan.Plan, st *status.NomadStatus) []Warning {
	if p.IsServer(r.node.ID) {
		// The readonly token may read the operator API; anonymous may not.
		if secret, err := acl.LoadToken(r.paths.ACLDir(), acl.PolicyReadonly); err == nil {
			c.SetSecretID(secret)
		}
	}
	q, cancel := queryCtx(ctx)
	defer cancel()
	running := ""
	if members, err := c.Agent().MembersOpts(q); err == nil && members != nil {
		st.Servers = nomadServers(members.Members, st.Leader)
		for _, s := range st.Servers {
			if p.IsServer(r.node.ID) && s.Name == r.node.Name+"."+p.Region {
				running = s.Version
			}
		}
	}
	q, cancel = queryCtx(ctx)
	defer cancel()
	if nodes, _, err := c.Nodes().List(q); err == nil {
		st.Clients = poolClients(nodes)
		st.ClientVersions = clientVersions(nodes)
		for _, n := range nodes {
			if n != nil && running == "" && n.Name == r.node.Name {
				running = n.Version
			}
		}
	}
	var warns []Warning
	// The version the running Nomad reports (its self endpoint needs
	// agent:read, which clients hold no token for; its member or node
	// entry says the same to anyone).
	if running != "" {
		st.Version = running
		if w, ok := r.runningWarning(running); ok {
			warns = append(warns, w)
		}
	}
	if w, ok := mixedWarning(st.Servers, st.ClientVersions); ok {
		warns = append(warns, w)
	}
	if !p.IsServer(r.node.ID) {
		return warns
	}
	q, cancel = queryCtx(ctx)
	defer cancel()
	if h, err := AutopilotHealth(c, q); err == nil && h != nil {
		voters := 0
		for _, s := range h.Servers {
			if s.Voter {
				voters++
			}
		}
		st.Autopilot = &status.AutopilotStatus{Healthy: h.Healthy, FailureTolerance: h.FailureTolerance, Voters: voters}
	}
	return warns
}

// nomadServers lists Nomad's server members, sorted by name, marking the
// one whose RPC address is leader.
func nomadServers(members []*api.AgentMember, leader string) []status.NomadServerStatus {
	var out []status.NomadServerStatus
	for _, m := range members {
		if m == nil {
			continue
		}
		rpc := net.JoinHostPort(m.Addr, m.Tags["port"])
		out = append(out, status.NomadServerStatus{Name: m.Name, Address: m.Addr, Status: m.Status, Leader: leader != "" && rpc == leader, Version: m.Tags["build"]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// poolClients counts Nomad's clients per pool, sorted by pool. A client's
// pool is its node class (nomad-bootstrapd sets it to the pool, isolated
// in a Nomad node pool or not), else its Nomad node pool.
func poolClients(nodes []*api.NodeListStub) []status.PoolClientsStatus {
	byPool := map[string]*status.PoolClientsStatus{}
	for _, n := range nodes {
		if n == nil {
			continue
		}
		pool := n.NodeClass
		if pool == "" {
			pool = n.NodePool
		}
		if pool == "" {
			pool = "default"
		}
		pc := byPool[pool]
		if pc == nil {
			pc = &status.PoolClientsStatus{Pool: pool}
			byPool[pool] = pc
		}
		pc.Total++
		if n.Status == api.NodeStatusReady {
			pc.Ready++
		}
	}
	out := make([]status.PoolClientsStatus, 0, len(byPool))
	for _, pc := range byPool {
		out = append(out, *pc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pool < out[j].Pool })
	return out
}
