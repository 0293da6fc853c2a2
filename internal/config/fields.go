package config

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is the type of a setting's value.
type Kind int

// Kinds of settings.
const (
	String   Kind = iota // a string
	Int                  // a whole number
	Bool                 // true or false; a flag without a value sets it
	Duration             // "3s", "10m": a string in the file
	List                 // strings: a list in the file, comma-separated on the command line
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case String:
		return "string"
	case Int:
		return "int"
	case Bool:
		return "bool"
	case Duration:
		return "duration"
	case List:
		return "list"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Field describes one setting of Config: where each layer takes it from and
// how to read and write it; its default is its value in Default(). The
// flags, the configuration file's schema, join's rewriting of the flags
// into a file, shell completion, and the checks of the packaged
// configuration file and of the README all come from Fields.
type Field struct {
	// Key is the setting's key in the configuration file.
	Key string
	// Block is the block of the configuration file that holds Key; empty
	// at the top level. Every key of a block is required in it.
	Block string
	// Flag is the agent's command-line flag; empty when only the file
	// sets it.
	Flag string
	// Env is an environment variable read like the flag; empty for none.
	Env string
	// Usage is the flag's help text; a word in backquotes names the
	// flag's value, as in the flag package.
	Usage string
	// Values are the values shell completion offers for the flag; for
	// supervise and log_level, the only valid ones (Validate).
	Values []string
	// Path says the value names a file: shell completion offers files.
	Path bool
	// Excludes is the Name of the setting this one stands for instead:
	// a layer that sets this one and not that one clears that one.
	Excludes string
	// ptr returns the setting's variable in c: a *string, *int, *bool,
	// *time.Duration or *[]string, as Kind says.
	ptr func(c *Config) any
}

// fields is the table of settings, in the order join writes them.
var fields = []Field{
	{Key: "token", Flag: "token", Env: TokenEnv, Excludes: "token_file",
		Usage: "join `token`, the server token or a client token (or set " + TokenEnv + "; prefer -token-file: command lines are visible to other users)",
		ptr:   func(c *Config) any { return &c.Token }},
	{Key: "token_file", Flag: "token-file", Excludes: "token", Path: true,
		Usage: "`file` holding the join token, the server token or a client token",
		ptr:   func(c *Config) any { return &c.TokenFile }},
	{Key: "join", Flag: "join",
		Usage: "comma-separated `seeds` of nodes already in the cluster: ip, ip:port, host[:port], dns+srv://_service._tcp.domain or provider=mdns",
		ptr:   func(c *Config) any { return &c.Join }},
	{Key: "bind", Flag: "bind",
		Usage: "`address` to listen on: an IP or a go-sockaddr template (default: the advertise address)",
		ptr:   func(c *Config) any { return &c.Bind }},
	{Key: "advertise", Flag: "advertise",
		Usage: "`address` peers reach this node at: an IP or a go-sockaddr template (default: the private IP of the default route's interface)",
		ptr:   func(c *Config) any { return &c.Advertise }},
	{Key: "port", Flag: "port",
		Usage: "gossip `port` (TCP and UDP)",
		ptr:   func(c *Config) any { return &c.Port }},
	{Key: "name", Flag: "name",
		Usage: "unique node `name` (default: the hostname)",
		ptr:   func(c *Config) any { return &c.Name }},
	{Key: "role", Flag: "role", Values: []string{"auto", "server", "client"},
		Usage: "role preference: auto, server or client",
		ptr:   func(c *Config) any { return &c.Role }},
	{Key: "pool", Flag: "pool", Values: []string{"default", "warm", "batch", "special"},
		Usage: "Nomad node `pool` of this node's client (warm, batch, special or your own)",
		ptr:   func(c *Config) any { return &c.Pool }},
	{Key: "zone", Flag: "zone",
		Usage: "failure `zone`; servers are spread across zones",
		ptr:   func(c *Config) any { return &c.Zone }},
	{Key: "datacenter", Flag: "datacenter",
		Usage: "Nomad `datacenter`",
		ptr:   func(c *Config) any { return &c.Datacenter }},
	{Key: "region", Flag: "region",
		Usage: "Nomad `region` (every node must agree)",
		ptr:   func(c *Config) any { return &c.Region }},
	{Key: "expect", Flag: "expect",
		Usage: "number of Nomad servers: 1, 3 or 5 (every node must agree)",
		ptr:   func(c *Config) any { return &c.Expect }},
	{Key: "min_members", Flag: "min-members",
		Usage: "members that must be alive before servers are elected (default: a majority of -bootstrap-size, else -expect)",
		ptr:   func(c *Config) any { return &c.MinMembers }},
	{Key: "bootstrap_size", Flag: "bootstrap-size",
		Usage: "number of machines started together; once that many are alive they elect at once instead of waiting for -settle (default 0: unknown)",
		ptr:   func(c *Config) any { return &c.BootstrapSize }},
	{Key: "settle", Flag: "settle",
		Usage: "how long membership must be stable before servers are elected",
		ptr:   func(c *Config) any { return &c.Settle }},
	{Key: "supervise", Flag: "supervise", Values: []string{SuperviseSystemd, SuperviseProcess, SuperviseNone},
		Usage: "how Nomad is run: systemd, process or none",
		ptr:   func(c *Config) any { return &c.Supervise }},
	{Key: "nomad", Flag: "nomad", Path: true,
		Usage: "`path` of the nomad binary",
		ptr:   func(c *Config) any { return &c.Nomad }},
	{Key: "nomad_dir", Flag: "nomad-dir", Path: true,
		Usage: "`directory` of versioned nomad binaries (nomad-1.6.3) that upgrade nomad takes the next version from, with -supervise process",
		ptr:   func(c *Config) any { return &c.NomadDir }},
	{Key: "log_level", Flag: "log-level", Values: []string{"debug", "info", "warn", "error"},
		Usage: "log level: debug, info, warn or error",
		ptr:   func(c *Config) any { return &c.LogLevel }},
	{Key: "ca_failover_after", Flag: "ca-failover-after",
		Usage: "how long the CA holder must be down before another server signs certificates",
		ptr:   func(c *Config) any { return &c.CAFailoverAfter }},
	{Key: "behind_nat", Flag: "behind-nat",
		Usage: "nodes reach the CA holder through NAT: do not require a certificate request to come from the requesting member's gossip address",
		ptr:   func(c *Config) any { return &c.BehindNAT }},
	{Key: "cert_lifetime", Flag: "cert-lifetime",
		Usage: "lifetime of the certificates the CA issues, at least 1h; renewed at half its lifetime",
		ptr:   func(c *Config) any { return &c.CertLifetime }},
	{Key: "gossip_key_rotation", Flag: "gossip-key-rotation",
		Usage: "how often the gossip keys (Nomad's and the agents') are rotated, at least 1h; 0 only on command (keys rotate)",
		ptr:   func(c *Config) any { return &c.GossipKeyRotation }},
	{Key: "ca_rotation_percent", Flag: "ca-rotation-percent",
		Usage: "how much of the cluster CA's lifetime, in percent (50-99), passes before it is rotated; 0 only on command (ca rotate)",
		ptr:   func(c *Config) any { return &c.CARotationPercent }},
	{Key: "snapshot_interval", Flag: "snapshot-interval",
		Usage: "how often each server saves a snapshot of Nomad's state and keyring, at least 30s; 0 only on command (snapshot save)",
		ptr:   func(c *Config) any { return &c.SnapshotInterval }},
	{Key: "snapshot_retain", Flag: "snapshot-retain",
		Usage: "how many scheduled snapshots each server keeps, at least 1",
		ptr:   func(c *Config) any { return &c.SnapshotRetain }},
	{Key: "metrics_addr", Flag: "metrics-addr",
		Usage: "`host:port` of the agent's Prometheus endpoint; empty turns it off",
		ptr:   func(c *Config) any { return &c.MetricsAddr }},
	{Key: "server_replace_after", Flag: "server-replace-after",
		Usage: "how long a server must be down before the other servers replace it",
		ptr:   func(c *Config) any { return &c.ServerReplaceAfter }},
	{Key: "dedicated_servers", Flag: "dedicated-servers",
		Usage: "Nomad servers do not also run a client",
		ptr:   func(c *Config) any { return &c.DedicatedServers }},
	{Key: "raw_exec", Flag: "raw-exec",
		Usage: "enable Nomad's raw_exec driver on clients (unisolated tasks: trusted jobs only)",
		ptr:   func(c *Config) any { return &c.RawExec }},
	{Key: "isolate_pools", Flag: "isolate-pools",
		Usage: "put each client into the Nomad node pool of its -pool, so only jobs naming that node_pool run on it (default: Nomad's default pool, pools chosen by node_class or ${meta.pool})",
		ptr:   func(c *Config) any { return &c.IsolatePools }},
	{Key: "cert_file", Block: "ca", Path: true,
		ptr: func(c *Config) any { return &c.CA.CertFile }},
	{Key: "key_file", Block: "ca", Path: true,
		ptr: func(c *Config) any { return &c.CA.KeyFile }},
	{Key: "chain_file", Block: "ca", Path: true,
		ptr: func(c *Config) any { return &c.CA.ChainFile }},
}

// Fields returns the table of settings, in the order join writes them.
func Fields() []Field { return slices.Clone(fields) }

// Lookup returns the field of the given Name.
func Lookup(name string) (Field, bool) {
	for _, f := range fields {
		if f.Name() == name {
			return f, true
		}
	}
	return Field{}, false
}

// Name identifies the field: its Key, prefixed with its Block and a dot
// inside a block ("ca.cert_file").
func (f Field) Name() string {
	if f.Block != "" {
		return f.Block + "." + f.Key
	}
	return f.Key
}

// Kind returns the type of the field's value.
func (f Field) Kind() Kind {
	switch f.ptr(&Config{}).(type) {
	case *int:
		return Int
	case *bool:
		return Bool
	case *time.Duration:
		return Duration
	case *[]string:
		return List
	default:
		return String
	}
}

// Get returns the field's value in c: a string, int, bool, time.Duration
// or []string.
func (f Field) Get(c Config) any {
	switch p := f.ptr(&c).(type) {
	case *string:
		return *p
	case *int:
		return *p
	case *bool:
		return *p
	case *time.Duration:
		return *p
	case *[]string:
		return slices.Clone(*p)
	}
	panic("config: field " + f.Name() + " has no known type")
}

// Default returns the field's value in Default().
func (f Field) Default() any { return f.Get(Default()) }

// copy sets the field in dst to its value in src.
func (f Field) copy(dst, src *Config) {
	switch p := f.ptr(dst).(type) {
	case *string:
		*p = *f.ptr(src).(*string)
	case *int:
		*p = *f.ptr(src).(*int)
	case *bool:
		*p = *f.ptr(src).(*bool)
	case *time.Duration:
		*p = *f.ptr(src).(*time.Duration)
	case *[]string:
		*p = nil
		if v := *f.ptr(src).(*[]string); len(v) > 0 {
			*p = slices.Clone(v)
		}
	}
}

// clear sets the field in c to its zero value.
func (f Field) clear(c *Config) { f.copy(c, &Config{}) }

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
