package nomadconf

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// FieldError is one problem of an Agent, named by the Nomad configuration key
// it would have been rendered to.
type FieldError struct {
	Field   string // Nomad key, e.g. "server.encrypt" or `client.meta["team"]`
	Problem string // what is wrong, e.g. "must not be empty"
}

// Error returns "nomadconf: <field>: <problem>".
func (e *FieldError) Error() string {
	return "nomadconf: " + e.Field + ": " + e.Problem
}

var (
	// regionRE makes a region one DNS label, so that it can stand inside
	// certificate names (server.<region>.nomad).
	regionRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	// nodePoolRE is Nomad's own rule for node pool names
	// (nomad/structs/node_pool.go).
	nodePoolRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	// metaKeyRE: meta keys are rendered as attribute names of the meta
	// block and read back in jobs as ${meta.<key>}, so they are identifiers.
	metaKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	// optionKeyRE: option keys are dotted names such as "driver.allowlist".
	optionKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	// ifaceRE: a Linux interface name (at most IFNAMSIZ-1 bytes).
	ifaceRE = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,15}$`)
)

// logLevels are the levels Nomad accepts (command/agent/log_levels.go).
var logLevels = []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"}

// Validate reports every problem of a, each as a *FieldError, joined with
// errors.Join; nil means Render will succeed.
func Validate(a Agent) error {
	v := &validator{}
	v.agent(a)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) fail(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// text checks a value that ends up inside a quoted HCL string (or a
// comment). HCL v1 reads "${" and "%{" as the start of an interpolation that
// hclwrite would have escaped for HCL2 only, and control characters could
// end a string or a comment early; so all three are refused.
func (v *validator) text(field, s string) bool {
	switch {
	case !utf8.ValidString(s):
		v.fail(field, "is not valid UTF-8")
	case strings.Contains(s, "${"):
		v.fail(field, "must not contain %q", "${")
	case strings.Contains(s, "%{"):
		v.fail(field, "must not contain %q", "%{")
	case strings.ContainsFunc(s, unicode.IsControl):
		v.fail(field, "must not contain control characters")
	default:
		return true
	}
	return false
}

// required is text that must not be empty.
func (v *validator) required(field, s string) bool {
	if s == "" {
		v.fail(field, "must not be empty")
		return false
	}
	return v.text(field, s)
}

// RegionRule says what a region may be: one DNS label.
const RegionRule = "use one DNS label: letters, digits and '-', at most 63, starting and ending with a letter or digit"

// ValidRegion reports whether region is one DNS label, as Nomad's
// certificate names (server.<region>.nomad) need.
func ValidRegion(region string) bool { return regionRE.MatchString(region) }

func (v *validator) agent(a Agent) {
	v.required("name", a.Name)
	if v.required("region", a.Region) && !ValidRegion(a.Region) {
		v.fail("region", "%q: %s", a.Region, RegionRule)
	}
	if v.required("datacenter", a.Datacenter) && strings.Contains(a.Datacenter, "*") {
		v.fail("datacenter", "%q must not contain '*'", a.Datacenter)
	}
	v.absPath("data_dir", a.DataDir)
	if a.BindAddr != "" {
		if _, err := parseIP(a.BindAddr); err != nil {
			v.fail("bind_addr", "%v", err)
		}
	}
	if a.AdvertiseAddr == "" {
		v.fail("advertise", "must not be empty")
	} else if ip, err := parseIP(a.AdvertiseAddr); err != nil {
		v.fail("advertise", "%v", err)
	} else if ip.IsUnspecified() {
		v.fail("advertise", "%q cannot be advertised", a.AdvertiseAddr)
	}
	if a.LogLevel != "" && v.text("log_level", a.LogLevel) &&
		!slices.Contains(logLevels, strings.ToUpper(a.LogLevel)) {
		v.fail("log_level", "%q: want one of %s", a.LogLevel, strings.Join(logLevels, ", "))
	}
	v.absPath("tls.ca_file", a.TLS.CAFile)
	v.absPath("tls.cert_file", a.TLS.CertFile)
	v.absPath("tls.key_file", a.TLS.KeyFile)
	v.text("header comment (ManagedBy)", a.ManagedBy)
	if a.Server == nil && a.Client == nil {
		v.fail("server, client", "at least one of them must be enabled")
	}
	if a.Server != nil {
		v.server(*a.Server)
	}
	if a.Client != nil {
		v.client(*a.Client)
	}
}

func (v *validator) absPath(field, p string) {
	if v.required(field, p) && !filepath.IsAbs(p) {
		v.fail(field, "%q is not an absolute path", p)
	}
}

func (v *validator) server(s Server) {
	switch s.BootstrapExpect {
	case 1, 3, 5:
	default:
		v.fail("server.bootstrap_expect", "%d: want 1, 3 or 5 (an odd quorum of at most five)", s.BootstrapExpect)
	}
	if v.required("server.encrypt", s.Encrypt) {
		key, err := base64.StdEncoding.DecodeString(s.Encrypt)
		if err != nil || len(key) != 32 {
			v.fail("server.encrypt", "must be standard base64 of 32 bytes")
		}
	}
	if s.BootstrapExpect > 1 && len(s.RetryJoin) == 0 {
		v.fail("server.server_join.retry_join", "must list the servers when bootstrap_expect is %d", s.BootstrapExpect)
	}
	for i, addr := range s.RetryJoin {
		if _, err := hostPort(addr, SerfPort); err != nil {
			v.fail(fmt.Sprintf("server.server_join.retry_join[%d]", i), "%v", err)
		}
	}
	if s.RetryInterval != 0 && s.RetryInterval < time.Second {
		v.fail("server.server_join.retry_interval", "%v: want at least 1s (or zero for Nomad's default)", s.RetryInterval)
	}
}

func (v *validator) client(c Client) {
	if len(c.Servers) == 0 {
		v.fail("client.servers", "must list at least one server")
	}
	for i, addr := range c.Servers {
		if _, err := hostPort(addr, RPCPort); err != nil {
			v.fail(fmt.Sprintf("client.servers[%d]", i), "%v", err)
		}
	}
	if v.required("client.node_pool", c.NodePool) {
		switch {
		case !nodePoolRE.MatchString(c.NodePool):
			v.fail("client.node_pool", "%q: 1 to 128 letters, digits, '-' or '_'", c.NodePool)
		case c.NodePool == "all":
			v.fail("client.node_pool", `"all" is Nomad's built-in pool of every node; no node can register in it`)
		}
	}
	for _, k := range sortedKeys(c.Meta) {
		field := fmt.Sprintf("client.meta[%q]", k)
		switch {
		case !v.text(field, k):
		case k == "pool":
			v.fail(field, "is reserved: it is set from client.node_pool")
		case !metaKeyRE.MatchString(k):
			v.fail(field, "key must be an identifier (letters, digits, '_', '-'; not starting with a digit or '-')")
		default:
			v.text(field, c.Meta[k])
		}
	}
	if c.NetworkInterface != "" && !ifaceRE.MatchString(c.NetworkInterface) {
		v.fail("client.network_interface", "%q: an interface name of 1 to 15 letters, digits, '.', '-', '_' or '@'", c.NetworkInterface)
	}
	for _, k := range sortedKeys(c.Options) {
		field := fmt.Sprintf("client.options[%q]", k)
		switch {
		case !v.text(field, k):
		case !optionKeyRE.MatchString(k):
			v.fail(field, "key must be a dotted name such as \"driver.allowlist\"")
		default:
			v.text(field, c.Options[k])
		}
	}
	if c.GC != (PoolPolicy{}) {
		v.policy(c.GC)
	}
}

func (v *validator) policy(p PoolPolicy) {
	if p.GCInterval <= 0 {
		v.fail("client.gc_interval", "%v: must be positive", p.GCInterval)
	}
	if p.MaxKillTimeout <= 0 {
		v.fail("client.max_kill_timeout", "%v: must be positive", p.MaxKillTimeout)
	}
	if p.GCDiskUsageThreshold < 1 || p.GCDiskUsageThreshold > 100 {
		v.fail("client.gc_disk_usage_threshold", "%d: want a percentage from 1 to 100", p.GCDiskUsageThreshold)
	}
	if p.GCInodeUsageThreshold < 1 || p.GCInodeUsageThreshold > 100 {
		v.fail("client.gc_inode_usage_threshold", "%d: want a percentage from 1 to 100", p.GCInodeUsageThreshold)
	}
	if p.GCMaxAllocs < 1 {
		v.fail("client.gc_max_allocs", "%d: must be positive", p.GCMaxAllocs)
	}
	if p.GCParallelDestroys < 1 {
		v.fail("client.gc_parallel_destroys", "%d: must be positive", p.GCParallelDestroys)
	}
}

// parseIP accepts a literal IP without a zone.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: IPv6 zones are not supported", s)
	}
	return ip.Unmap(), nil
}

// hostPort accepts "ip", "ip:port" or "[ipv6]:port" and returns the
// canonical "ip:port" ("[ipv6]:port"), adding defPort when there is none.
func hostPort(s string, defPort uint16) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return "", fmt.Errorf("%q: port 0", s)
		}
		ip, err := parseIP(ap.Addr().String())
		if err != nil || ip.IsUnspecified() {
			return "", fmt.Errorf("%q: not a usable IP address with a port", s)
		}
		return netip.AddrPortFrom(ip, ap.Port()).String(), nil
	}
	ip, err := parseIP(s)
	if err != nil || ip.IsUnspecified() {
		return "", fmt.Errorf("%q: want an IP address, optionally with a port", s)
	}
	return netip.AddrPortFrom(ip, defPort).String(), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ValidInterfaceName reports whether name is an interface name that
// network_interface accepts.
func ValidInterfaceName(name string) bool { return ifaceRE.MatchString(name) }
