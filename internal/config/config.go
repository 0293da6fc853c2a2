// Package config loads the agent's configuration: built-in defaults, then the
// HCL file, then the environment, then command-line flags, each layer
// overriding the one before (Merge). One table of settings, Fields, gives
// every setting's file key, flag, environment variable and help text; the
// flags and the file's schema are made from it.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

// TokenEnv is the environment variable read like -token.
const TokenEnv = "NOMAD_BOOTSTRAPD_TOKEN"

// Supervise modes: how Nomad is run.
const (
	SuperviseSystemd = "systemd" // Nomad runs as nomad.service
	SuperviseProcess = "process" // the agent runs Nomad as its child
	SuperviseNone    = "none"    // nothing is started; configuration only
)

// Config is the agent's complete configuration.
type Config struct {
	// Token is the join token. It is a secret: never log it.
	Token string
	// TokenFile names a file holding the join token.
	TokenFile string
	// Join lists seed addresses ("ip" or "ip:port") to gossip with.
	Join []string
	// Bind is the address to listen on: an IP or a go-sockaddr template.
	// Empty means the advertise address.
	Bind string
	// Advertise is the address peers reach this node at: an IP or a
	// go-sockaddr template. Empty means Bind, or the private address of the
	// interface with the default route when both are empty.
	Advertise string
	// Port is the gossip port (TCP and UDP).
	Port int
	// Name is the node's unique name; empty means the hostname.
	Name string
	// Role is the node's preference: auto, server or client.
	Role string
	// Pool is the Nomad node pool of the node's client.
	Pool string
	// Zone is the failure zone; servers are spread across zones.
	Zone string
	// Datacenter is the Nomad datacenter.
	Datacenter string
	// Region is the Nomad region; every node of a cluster must agree.
	Region string
	// Expect is the number of Nomad servers: 1, 3 or 5; every node must agree.
	Expect int
	// MinMembers is how many members must be alive before a plan is
	// proposed; 0 means Expect.
	MinMembers int
	// Settle is how long membership must be stable before a plan is proposed.
	Settle time.Duration
	// BootstrapSize is the number of machines started together for the
	// first election; once that many are alive the plan is proposed at
	// once, without waiting for Settle. 0 means unknown.
	BootstrapSize int
	// Supervise chooses how Nomad is run: systemd, process or none.
	Supervise string
	// Nomad is the path of the nomad binary.
	Nomad string
	// NomadDir is a directory of versioned nomad binaries (nomad-1.6.3)
	// that a rolling upgrade (upgrade nomad) takes the next version from
	// when supervise = "process"; empty: the package manager installs it
	// (supervise = "systemd").
	NomadDir string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// DedicatedServers keeps Nomad servers from also running a client. A
	// node with role=server never runs a client either way.
	DedicatedServers bool
	// CertLifetime is the lifetime of the certificates the CA issues;
	// they are renewed at half of it. At least MinCertLifetime.
	CertLifetime time.Duration
	// CAFailoverAfter is how long the CA holder must be down before the
	// next server signs with the escrowed CA key.
	CAFailoverAfter time.Duration
	// GossipKeyRotation is how often the CA holder rotates Nomad's gossip
	// key; zero never (keys rotate still does on command).
	GossipKeyRotation time.Duration
	// CARotationPercent is how much of the cluster CA's lifetime, in
	// percent, passes before the CA holder rotates it; zero never
	// (ca rotate still does on command).
	CARotationPercent int
	// SnapshotInterval is how often each server saves a snapshot of
	// Nomad's state and keyring; zero never (snapshot save still does on
	// command).
	SnapshotInterval time.Duration
	// SnapshotRetain is how many scheduled snapshots each server keeps.
	SnapshotRetain int
	// BehindNAT lets the CA holder accept a certificate request from
	// another address than the requesting member's.
	BehindNAT bool
	// ServerReplaceAfter is how long a server must be down before the
	// remaining servers agree on a plan that replaces it.
	ServerReplaceAfter time.Duration
	// CA names an intermediate CA signed by the operator's offline root;
	// the zero value lets the CA holder create its own CA.
	CA CAFiles
	// RawExec enables Nomad's raw_exec driver on clients (tasks run
	// unisolated as root: only for trusted jobs).
	RawExec bool
	// IsolatePools puts each client into the Nomad node pool named by
	// Pool, so that only jobs naming that pool run on it. Off by default:
	// clients are in Nomad's default pool, where jobs that name no pool
	// run, and jobs choose pools with node_class or ${meta.pool}.
	IsolatePools bool
	// MetricsAddr is the host:port of the agent's Prometheus endpoint;
	// empty turns it off.
	MetricsAddr string
}

// DefaultMetricsAddr serves the agent's metrics on this machine only.
const DefaultMetricsAddr = "127.0.0.1:4652"

// MinCertLifetime is the shortest cert_lifetime: a certificate is backdated
// five minutes and renewed at half its validity, so an hour renews it about
// 27 minutes after issue rather than in a loop.
const MinCertLifetime = time.Hour

// DefaultGossipKeyRotation is how often the gossip keys are rotated
// unless gossip_key_rotation says otherwise.
const DefaultGossipKeyRotation = 30 * 24 * time.Hour

// DefaultCARotationPercent is how much of its lifetime, in percent, the
// cluster CA serves before it is rotated, unless ca_rotation_percent says
// otherwise.
const DefaultCARotationPercent = 80

// MinCARotationPercent and MaxCARotationPercent bound ca_rotation_percent
// (besides 0): earlier than half its lifetime makes rotations pointlessly
// often; later than 99 percent leaves too little time to finish one.
const (
	MinCARotationPercent = 50
	MaxCARotationPercent = 99
)

// DefaultSnapshotInterval and DefaultSnapshotRetain keep a day of hourly
// snapshots unless snapshot_interval and snapshot_retain say otherwise.
const (
	DefaultSnapshotInterval = time.Hour
	DefaultSnapshotRetain   = 24
)

// MinSnapshotInterval is the shortest snapshot_interval: each snapshot
// streams all of Nomad's state from its leader.
const MinSnapshotInterval = 30 * time.Second

// MinGossipKeyRotation is the shortest scheduled rotation of the gossip
// key: each is a rolling change on every server.
const MinGossipKeyRotation = time.Hour

// Default returns the built-in defaults: the first layer, which the
// configuration file, the environment and the flags override (see Merge).
func Default() Config {
	return Config{
		// No token: one must come from token_file, the environment or a
		// flag (ResolveToken says how).
		Token:     "",
		TokenFile: "",
		// No seeds: a node alone founds a cluster of its own; others
		// join it.
		Join: nil,
		// Listen on the advertise address.
		Bind: "",
		// The private address of the interface with the default route.
		Advertise: "",
		// The gossip port every node of a cluster shares; the CA endpoint
		// is on the next one.
		Port: 4650,
		// The hostname.
		Name: "",
		// Any node may be chosen as a server.
		Role: "auto",
		// Nomad's own default pool name; its clients are in Nomad's
		// default node pool unless IsolatePools.
		Pool: "default",
		// No failure zones: servers are chosen by size and node ID only.
		Zone: "",
		// Nomad's own defaults, so a cluster matches Nomad's documentation.
		Datacenter: "dc1",
		Region:     "global",
		// Three servers: Raft keeps a quorum when one fails.
		Expect: 3,
		// 0 means EffectiveMinMembers: a majority of BootstrapSize,
		// else Expect.
		MinMembers: 0,
		// Long enough for the machines of one boot wave to see each other
		// (gossip converges in well under a second at 10 nodes).
		Settle: 3 * time.Second,
		// Unknown: wait for Settle.
		BootstrapSize: 0,
		// Nomad as nomad.service, as the packages install it.
		Supervise: SuperviseSystemd,
		// Where HashiCorp's packages put the nomad binary.
		Nomad:    "/usr/bin/nomad",
		LogLevel: "info",
		// Servers also run a client: small clusters need every machine.
		DedicatedServers: false,
		// 24 hours, renewed at half (12 hours). Nomad checks no revocation
		// list, so an evicted node's certificates must expire within a
		// day; the 12 hours left at renewal are what an outage of the CA
		// may last.
		CertLifetime: certs.DefaultLeafLifetime,
		// As Nomad rotates its own keyring of Variables and workload
		// identities: 30 days.
		GossipKeyRotation: DefaultGossipKeyRotation,
		// Four years into the CA's five: a year to spare should the
		// rotation need an operator.
		CARotationPercent: DefaultCARotationPercent,
		SnapshotInterval:  DefaultSnapshotInterval,
		SnapshotRetain:    DefaultSnapshotRetain,
		// Long enough to ride out a reboot of the CA holder, short enough
		// that new nodes are not kept waiting for long.
		CAFailoverAfter: 2 * time.Minute,
		// Well past a reboot or a short network outage: a replaced server
		// is a new Raft peer and a restart of Nomad on the new server.
		ServerReplaceAfter: 10 * time.Minute,
		// The CA holder makes its own cluster CA.
		CA: CAFiles{},
		// raw_exec runs tasks unisolated as root: only on request.
		RawExec: false,
		// Clients in Nomad's default node pool, where jobs naming no
		// pool run.
		IsolatePools: false,
		// Prometheus metrics on this machine only.
		MetricsAddr: DefaultMetricsAddr,
	}
}

// CAFiles locate an operator-supplied intermediate CA.
type CAFiles struct {
	CertFile  string // the intermediate's certificate (PEM)
	KeyFile   string // its private key (PEM, 0600)
	ChainFile string // the certificates above it, up to the offline root (PEM)
}

// Set reports whether an intermediate CA is configured.
func (f CAFiles) Set() bool { return f.CertFile != "" || f.KeyFile != "" || f.ChainFile != "" }

// ResolveToken returns the join token text from Token or TokenFile. It warns
// through warn when the token file can be read by other users.
func (c *Config) ResolveToken(warn func(string)) (string, error) {
	switch {
	case c.Token != "" && c.TokenFile != "":
		return "", errors.New("config: both token and token_file are set; use one")
	case c.Token != "":
		return c.Token, nil
	case c.TokenFile != "":
		fi, err := os.Stat(c.TokenFile)
		if err != nil {
			return "", fmt.Errorf("config: token file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 && warn != nil {
			warn(fmt.Sprintf("token file %s can be read by other users (mode %v); run: chmod 600 %s", c.TokenFile, fi.Mode().Perm(), c.TokenFile))
		}
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return "", fmt.Errorf("config: token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	default:
		return "", fmt.Errorf("config: no join token: pass -token-file FILE, set %s, or put token_file in the config file; create a token with `nomad-bootstrapd token create`", TokenEnv)
	}
}
