package nomadconf

import (
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Names of the rendered files. Nomad merges every *.hcl file of its config
// directory in lexical order, later files winning; all four share the
// "nomad-bootstrapd-" prefix so an operator's own file can sort before or
// after them on purpose.
const (
	AgentFile  = "nomad-bootstrapd-agent.hcl"
	ClientFile = "nomad-bootstrapd-client.hcl"
	ServerFile = "nomad-bootstrapd-server.hcl"
	TLSFile    = "nomad-bootstrapd-tls.hcl"
)

// File is one rendered file of /etc/nomad.d; the caller writes it.
type File struct {
	Name    string      // base name, e.g. AgentFile
	Content []byte      // HCL, starting with the "managed by" comment
	Mode    os.FileMode // 0600 for the server file (it holds the gossip key), 0644 otherwise
}

// Render validates a and returns its files, sorted by name: the agent and
// TLS files always, the server file when a.Server is set and the client file
// when a.Client is set. The output depends only on a: rendering the same
// Agent twice gives the same bytes.
//
// The agent leaves leave_on_interrupt and leave_on_terminate at Nomad's
// default, false: a server that leaves on shutdown drops out of the Raft
// peer set, so a reboot or a rolling restart would shrink the quorum;
// servers that really die are removed by autopilot (cleanup_dead_servers).
func Render(a Agent) ([]File, error) {
	if err := Validate(a); err != nil {
		return nil, err
	}
	files := []File{
		{Name: AgentFile, Content: finish(a, agentBody(a)), Mode: 0o644},
	}
	if a.Client != nil {
		files = append(files, File{Name: ClientFile, Content: finish(a, clientBody(*a.Client)), Mode: 0o644})
	}
	if a.Server != nil {
		files = append(files, File{Name: ServerFile, Content: finish(a, serverBody(*a.Server)), Mode: 0o600})
	}
	files = append(files, File{Name: TLSFile, Content: finish(a, tlsBody(a.TLS)), Mode: 0o644})
	return files, nil
}

// Header returns the comment that starts every rendered file.
func Header(managedBy string) string {
	if managedBy == "" {
		managedBy = "nomad-bootstrapd"
	}
	return "# Managed by " + managedBy + ": changes are overwritten. " +
		"Put your own settings in another file of this directory.\n"
}

func finish(a Agent, f *hclwrite.File) []byte {
	return append([]byte(Header(a.ManagedBy)+"\n"), hclwrite.Format(f.Bytes())...)
}

func agentBody(a Agent) *hclwrite.File {
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	setString(b, "name", a.Name)
	setString(b, "region", a.Region)
	setString(b, "datacenter", a.Datacenter)
	setString(b, "data_dir", a.DataDir)
	if a.BindAddr != "" {
		ip, _ := parseIP(a.BindAddr)
		setString(b, "bind_addr", ip.String())
	}
	if a.LogLevel != "" {
		setString(b, "log_level", strings.ToUpper(a.LogLevel))
	}
	// Checkpoint calls HashiCorp at every start; air-gapped nodes cannot
	// reach it.
	b.SetAttributeValue("disable_update_check", cty.True)

	b.AppendNewline()
	comment(b, "Bare addresses: Nomad adds the HTTP, RPC and Serf ports.")
	ip, _ := parseIP(a.AdvertiseAddr)
	adv := b.AppendNewBlock("advertise", nil).Body()
	setString(adv, "http", ip.String())
	setString(adv, "rpc", ip.String())
	setString(adv, "serf", ip.String())

	if a.ACL {
		b.AppendNewline()
		b.AppendNewBlock("acl", nil).Body().SetAttributeValue("enabled", cty.True)
	}

	if a.Telemetry {
		b.AppendNewline()
		t := b.AppendNewBlock("telemetry", nil).Body()
		setString(t, "collection_interval", "1s")
		// Prometheus labels carry the host; keep it out of metric names.
		t.SetAttributeValue("disable_hostname", cty.True)
		t.SetAttributeValue("prometheus_metrics", cty.True)
		t.SetAttributeValue("publish_allocation_metrics", cty.True)
		t.SetAttributeValue("publish_node_metrics", cty.True)
	}

	b.AppendNewline()
	comment(b, "No Consul: servers and clients find each other through server_join and servers.")
	c := b.AppendNewBlock("consul", nil).Body()
	c.SetAttributeValue("server_auto_join", cty.False)
	c.SetAttributeValue("client_auto_join", cty.False)
	c.SetAttributeValue("auto_advertise", cty.False)
	return f
}

func serverBody(s Server) *hclwrite.File {
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	srv := b.AppendNewBlock("server", nil).Body()
	srv.SetAttributeValue("enabled", cty.True)
	srv.SetAttributeValue("bootstrap_expect", cty.NumberIntVal(int64(s.BootstrapExpect)))
	setString(srv, "encrypt", s.Encrypt)
	srv.SetAttributeValue("rejoin_after_leave", cty.True)
	if len(s.RetryJoin) > 0 || s.RetryInterval > 0 {
		srv.AppendNewline()
		join := srv.AppendNewBlock("server_join", nil).Body()
		if len(s.RetryJoin) > 0 {
			join.SetAttributeValue("retry_join", addrList(s.RetryJoin, SerfPort))
		}
		if s.RetryInterval > 0 {
			setString(join, "retry_interval", FormatDuration(s.RetryInterval))
		}
	}

	b.AppendNewline()
	comment(b, "Autopilot removes servers that stay dead, so a replacement restores the quorum.")
	b.AppendNewBlock("autopilot", nil).Body().SetAttributeValue("cleanup_dead_servers", cty.True)
	return f
}

func clientBody(c Client) *hclwrite.File {
	p := c.GC
	if p == (PoolPolicy{}) {
		p = PoolDefaults(c.NodePool)
	}
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	cl := b.AppendNewBlock("client", nil).Body()
	cl.SetAttributeValue("enabled", cty.True)
	cl.SetAttributeValue("servers", addrList(c.Servers, RPCPort))
	setString(cl, "node_class", c.NodePool)
	cl.AppendNewline()
	if c.IsolatePool {
		comment(cl, "Isolated: only jobs with node_pool = \""+c.NodePool+"\" run here.")
		setString(cl, "node_pool", c.NodePool)
	} else {
		comment(cl, "Jobs pick this pool by node_class or ${meta.pool}; jobs that name no node_pool run here too.")
		setString(cl, "node_pool", DefaultPool)
	}

	cl.AppendNewline()
	meta := cl.AppendNewBlock("meta", nil).Body()
	setString(meta, "pool", c.NodePool)
	for _, k := range sortedKeys(c.Meta) {
		setString(meta, k, c.Meta[k])
	}

	if c.NetworkInterface != "" {
		cl.AppendNewline()
		setString(cl, "network_interface", c.NetworkInterface)
	}

	if len(c.Options) > 0 {
		cl.AppendNewline()
		opts := make(map[string]cty.Value, len(c.Options))
		for k, v := range c.Options {
			opts[k] = cty.StringVal(v)
		}
		// An attribute holding an object (keys are dotted, so quoted), the
		// form of Nomad's documentation; cty sorts the keys.
		cl.SetAttributeValue("options", cty.ObjectVal(opts))
	}

	cl.AppendNewline()
	comment(cl, "Garbage collection and kill timeout: "+policyNote(c.NodePool, c.GC))
	setString(cl, "gc_interval", FormatDuration(p.GCInterval))
	cl.SetAttributeValue("gc_disk_usage_threshold", cty.NumberIntVal(int64(p.GCDiskUsageThreshold)))
	cl.SetAttributeValue("gc_inode_usage_threshold", cty.NumberIntVal(int64(p.GCInodeUsageThreshold)))
	cl.SetAttributeValue("gc_max_allocs", cty.NumberIntVal(int64(p.GCMaxAllocs)))
	cl.SetAttributeValue("gc_parallel_destroys", cty.NumberIntVal(int64(p.GCParallelDestroys)))
	setString(cl, "max_kill_timeout", FormatDuration(p.MaxKillTimeout))

	if c.RawExec {
		b.AppendNewline()
		plug := b.AppendNewBlock("plugin", []string{"raw_exec"}).Body()
		plug.AppendNewBlock("config", nil).Body().SetAttributeValue("enabled", cty.True)
	}
	return f
}

// policyNote says where the client policy comes from, for the comment above
// it.
func policyNote(pool string, p PoolPolicy) string {
	if p != (PoolPolicy{}) {
		return "set for this node."
	}
	switch pool {
	case PoolWarm:
		return "pool warm, long-running services: collect calmly, let services drain."
	case PoolBatch:
		return "pool batch, short jobs: collect early and in parallel."
	case PoolSpecial:
		return "pool special, critical jobs: collect only under pressure, long graceful stop."
	default:
		return "Nomad's client defaults."
	}
}

func tlsBody(t TLS) *hclwrite.File {
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	comment(b, "Mutual TLS on HTTP and RPC: every caller, the CLI included, needs a cluster certificate.")
	tls := b.AppendNewBlock("tls", nil).Body()
	tls.SetAttributeValue("http", cty.True)
	tls.SetAttributeValue("rpc", cty.True)
	setString(tls, "ca_file", t.CAFile)
	setString(tls, "cert_file", t.CertFile)
	setString(tls, "key_file", t.KeyFile)
	tls.SetAttributeValue("verify_server_hostname", cty.True)
	tls.SetAttributeValue("verify_https_client", cty.True)
	return f
}

func setString(b *hclwrite.Body, name, value string) {
	b.SetAttributeValue(name, cty.StringVal(value))
}

// addrList renders validated addresses in their canonical ip:port form.
func addrList(addrs []string, defPort uint16) cty.Value {
	vals := make([]cty.Value, len(addrs))
	for i, a := range addrs {
		hp, _ := hostPort(a, defPort)
		vals[i] = cty.StringVal(hp)
	}
	return cty.ListVal(vals)
}

// comment appends a "# text" line; text is a constant of this package or
// validated (no control characters).
func comment(b *hclwrite.Body, text string) {
	b.AppendUnstructuredTokens(hclwrite.Tokens{
		{Type: hclsyntax.TokenComment, Bytes: []byte("# " + text + "\n")},
	})
}

// FormatDuration writes d the way people write Nomad durations: "30s",
// "5m", "1h30m", "1m30s", "500ms", without the zero units of
// time.Duration.String ("5m0s"). time.ParseDuration reads the result back
// to d.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
