// Package nomadrun runs this node's Nomad agent under a committed plan: the
// configuration it gets, the API client it is reached with, starting it as a
// child process or as nomad.service, and what it reports of its health and
// of the cluster. It changes no state of the daemon's: what the daemon
// should show or record comes back to it as values.
package nomadrun

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/nomad/api"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/fingerprint"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// HTTPPort is the port of Nomad's HTTP API.
const HTTPPort = "4646"

// Nomad's timings chosen by the plan.
const retryInterval = 2 * time.Second

// cloudFingerprinters probe cloud metadata services; on loopback-only nodes
// (tests, the demo) they can only fail.
const cloudFingerprinters = "env_aws,env_gce,env_azure,env_digitalocean"

// Node is this node as Nomad sees it.
type Node struct {
	ID        string // the node ID the plan names it by
	Name      string // Nomad's agent name
	Bind      string // the IP Nomad's listeners bind to
	Advertise string // the IP Nomad advertises, and the local API is reached at
}

// Options configure a Runner.
type Options struct {
	Node Node
	// Config is the agent's merged configuration: the Nomad binary, the
	// role, pool, datacenter and client settings.
	Config config.Config
	// Paths names Nomad's configuration, data, TLS and log files.
	Paths paths.Paths
	// Features are what the installed Nomad accepts and needs (Detect).
	Features nomadver.Features
	// Encrypt is Nomad's serf encryption key (server.encrypt).
	Encrypt string
	// Logger receives the runner's logs and the supervised Nomad's events;
	// nil discards them.
	Logger *slog.Logger
	// Network is what the runner asks of this machine's network; nil is
	// the machine's own.
	Network HostNetwork
}

// HostNetwork is what the runner asks of the machine's network to choose
// the interface whose address Nomad gives tasks.
type HostNetwork interface {
	// DefaultInterface names the interface of the default route as Nomad
	// finds it, or "" with an error when there is none.
	DefaultInterface() (string, error)
	// InterfaceOf names the interface that holds addr, or "".
	InterfaceOf(addr netip.Addr) string
}

// Runner runs this node's Nomad agent. Its methods may be called from
// several goroutines.
type Runner struct {
	node    Node
	cfg     config.Config
	paths   paths.Paths
	encrypt string
	log     *slog.Logger
	network HostNetwork

	mu     sync.Mutex        // guards bin, feat, api and apiKey
	bin    string            // the nomad binary
	feat   nomadver.Features // what bin accepts and needs
	api    *api.Client       // the local Nomad agent's API, reused between polls
	apiKey string            // the role and certificate api was made with
}

// New returns the runner of o.
func New(o Options) *Runner {
	r := &Runner{node: o.Node, cfg: o.Config, paths: o.Paths, bin: o.Config.Nomad, feat: o.Features, encrypt: o.Encrypt, log: o.Logger,
		network: o.Network}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.network == nil {
		r.network = systemNetwork{}
	}
	return r
}

// Features returns what the installed Nomad accepts and needs.
func (r *Runner) Features() nomadver.Features {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.feat
}

// Binary returns the path of the nomad binary the runner starts.
func (r *Runner) Binary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bin
}

// Use makes the runner render for and start the nomad binary at path,
// whose features are feat: another version, which an upgrade installed.
// A running Nomad is left alone; Process.Use and a restart start it.
func (r *Runner) Use(path string, feat nomadver.Features) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bin, r.feat = path, feat
}

// RunsClient reports whether this node runs a Nomad client under p: every
// client, and every server except those with role=server or in a cluster
// of dedicated servers.
func (r *Runner) RunsClient(p plan.Plan) bool {
	if !p.IsServer(r.node.ID) {
		return true
	}
	return r.cfg.Role != string(plan.RoleServer) && !r.cfg.DedicatedServers
}

// Agent returns this node's Nomad configuration under p.
func (r *Runner) Agent(p plan.Plan) nomadconf.Agent {
	files := certs.TLSFiles{Dir: r.paths.NomadTLSDir()}
	role := status.CertRoles(p, r.node.ID)[0]
	na := nomadconf.Agent{
		Name:          r.node.Name,
		Region:        p.Region,
		Datacenter:    r.cfg.Datacenter,
		DataDir:       r.paths.NomadDataDir(),
		BindAddr:      r.node.Bind,
		AdvertiseAddr: r.node.Advertise,
		LogLevel:      "INFO",
		TLS:           nomadconf.TLS{CAFile: files.CAPath(), CertFile: files.CertPath(role), KeyFile: files.KeyPath(role)},
		ACL:           true,
		Telemetry:     true,
	}
	var servers []string
	for _, s := range p.Servers {
		servers = append(servers, s.Address)
	}
	if p.IsServer(r.node.ID) {
		na.Server = &nomadconf.Server{
			BootstrapExpect: p.Expect,
			Encrypt:         r.encrypt,
			RetryJoin:       servers,
			RetryInterval:   retryInterval,
		}
	}
	if r.RunsClient(p) {
		c := &nomadconf.Client{Servers: servers, NodePool: r.cfg.Pool, IsolatePool: r.cfg.IsolatePools, RawExec: r.cfg.RawExec,
			Meta: map[string]string{NodeIDMeta: r.node.ID}}
		addr, err := netip.ParseAddr(r.node.Advertise)
		switch {
		case err != nil:
		case addr.IsLoopback():
			c.Options = map[string]string{"fingerprint.denylist": cloudFingerprinters}
			// Tasks of a loopback-only node get a loopback address too,
			// not that of the interface of the default route.
			c.NetworkInterface = loopbackInterface()
		default:
			// Nomad's client gives tasks the address of the default
			// route's interface, and does not start without one: a
			// machine without a default route (an isolated network)
			// gives them the address peers reach it at.
			if name, err := r.network.DefaultInterface(); err != nil || name == "" {
				c.NetworkInterface = r.network.InterfaceOf(addr.Unmap())
			}
		}
		na.Client = c
	}
	return na
}

// NodeIDMeta is the client meta key that holds the node's ID, by which
// the servers find the Nomad node of a node the cluster evicted.
const NodeIDMeta = "nomad_bootstrapd_node_id"

// systemNetwork is the machine's own network.
type systemNetwork struct{}

// DefaultInterface asks the routing table, as Nomad's network
// fingerprint does.
func (systemNetwork) DefaultInterface() (string, error) {
	ri, err := sockaddr.NewRouteInfo()
	if err != nil {
		return "", err
	}
	return ri.GetDefaultInterfaceName()
}

// InterfaceOf names the machine's interface that holds addr; it names
// none whose name Nomad's configuration would refuse.
func (systemNetwork) InterfaceOf(addr netip.Addr) string {
	if i, ok := fingerprint.InterfaceOf(addr); ok && nomadconf.ValidInterfaceName(i.Name) {
		return i.Name
	}
	return ""
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
