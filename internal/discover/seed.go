// Package discover turns the seeds an operator gives in join into the
// addresses an agent gossips with: IP addresses and host names as they are
// (memberlist resolves host names at each join); DNS SRV names
// (dns+srv://_service._tcp.domain), whose targets and ports it looks up
// afresh at each join, so that a group whose machines come and go keeps
// finding live peers; and provider=mdns, the cluster's agents that answer
// multicast DNS on this machine's network segment.
package discover

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// SRVScheme starts a seed that is a DNS SRV name.
const SRVScheme = "dns+srv://"

// MDNSSeed is the seed that finds the cluster's agents on this machine's
// network segment with multicast DNS.
const MDNSSeed = "provider=mdns"

// DefaultPort is the gossip port of a seed that names none.
const DefaultPort = 4650

// Seed is a seed: a host and, when the seed names one, a port; or a DNS SRV
// name, whose records give hosts and ports.
type Seed struct {
	Host string // an IP address (IPv6 without brackets) or a host name
	Port int    // 0 when the seed names no port
	SRV  string // the SRV name of a dns+srv:// seed; Host and Port are then empty
	MDNS bool   // the provider=mdns seed; Host and Port are then empty
}

// Parse parses a seed: "ip", "ip:port", "[ipv6]", "[ipv6]:port", "host",
// "host:port", "dns+srv://name" or "provider=mdns", with blanks around it
// ignored.
func Parse(seed string) (Seed, error) {
	s := strings.TrimSpace(seed)
	if s == "" {
		return Seed{}, errors.New("empty seed address")
	}
	if strings.EqualFold(s, MDNSSeed) {
		return Seed{MDNS: true}, nil
	}
	if strings.HasPrefix(strings.ToLower(s), "provider=") {
		return Seed{}, fmt.Errorf("%q: the only provider is mdns (%s)", seed, MDNSSeed)
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(s), SRVScheme); ok {
		if err := checkDNSName(rest); err != nil {
			return Seed{}, fmt.Errorf("%q is not a DNS SRV seed (%s_service._tcp.domain): %v", seed, SRVScheme, err)
		}
		return Seed{SRV: strings.TrimSuffix(rest, ".") + "."}, nil
	}
	if strings.ContainsAny(s, "/ ") {
		return Seed{}, fmt.Errorf("%q is not an address, a host name or %sname", seed, SRVScheme)
	}
	if net.ParseIP(s) != nil {
		return Seed{Host: s}, nil
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if ip := s[1 : len(s)-1]; net.ParseIP(ip) != nil {
			return Seed{Host: ip}, nil
		}
		return Seed{}, fmt.Errorf("%q is not an address", seed)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(s, ":") {
			return Seed{}, fmt.Errorf("%q is not an address: %w", seed, err)
		}
		host, port = s, ""
	}
	if host == "" {
		return Seed{}, fmt.Errorf("%q has no host", seed)
	}
	if net.ParseIP(host) == nil {
		if err := checkDNSName(strings.ToLower(host)); err != nil {
			return Seed{}, fmt.Errorf("%q is not an address or a host name: %v", seed, err)
		}
	}
	if port == "" {
		return Seed{Host: host}, nil
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return Seed{}, fmt.Errorf("%q has a bad port", seed)
	}
	return Seed{Host: host, Port: int(p)}, nil
}

// checkDNSName checks name, with or without its final dot, against DNS's
// rules for names: at most 253 bytes, labels of 1 to 63 letters, digits,
// hyphens and underscores.
func checkDNSName(name string) error {
	name = strings.TrimSuffix(name, ".")
	switch {
	case name == "":
		return errors.New("no name")
	case len(name) > 253:
		return errors.New("longer than 253 bytes")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("label %q is not 1 to 63 bytes", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("label %q holds %q: use letters, digits, '-' and '_'", label, r)
			}
		}
	}
	return nil
}

// Addr returns the seed as host:port, on port when the seed names none
// (DefaultPort when port is 0 too). An SRV seed has no address of its
// own: Resolver.Resolve looks it up.
func (s Seed) Addr(port int) string {
	switch {
	case s.Port != 0:
		port = s.Port
	case port == 0:
		port = DefaultPort
	}
	return net.JoinHostPort(s.Host, strconv.Itoa(port))
}

// Validate checks every seed and returns all problems at once.
func Validate(seeds []string) error {
	var errs []error
	for _, s := range seeds {
		if _, err := Parse(s); err != nil {
			errs = append(errs, fmt.Errorf("config: join: %w", err))
		}
	}
	return errors.Join(errs...)
}
