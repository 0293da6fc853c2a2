package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/acl"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/supervise"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/systemd"
)

// Nomad's timings chosen by the plan.
const (
	nomadRetryInterval = 2 * time.Second
	nomadHTTPPort      = "4646"
)

// cloudFingerprinters probe cloud metadata services; on loopback-only nodes
// (tests, the demo) they can only fail.
const cloudFingerprinters = "env_aws,env_gce,env_azure,env_digitalocean"

// runsClient reports whether this node runs a Nomad client under p: every
// client, and every server except those with role=server or in a cluster
// of dedicated servers.
func (a *Agent) runsClient(p plan.Plan) bool {
	if !p.IsServer(a.id) {
		return true
	}
	return a.cfg.Role != string(plan.RoleServer) && !a.cfg.DedicatedServers
}

// nomadAgent returns this node's Nomad configuration under p.
func (a *Agent) nomadAgent(p plan.Plan) nomadconf.Agent {
	files := certs.TLSFiles{Dir: a.paths.NomadTLSDir()}
	role := a.certRoles(p)[0]
	na := nomadconf.Agent{
		Name:          a.name,
		Region:        p.Region,
		Datacenter:    a.cfg.Datacenter,
		DataDir:       a.paths.NomadDataDir(),
		BindAddr:      a.bind,
		AdvertiseAddr: a.advertise,
		LogLevel:      "INFO",
		TLS:           nomadconf.TLS{CAFile: files.CAPath(), CertFile: files.CertPath(role), KeyFile: files.KeyPath(role)},
		ACL:           true,
		Telemetry:     true,
	}
	var servers []string
	for _, s := range p.Servers {
		servers = append(servers, s.Address)
	}
	if p.IsServer(a.id) {
		na.Server = &nomadconf.Server{
			BootstrapExpect: p.Expect,
			Encrypt:         a.keys.NomadEncrypt,
			RetryJoin:       servers,
			RetryInterval:   nomadRetryInterval,
		}
	}
	if a.runsClient(p) {
		c := &nomadconf.Client{Servers: servers, NodePool: a.cfg.Pool, IsolatePool: a.cfg.IsolatePools, RawExec: a.cfg.RawExec}
		if addr, err := netip.ParseAddr(a.advertise); err == nil && addr.IsLoopback() {
			c.Options = map[string]string{"fingerprint.denylist": cloudFingerprinters}
			// Tasks of a loopback-only node get a loopback address too,
			// not that of the interface of the default route.
			c.NetworkInterface = loopbackInterface()
		}
		na.Client = c
	}
	return na
}

// apiCert returns the TLS files and the role of the certificate this node
// talks to Nomad's API with: the CLI certificate on servers, the client's
// on clients.
func (a *Agent) apiCert(p plan.Plan) (certs.TLSFiles, certs.Role) {
	role := certs.RoleClient
	if p.IsServer(a.id) {
		role = certs.RoleCLI
	}
	return certs.TLSFiles{Dir: a.paths.NomadTLSDir()}, role
}

// nomadAPI returns a client of the Nomad HTTP API at addr, authenticated
// with this node's certificate (the CLI certificate on servers).
func (a *Agent) nomadAPI(p plan.Plan, addr string) (*api.Client, error) {
	files, role := a.apiCert(p)
	cfg := api.DefaultConfig()
	cfg.Address = "https://" + net.JoinHostPort(addr, nomadHTTPPort)
	cfg.Region = p.Region
	cfg.SecretID = ""
	cfg.Namespace = ""
	cfg.TLSConfig = &api.TLSConfig{CACert: files.CAPath(), ClientCert: files.CertPath(role), ClientKey: files.KeyPath(role)}
	return api.NewClient(cfg)
}

// localAPI returns the client of the local Nomad agent's API that the
// pipeline polls with, kept between polls so that they reuse one TLS
// connection instead of a handshake each. It is made anew when the role or
// the certificate it authenticates with changes (renewal).
func (a *Agent) localAPI(p plan.Plan) (*api.Client, error) {
	files, role := a.apiCert(p)
	key := string(role)
	if fi, err := os.Stat(files.CertPath(role)); err == nil {
		key += "@" + fi.ModTime().String()
	}
	a.apiMu.Lock()
	defer a.apiMu.Unlock()
	if a.api != nil && a.apiKey == key {
		return a.api, nil
	}
	if a.api != nil {
		a.api.Close()
		a.api = nil
	}
	c, err := a.nomadAPI(p, a.advertise)
	if err != nil {
		return nil, err
	}
	a.api, a.apiKey = c, key
	return c, nil
}

// closeLocalAPI drops the cached client of the local Nomad agent.
func (a *Agent) closeLocalAPI() {
	a.apiMu.Lock()
	defer a.apiMu.Unlock()
	if a.api != nil {
		a.api.Close()
		a.api = nil
	}
}

// queryCtx bounds one Nomad API call.
func queryCtx(ctx context.Context) (*api.QueryOptions, context.CancelFunc) {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	return (&api.QueryOptions{AllowStale: true}).WithContext(qctx), cancel
}

// serversReady reports whether a client may start Nomad: before 1.11, once
// a server of p answers (the client's registration waits out the leader
// election by itself, so its fingerprinting overlaps the election); from
// 1.11, once a server has a leader with an initialised keyring, since a
// client that registers earlier is refused and backs off for about 25 s.
func (a *Agent) serversReady(ctx context.Context, p plan.Plan) (bool, string) {
	last := "no server answered"
	for _, s := range p.Servers {
		ok, why, err := a.serverReady(ctx, p, s)
		if err != nil {
			return false, err.Error()
		}
		if ok {
			return true, ""
		}
		last = why
	}
	return false, last
}

// serverReady asks one server whether it has a leader with a keyring.
func (a *Agent) serverReady(ctx context.Context, p plan.Plan, s plan.Server) (ok bool, why string, err error) {
	c, err := a.nomadAPI(p, s.Address)
	if err != nil {
		return false, "", err
	}
	// Each client keeps its own connections: close them, or polls pile up
	// idle connections until Nomad refuses this address
	// (http_max_conns_per_client, 100).
	defer c.Close()
	q, cancel := queryCtx(ctx)
	defer cancel()
	var leader string
	_, err = c.Raw().Query("/v1/status/leader", &leader, q)
	if !a.nomadFeat.RegisterNeedsKeyring {
		// Any answer, "No cluster leader" included, means its RPC
		// listener is up.
		if answered(err) {
			return true, "", nil
		}
		return false, fmt.Sprintf("%s: Nomad does not answer yet", s.Name), nil
	}
	if err != nil || leader == "" {
		return false, fmt.Sprintf("%s: no leader yet", s.Name), nil
	}
	var jwks struct {
		Keys []any `json:"keys"`
	}
	q, cancel = queryCtx(ctx)
	defer cancel()
	if _, err := c.Raw().Query("/.well-known/jwks.json", &jwks, q); err == nil && len(jwks.Keys) > 0 {
		return true, "", nil
	}
	return false, fmt.Sprintf("%s: leader %s, keyring not ready", s.Name, leader), nil
}

// answered reports whether a Nomad API call got an HTTP response, an error
// status included.
func answered(err error) bool {
	var ue api.UnexpectedResponseError
	return err == nil || (errors.As(err, &ue) && ue.HasStatusCode())
}

// nomadHealth queries the local Nomad agent: leader, peers, its own health,
// the servers it knows, the clients per pool and, on servers, autopilot.
func (a *Agent) nomadHealth(ctx context.Context, p plan.Plan, unit string) status.NomadStatus {
	st := status.NomadStatus{Unit: unit, Version: a.nomadFeat.Version.String(), Peers: []string{}}
	c, err := a.localAPI(p)
	if err != nil {
		return st
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
		return st
	}
	ok := st.Leader != "" && len(st.Peers) == p.Expect
	if p.IsServer(a.id) {
		ok = ok && health.Server != nil && health.Server.Ok
	}
	if a.runsClient(p) {
		ok = ok && health.Client != nil && health.Client.Ok
	}
	st.Healthy = ok
	a.nomadCluster(ctx, c, p, &st)
	return st
}

// nomadCluster adds what Nomad says of the whole cluster to st: best effort,
// since a cluster that is still forming answers only some of it.
func (a *Agent) nomadCluster(ctx context.Context, c *api.Client, p plan.Plan, st *status.NomadStatus) {
	if p.IsServer(a.id) {
		// The readonly token may read the operator API; anonymous may not.
		if secret, err := acl.LoadToken(a.paths.ACLDir(), acl.PolicyReadonly); err == nil {
			c.SetSecretID(secret)
		}
	}
	q, cancel := queryCtx(ctx)
	defer cancel()
	running := ""
	if members, err := c.Agent().MembersOpts(q); err == nil && members != nil {
		st.Servers = nomadServers(members.Members, st.Leader)
		for _, s := range st.Servers {
			if p.IsServer(a.id) && s.Name == a.name+"."+p.Region {
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
			if n != nil && running == "" && n.Name == a.name {
				running = n.Version
			}
		}
	}
	// The version the running Nomad reports (its self endpoint needs
	// agent:read, which clients hold no token for; its member or node
	// entry says the same to anyone).
	if running != "" {
		st.Version = running
		a.checkRunningNomad(running)
	}
	a.checkMixedVersions(st.Servers, st.ClientVersions)
	if !p.IsServer(a.id) {
		return
	}
	q, cancel = queryCtx(ctx)
	defer cancel()
	if h, _, err := c.Operator().AutopilotServerHealth(q); err == nil && h != nil {
		voters := 0
		for _, s := range h.Servers {
			if s.Voter {
				voters++
			}
		}
		st.Autopilot = &status.AutopilotStatus{Healthy: h.Healthy, FailureTolerance: h.FailureTolerance, Voters: voters}
	}
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

// startNomad runs `nomad agent` as this agent's child until ctx ends;
// stopped is closed once the child has stopped.
func (a *Agent) startNomad(ctx context.Context) (sup *supervise.Supervisor, stopped <-chan struct{}, err error) {
	logf, err := os.OpenFile(a.paths.NomadLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	if _, err := os.Stat(a.cfg.Nomad); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("agent: the nomad binary %s: %w; install Nomad or pass -nomad PATH", a.cfg.Nomad, err)
	}
	sup = supervise.New(supervise.Config{
		Path:   a.cfg.Nomad,
		Args:   []string{"agent", "-config", a.paths.NomadConfigDir()},
		Output: logf,
		Logger: a.log.With("component", "nomad"),
	})
	// The supervisor of the previous pipeline, if any, has stopped.
	a.recover(causeNomadRun)
	done := make(chan struct{})
	a.bg.Go(func() {
		defer close(done)
		defer logf.Close()
		if err := sup.Run(ctx); err != nil {
			a.degrade(causeNomadRun, err.Error())
		}
	})
	return sup, done, nil
}

// startNomadUnit runs Nomad as nomad.service: it installs the unit when no
// package shipped one, enables it, and starts it, or restarts it when its
// configuration or certificates changed while it ran. An unchanged node
// leaves a running Nomad alone.
func (a *Agent) startNomadUnit(ctx context.Context, changed bool) (*systemd.Manager, error) {
	m, err := systemd.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("agent: supervise=systemd: %w; on a machine without systemd use -supervise process", err)
	}
	// The unit a package shipped, or one an administrator wrote, stays;
	// the one nomad-bootstrapd wrote follows the installed Nomad (its
	// Type= depends on the version).
	svc := systemd.Service{
		Name:    systemd.NomadService,
		Dir:     a.paths.SystemdDir(),
		Shipped: []string{a.paths.Under(systemd.UsrLibDir), a.paths.Under(systemd.LibDir)},
		Content: systemd.NomadUnit(a.cfg.Nomad, a.paths.NomadConfigDir(), a.nomadFeat.NotifyReady),
		Follow:  true,
	}
	wrote, err := m.Ensure(ctx, svc, changed)
	if wrote {
		a.log.Info("installed the nomad unit", "path", filepath.Join(svc.Dir, svc.Name), "nomad", a.nomadFeat.Version.String())
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// loopbackInterface names this machine's loopback interface ("lo" on
// Linux), or "" when there is none.
func loopbackInterface() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, i := range ifaces {
		if i.Flags&net.FlagLoopback != 0 && i.Flags&net.FlagUp != 0 {
			return i.Name
		}
	}
	return ""
}
