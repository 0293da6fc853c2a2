package nomadconf

import "time"

// Default ports of a Nomad agent. Rendered files leave the ports block to
// Nomad, so these are the ports the cluster uses unless an operator overrides
// them in a file of their own; addresses without a port get the matching one.
const (
	HTTPPort = 4646 // HTTP API and UI
	RPCPort  = 4647 // RPC between clients and servers, and among servers
	SerfPort = 4648 // Serf gossip among servers
)

// Pool names from the production layout. Any other valid name is a custom
// pool and gets the policy of DefaultPool.
const (
	PoolWarm    = "warm"    // long-running services: stability first
	PoolBatch   = "batch"   // offline and short jobs: throughput first
	PoolSpecial = "special" // critical jobs: highest priority
	DefaultPool = "default" // Nomad's own default pool; also the policy of custom pools
)

// Agent is the Nomad agent configuration of one node. Render turns it into
// the files of /etc/nomad.d.
type Agent struct {
	// Name is the agent's unique name in the cluster (Nomad defaults it to
	// the hostname, which collides when several agents share a host).
	Name string
	// Region is the Nomad region; certificates name it as
	// server.<region>.nomad, so it is limited to letters, digits, '-' and '_'.
	Region string
	// Datacenter is the Nomad datacenter of the node.
	Datacenter string
	// DataDir is the absolute path of Nomad's state directory.
	DataDir string
	// BindAddr is the IP every listener binds to; empty leaves Nomad's
	// default, 0.0.0.0.
	BindAddr string
	// AdvertiseAddr is the IP advertised for HTTP, RPC and Serf; Nomad adds
	// the configured ports.
	AdvertiseAddr string
	// LogLevel is one of TRACE, DEBUG, INFO, WARN, ERROR, OFF (any case);
	// empty leaves Nomad's default, INFO.
	LogLevel string
	// Server, when set, makes the agent a server.
	Server *Server
	// Client, when set, makes the agent a client.
	Client *Client
	// TLS names the certificate files; mutual TLS is always on.
	TLS TLS
	// ACL enables Nomad's ACL system.
	ACL bool
	// Telemetry enables Prometheus metrics with allocation and node metrics.
	Telemetry bool
	// ManagedBy names the writer in each file's header comment, such as
	// "nomad-bootstrapd 0.1.0"; empty means "nomad-bootstrapd".
	ManagedBy string
}

// Server is the server part of an agent.
type Server struct {
	// BootstrapExpect is the number of servers that must be present before
	// the cluster elects a leader: 1, 3 or 5.
	BootstrapExpect int
	// Encrypt is the gossip encryption key, standard base64 of 32 bytes.
	Encrypt string
	// RetryJoin lists the Serf addresses of the servers, "ip" or "ip:port"
	// ("[ipv6]:port"); a bare IP gets SerfPort. Required when
	// BootstrapExpect > 1; the server's own address may be among them.
	RetryJoin []string
	// RetryInterval is the wait between join attempts; zero leaves Nomad's
	// default (30s), otherwise at least one second.
	RetryInterval time.Duration
}

// Client is the client part of an agent.
type Client struct {
	// Servers lists the RPC addresses of the servers, "ip" or "ip:port"
	// ("[ipv6]:port"); a bare IP gets RPCPort. At least one.
	Servers []string
	// NodePool is the node's pool: its node_class and meta.pool, and its
	// garbage collection policy. It is also Nomad's node pool when
	// IsolatePool is set.
	NodePool string
	// IsolatePool puts the client into the Nomad node pool NodePool, so
	// that only jobs naming that pool run on it. Otherwise the client is
	// in Nomad's default pool, where every job that names no pool is
	// placed, and jobs choose pools with node_class or ${meta.pool}.
	IsolatePool bool
	// Meta is extra node metadata; keys are identifiers and "pool" is
	// reserved for NodePool.
	Meta map[string]string
	// GC is the garbage collection and kill timeout policy; the zero value
	// means PoolDefaults(NodePool).
	GC PoolPolicy
	// Options are client options such as "driver.allowlist" or
	// "fingerprint.denylist".
	Options map[string]string
	// RawExec enables the raw_exec driver plugin.
	RawExec bool
	// NetworkInterface is the interface whose address Nomad gives tasks
	// (network_interface); empty leaves Nomad's choice, the interface of
	// the default route.
	NetworkInterface string
}

// PoolPolicy is the per-pool client policy: garbage collection of terminal
// allocations and the cap on task kill timeouts. POOLS.md explains the values
// PoolDefaults returns.
type PoolPolicy struct {
	// GCInterval is how often the client checks its GC thresholds (gc_interval).
	GCInterval time.Duration
	// MaxKillTimeout caps the kill_timeout a job may ask for (max_kill_timeout).
	MaxKillTimeout time.Duration
	// GCDiskUsageThreshold is the disk usage percent of the alloc dir above
	// which terminal allocations are collected (gc_disk_usage_threshold).
	GCDiskUsageThreshold int
	// GCInodeUsageThreshold is the inode usage percent above which terminal
	// allocations are collected (gc_inode_usage_threshold).
	GCInodeUsageThreshold int
	// GCMaxAllocs is the number of allocations, live and terminal, the client
	// tracks before it collects terminal ones (gc_max_allocs).
	GCMaxAllocs int
	// GCParallelDestroys is how many allocations may be destroyed at once
	// (gc_parallel_destroys).
	GCParallelDestroys int
}

// TLS names the PEM files of the agent's mutual TLS. All paths are absolute.
type TLS struct {
	CAFile   string // CA certificate
	CertFile string // agent certificate
	KeyFile  string // agent private key
}

// PoolDefaults returns the policy of a pool: the seed's pools warm, batch and
// special have their own; every other pool, "default" included, gets Nomad's
// own client defaults, written out.
func PoolDefaults(pool string) PoolPolicy {
	switch pool {
	case PoolWarm:
		// Long-running services: keep terminal allocations (and their logs)
		// around, collect calmly, and give services a full minute to drain.
		return PoolPolicy{
			GCInterval:            5 * time.Minute,
			GCDiskUsageThreshold:  85,
			GCInodeUsageThreshold: 80,
			GCMaxAllocs:           100,
			GCParallelDestroys:    2,
			MaxKillTimeout:        60 * time.Second,
		}
	case PoolBatch:
		// Short jobs churn: collect early and in parallel so placements
		// never wait for disk, and do not let a job hold a slot for long.
		return PoolPolicy{
			GCInterval:            1 * time.Minute,
			GCDiskUsageThreshold:  70,
			GCInodeUsageThreshold: 70,
			GCMaxAllocs:           300,
			GCParallelDestroys:    4,
			MaxKillTimeout:        30 * time.Second,
		}
	case PoolSpecial:
		// Critical jobs on sparsely packed nodes: collect only under real
		// pressure, one at a time, and allow a long graceful shutdown.
		return PoolPolicy{
			GCInterval:            10 * time.Minute,
			GCDiskUsageThreshold:  90,
			GCInodeUsageThreshold: 85,
			GCMaxAllocs:           50,
			GCParallelDestroys:    1,
			MaxKillTimeout:        120 * time.Second,
		}
	default:
		// Nomad's client defaults, 1.6 through 2.0 (command/agent/config.go).
		return PoolPolicy{
			GCInterval:            1 * time.Minute,
			GCDiskUsageThreshold:  80,
			GCInodeUsageThreshold: 70,
			GCMaxAllocs:           50,
			GCParallelDestroys:    2,
			MaxKillTimeout:        30 * time.Second,
		}
	}
}
