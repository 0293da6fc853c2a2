// Package config loads the agent's configuration: built-in defaults, then the
// HCL file, then the environment, then command-line flags, each layer
// overriding the one before.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
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
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// DedicatedServers keeps Nomad servers from also running a client. A
	// node with role=server never runs a client either way.
	DedicatedServers bool
	// CertLifetime is the lifetime of the certificates the CA issues.
	CertLifetime time.Duration
	// CAFailoverAfter is how long the CA holder must be down before the
	// next server signs with the escrowed CA key.
	CAFailoverAfter time.Duration
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

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		Port:            4650,
		Role:            "auto",
		Pool:            "default",
		Datacenter:      "dc1",
		Region:          "global",
		Expect:          3,
		Settle:          3 * time.Second,
		CAFailoverAfter: 2 * time.Minute,
		CertLifetime:    90 * 24 * time.Hour,
		Supervise:       SuperviseSystemd,
		Nomad:           "/usr/bin/nomad",
		LogLevel:        "info",
		MetricsAddr:     DefaultMetricsAddr,

		ServerReplaceAfter: 10 * time.Minute,
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

// caBlock is the `ca { … }` block of the configuration file.
type caBlock struct {
	CertFile  string `hcl:"cert_file"`
	KeyFile   string `hcl:"key_file"`
	ChainFile string `hcl:"chain_file"`
}

// file is the HCL schema of the configuration file. Pointers tell "unset"
// from "set to the zero value".
type file struct {
	Token      *string   `hcl:"token,optional"`
	TokenFile  *string   `hcl:"token_file,optional"`
	Join       *[]string `hcl:"join,optional"`
	Bind       *string   `hcl:"bind,optional"`
	Advertise  *string   `hcl:"advertise,optional"`
	Port       *int      `hcl:"port,optional"`
	Name       *string   `hcl:"name,optional"`
	Role       *string   `hcl:"role,optional"`
	Pool       *string   `hcl:"pool,optional"`
	Zone       *string   `hcl:"zone,optional"`
	Datacenter *string   `hcl:"datacenter,optional"`
	Region     *string   `hcl:"region,optional"`
	Expect     *int      `hcl:"expect,optional"`
	MinMembers *int      `hcl:"min_members,optional"`
	Bootstrap  *int      `hcl:"bootstrap_size,optional"`
	Settle     *string   `hcl:"settle,optional"`
	Supervise  *string   `hcl:"supervise,optional"`
	Nomad      *string   `hcl:"nomad,optional"`
	LogLevel   *string   `hcl:"log_level,optional"`
	Dedicated  *bool     `hcl:"dedicated_servers,optional"`
	RawExec    *bool     `hcl:"raw_exec,optional"`
	Isolate    *bool     `hcl:"isolate_pools,optional"`
	CAFailover *string   `hcl:"ca_failover_after,optional"`
	Replace    *string   `hcl:"server_replace_after,optional"`
	CA         *caBlock  `hcl:"ca,block"`
	CertLife   *string   `hcl:"cert_lifetime,optional"`
	Metrics    *string   `hcl:"metrics_addr,optional"`
}

// LoadFile applies the HCL file at path over c. A missing file is an error
// only when required is true. Unknown keys and type errors name the file and
// line.
func (c *Config) LoadFile(path string, required bool) error {
	src, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !required {
			return nil
		}
		return fmt.Errorf("config: %w", err)
	}
	return c.loadBytes(src, path)
}

func (c *Config) loadBytes(src []byte, path string) error {
	f, diags := hclparse.NewParser().ParseHCL(src, path)
	if diags.HasErrors() {
		return diagError(diags, src)
	}
	var fc file
	if diags := gohcl.DecodeBody(f.Body, nil, &fc); diags.HasErrors() {
		return diagError(diags, src)
	}
	setS := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	setI := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setS(&c.Token, fc.Token)
	setS(&c.TokenFile, fc.TokenFile)
	if fc.Join != nil {
		c.Join = append([]string(nil), (*fc.Join)...)
	}
	setS(&c.Bind, fc.Bind)
	setS(&c.Advertise, fc.Advertise)
	setI(&c.Port, fc.Port)
	setS(&c.Name, fc.Name)
	setS(&c.Role, fc.Role)
	setS(&c.Pool, fc.Pool)
	setS(&c.Zone, fc.Zone)
	setS(&c.Datacenter, fc.Datacenter)
	setS(&c.Region, fc.Region)
	setI(&c.Expect, fc.Expect)
	setI(&c.MinMembers, fc.MinMembers)
	setI(&c.BootstrapSize, fc.Bootstrap)
	if fc.Settle != nil {
		d, err := time.ParseDuration(*fc.Settle)
		if err != nil {
			return fmt.Errorf("config: %s: settle %q is not a duration such as \"3s\"", path, *fc.Settle)
		}
		c.Settle = d
	}
	setS(&c.Supervise, fc.Supervise)
	setS(&c.Nomad, fc.Nomad)
	setS(&c.LogLevel, fc.LogLevel)
	setS(&c.MetricsAddr, fc.Metrics)
	if fc.Dedicated != nil {
		c.DedicatedServers = *fc.Dedicated
	}
	if fc.RawExec != nil {
		c.RawExec = *fc.RawExec
	}
	if fc.Isolate != nil {
		c.IsolatePools = *fc.Isolate
	}
	if fc.CA != nil {
		c.CA = CAFiles{CertFile: fc.CA.CertFile, KeyFile: fc.CA.KeyFile, ChainFile: fc.CA.ChainFile}
	}
	if fc.CertLife != nil {
		d, err := time.ParseDuration(*fc.CertLife)
		if err != nil {
			return fmt.Errorf("config: %s: cert_lifetime %q is not a duration such as \"2160h\"", path, *fc.CertLife)
		}
		c.CertLifetime = d
	}
	if fc.CAFailover != nil {
		d, err := time.ParseDuration(*fc.CAFailover)
		if err != nil {
			return fmt.Errorf("config: %s: ca_failover_after %q is not a duration such as \"2m\"", path, *fc.CAFailover)
		}
		c.CAFailoverAfter = d
	}
	if fc.Replace != nil {
		d, err := time.ParseDuration(*fc.Replace)
		if err != nil {
			return fmt.Errorf("config: %s: server_replace_after %q is not a duration such as \"10m\"", path, *fc.Replace)
		}
		c.ServerReplaceAfter = d
	}
	return nil
}

// diagError turns HCL diagnostics into one error naming file, line and
// column and quoting the line, e.g. `config.hcl:3,1-6: bogus = 1: Unsupported
// argument; An argument named "bogus" is not expected here.`
func diagError(diags hcl.Diagnostics, src []byte) error {
	lines := strings.Split(string(src), "\n")
	var msgs []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		m := d.Summary
		if d.Detail != "" {
			m += "; " + d.Detail
		}
		if d.Subject != nil {
			if l := d.Subject.Start.Line; l >= 1 && l <= len(lines) && strings.TrimSpace(lines[l-1]) != "" {
				m = strings.TrimSpace(lines[l-1]) + ": " + m
			}
			m = d.Subject.String() + ": " + m
		}
		msgs = append(msgs, m)
	}
	return fmt.Errorf("config: %s", strings.Join(msgs, "\n"))
}

// ApplyEnv applies the environment (via getenv) over c.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if t := getenv(TokenEnv); t != "" {
		c.Token = t
		c.TokenFile = ""
	}
}

// Flags are the agent's command-line flags, registered on a FlagSet; after
// parsing, Apply copies the flags that were set over a Config.
type Flags struct {
	fs   *flag.FlagSet
	vals Config
	join string
	// ConfigFile is -config: the configuration file to load.
	ConfigFile string
	// Root is -root: the directory every path is relative to.
	Root string
	// DryRun is -dry-run.
	DryRun bool
}

// RegisterFlags registers the agent flags on fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	d := Default()
	fs.StringVar(&f.ConfigFile, "config", "", "configuration `file` (default <root>/etc/nomad-bootstrapd/config.hcl)")
	fs.StringVar(&f.Root, "root", "/", "`dir`ectory every path is relative to (tests and the demo run many nodes on one machine)")
	fs.BoolVar(&f.DryRun, "dry-run", false, "show what would be done and exit without changing anything")
	fs.StringVar(&f.vals.Token, "token", "", "join `token` (or set "+TokenEnv+"; prefer -token-file: command lines are visible to other users)")
	fs.StringVar(&f.vals.TokenFile, "token-file", "", "`file` holding the join token")
	fs.StringVar(&f.join, "join", "", "comma-separated seed `addresses` (ip or ip:port) of nodes already in the cluster")
	fs.StringVar(&f.vals.Bind, "bind", "", "`address` to listen on: an IP or a go-sockaddr template (default: the advertise address)")
	fs.StringVar(&f.vals.Advertise, "advertise", "", "`address` peers reach this node at: an IP or a go-sockaddr template (default: the private IP of the default route's interface)")
	fs.IntVar(&f.vals.Port, "port", d.Port, "gossip `port` (TCP and UDP)")
	fs.StringVar(&f.vals.Name, "name", "", "unique node `name` (default: the hostname)")
	fs.StringVar(&f.vals.Role, "role", d.Role, "role preference: auto, server or client")
	fs.StringVar(&f.vals.Pool, "pool", d.Pool, "Nomad node `pool` of this node's client (warm, batch, special or your own)")
	fs.StringVar(&f.vals.Zone, "zone", "", "failure `zone`; servers are spread across zones")
	fs.StringVar(&f.vals.Datacenter, "datacenter", d.Datacenter, "Nomad `datacenter`")
	fs.StringVar(&f.vals.Region, "region", d.Region, "Nomad `region` (every node must agree)")
	fs.IntVar(&f.vals.Expect, "expect", d.Expect, "number of Nomad servers: 1, 3 or 5 (every node must agree)")
	fs.IntVar(&f.vals.MinMembers, "min-members", 0, "members that must be alive before servers are elected (default: a majority of -bootstrap-size, else -expect)")
	fs.IntVar(&f.vals.BootstrapSize, "bootstrap-size", 0, "number of machines started together; once that many are alive they elect at once instead of waiting for -settle (default 0: unknown)")
	fs.DurationVar(&f.vals.Settle, "settle", d.Settle, "how long membership must be stable before servers are elected")
	fs.StringVar(&f.vals.Supervise, "supervise", d.Supervise, "how Nomad is run: systemd, process or none")
	fs.StringVar(&f.vals.Nomad, "nomad", d.Nomad, "`path` of the nomad binary")
	fs.StringVar(&f.vals.LogLevel, "log-level", d.LogLevel, "log level: debug, info, warn or error")
	fs.BoolVar(&f.vals.DedicatedServers, "dedicated-servers", false, "Nomad servers do not also run a client")
	fs.DurationVar(&f.vals.CertLifetime, "cert-lifetime", d.CertLifetime, "lifetime of the certificates the CA issues; renewed at two thirds")
	fs.DurationVar(&f.vals.CAFailoverAfter, "ca-failover-after", d.CAFailoverAfter, "how long the CA holder must be down before another server signs certificates")
	fs.DurationVar(&f.vals.ServerReplaceAfter, "server-replace-after", d.ServerReplaceAfter, "how long a server must be down before the other servers replace it")
	fs.BoolVar(&f.vals.RawExec, "raw-exec", false, "enable Nomad's raw_exec driver on clients (unisolated tasks: trusted jobs only)")
	fs.BoolVar(&f.vals.IsolatePools, "isolate-pools", false, "put each client into the Nomad node pool of its -pool, so only jobs naming that node_pool run on it (default: Nomad's default pool, pools chosen by node_class or ${meta.pool})")
	fs.StringVar(&f.vals.MetricsAddr, "metrics-addr", d.MetricsAddr, "`host:port` of the agent's Prometheus endpoint; empty turns it off")
	return f
}

// Apply copies the flags that were set on the command line over c.
func (f *Flags) Apply(c *Config) {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	v := f.vals
	apply := map[string]func(){
		"token":             func() { c.Token, c.TokenFile = v.Token, "" },
		"token-file":        func() { c.TokenFile, c.Token = v.TokenFile, "" },
		"join":              func() { c.Join = SplitList(f.join) },
		"bind":              func() { c.Bind = v.Bind },
		"advertise":         func() { c.Advertise = v.Advertise },
		"port":              func() { c.Port = v.Port },
		"name":              func() { c.Name = v.Name },
		"role":              func() { c.Role = v.Role },
		"pool":              func() { c.Pool = v.Pool },
		"zone":              func() { c.Zone = v.Zone },
		"datacenter":        func() { c.Datacenter = v.Datacenter },
		"region":            func() { c.Region = v.Region },
		"expect":            func() { c.Expect = v.Expect },
		"min-members":       func() { c.MinMembers = v.MinMembers },
		"bootstrap-size":    func() { c.BootstrapSize = v.BootstrapSize },
		"settle":            func() { c.Settle = v.Settle },
		"supervise":         func() { c.Supervise = v.Supervise },
		"nomad":             func() { c.Nomad = v.Nomad },
		"log-level":         func() { c.LogLevel = v.LogLevel },
		"dedicated-servers": func() { c.DedicatedServers = v.DedicatedServers },
		"raw-exec":          func() { c.RawExec = v.RawExec },
		"isolate-pools":     func() { c.IsolatePools = v.IsolatePools },
		"ca-failover-after": func() { c.CAFailoverAfter = v.CAFailoverAfter },
		"cert-lifetime":     func() { c.CertLifetime = v.CertLifetime },
		"metrics-addr":      func() { c.MetricsAddr = v.MetricsAddr },

		"server-replace-after": func() { c.ServerReplaceAfter = v.ServerReplaceAfter },
	}
	for name, fn := range apply {
		if set[name] {
			fn()
		}
	}
	if set["token"] && set["token-file"] {
		// Both on the command line: keep both so Validate reports it.
		c.Token, c.TokenFile = v.Token, v.TokenFile
	}
}

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
