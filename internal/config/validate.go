package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/discover"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/fingerprint"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// Validate checks every setting and returns all problems at once. It does
// not look at the token (see ResolveToken) or resolve addresses.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := plan.ParseRole(c.Role); err != nil {
		add(err)
	}
	add(plan.ValidateExpect(c.Expect))
	if c.MinMembers < 0 {
		add(fmt.Errorf("config: min_members %d is negative", c.MinMembers))
	} else if c.MinMembers != 0 && c.MinMembers < c.Expect {
		add(fmt.Errorf("config: min_members %d is less than expect %d; servers need at least %d members", c.MinMembers, c.Expect, c.Expect))
	}
	switch {
	case c.BootstrapSize < 0:
		add(fmt.Errorf("config: bootstrap_size %d is negative", c.BootstrapSize))
	case c.BootstrapSize != 0 && c.BootstrapSize < c.Expect:
		add(fmt.Errorf("config: bootstrap_size %d is less than expect %d; the machines started together must include the %d servers", c.BootstrapSize, c.Expect, c.Expect))
	case c.BootstrapSize != 0 && c.MinMembers > c.BootstrapSize:
		add(fmt.Errorf("config: min_members %d is more than bootstrap_size %d; at most the machines started together can be alive", c.MinMembers, c.BootstrapSize))
	}
	// The CA endpoint listens on port + 1.
	if c.Port < 1 || c.Port > 65534 {
		add(fmt.Errorf("config: port %d is out of range 1-65534 (the CA endpoint takes port + 1)", c.Port))
	}
	if c.CA.Set() && (c.CA.CertFile == "" || c.CA.KeyFile == "" || c.CA.ChainFile == "") {
		add(fmt.Errorf("config: the ca block needs cert_file, key_file and chain_file (the offline root's chain)"))
	}
	// A certificate is renewed at half its lifetime; the other half must
	// outlast a failover of the CA.
	switch {
	case c.CertLifetime < MinCertLifetime:
		add(fmt.Errorf("config: cert_lifetime %v is shorter than %v", c.CertLifetime, MinCertLifetime))
	case c.CAFailoverAfter > 0 && c.CertLifetime/2 <= c.CAFailoverAfter:
		add(fmt.Errorf("config: cert_lifetime %v is renewed at half, %v before expiry, which is not longer than ca_failover_after %v: certificates would expire before another server signs",
			c.CertLifetime, c.CertLifetime/2, c.CAFailoverAfter))
	}
	if c.CAFailoverAfter <= 0 {
		add(fmt.Errorf("config: ca_failover_after %v must be positive", c.CAFailoverAfter))
	}
	if c.GossipKeyRotation != 0 && c.GossipKeyRotation < MinGossipKeyRotation {
		add(fmt.Errorf("config: gossip_key_rotation %v is shorter than %v; use 0 to rotate only on command", c.GossipKeyRotation, MinGossipKeyRotation))
	}
	if p := c.CARotationPercent; p != 0 && (p < MinCARotationPercent || p > MaxCARotationPercent) {
		add(fmt.Errorf("config: ca_rotation_percent %d is outside %d..%d; use 0 to rotate the CA only on command", p, MinCARotationPercent, MaxCARotationPercent))
	}
	if c.SnapshotInterval != 0 && c.SnapshotInterval < MinSnapshotInterval {
		add(fmt.Errorf("config: snapshot_interval %v is shorter than %v; use 0 to save snapshots only on command", c.SnapshotInterval, MinSnapshotInterval))
	}
	if c.SnapshotRetain < 1 {
		add(fmt.Errorf("config: snapshot_retain %d must be at least 1", c.SnapshotRetain))
	}
	if c.ServerReplaceAfter <= 0 {
		add(fmt.Errorf("config: server_replace_after %v must be positive", c.ServerReplaceAfter))
	}
	if c.Settle < 0 {
		add(fmt.Errorf("config: settle %v is negative", c.Settle))
	}
	if c.Name != "" {
		add(fingerprint.ValidateName("name", c.Name))
	}
	add(fingerprint.ValidatePool(c.Pool))
	if c.Zone != "" {
		add(fingerprint.ValidateName("zone", c.Zone))
	}
	add(fingerprint.ValidateName("datacenter", c.Datacenter))
	if !nomadconf.ValidRegion(c.Region) {
		add(fmt.Errorf("config: region %q is invalid: %s", c.Region, nomadconf.RegionRule))
	}
	add(oneOf("supervise", c.Supervise))
	if c.NomadDir != "" && !filepath.IsAbs(c.NomadDir) {
		add(fmt.Errorf("config: nomad_dir %q must be an absolute path", c.NomadDir))
	}
	add(discover.Validate(c.Join))
	add(oneOf("log_level", c.LogLevel))
	add(validateMetricsAddr(c.MetricsAddr))
	return errors.Join(errs...)
}

// oneOf checks that v is one of the Values of the setting named name.
func oneOf(name, v string) error {
	f, _ := Lookup(name)
	if slices.Contains(f.Values, v) {
		return nil
	}
	return fmt.Errorf("config: %s %q is not one of %s", name, v, strings.Join(f.Values, ", "))
}

// validateMetricsAddr accepts "" (off) or an IP address and port.
func validateMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("config: metrics_addr %q is not host:port, such as %q (empty turns the endpoint off)", addr, DefaultMetricsAddr)
	}
	if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
		return fmt.Errorf("config: metrics_addr %q: %q is not an IP address", addr, host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("config: metrics_addr %q: port %q is out of range 1-65535", addr, port)
	}
	return nil
}

// EffectiveMinMembers returns MinMembers; when it is 0, a majority of
// BootstrapSize (so that two halves of a partitioned bootstrap cannot both
// elect), and Expect when neither is set.
func (c *Config) EffectiveMinMembers() int {
	switch {
	case c.MinMembers != 0:
		return c.MinMembers
	case c.BootstrapSize != 0:
		return max(c.Expect, c.BootstrapSize/2+1)
	default:
		return c.Expect
	}
}
