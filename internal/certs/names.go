package certs

import (
	"fmt"
	"net"
	"net/netip"
)

// Role is the kind of certificate a node asks for. It decides the
// certificate's names and extended key usages.
type Role string

// The roles. The values appear in requests and file names.
const (
	// RoleServer is a Nomad server's certificate.
	RoleServer Role = "server"
	// RoleClient is a Nomad client's certificate.
	RoleClient Role = "client"
	// RoleCLI is the certificate of the local operator and `status` on a
	// server: client authentication only.
	RoleCLI Role = "cli"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleServer, RoleClient, RoleCLI:
		return true
	}
	return false
}

// Identity is what the CA certifies about a node. The agent decides it from
// the committed plan and gossip, never from what the node asks for.
type Identity struct {
	// NodeID and NodeName identify the node in logs and errors.
	NodeID, NodeName string
	// Region is the Nomad region, a DNS label ("global").
	Region string
	// Address is the node's advertised IP address (IPv4 or IPv6). It is
	// required for servers and clients and ignored for the cli role.
	Address string
	// Role is the certificate's role.
	Role Role
}

// Names returns the subject alternative names of a certificate for id, the
// names Nomad verifies:
//
//	server: DNS server.<region>.nomad, localhost; IP 127.0.0.1, Address
//	client: DNS client.<region>.nomad, localhost; IP 127.0.0.1, Address
//	cli:    DNS cli.<region>.nomad, localhost;    IP 127.0.0.1
//
// Duplicate addresses are removed (an IPv4-mapped IPv6 address counts as
// IPv4). The certificate's common name is the first DNS name.
func Names(id Identity) (dns []string, ips []net.IP, err error) {
	if !id.Role.Valid() {
		return nil, nil, fmt.Errorf("certs: unknown role %q; want server, client or cli", id.Role)
	}
	if !isDNSLabel(id.Region) {
		return nil, nil, fmt.Errorf("certs: region %q is not a valid DNS label (1 to 63 letters, digits and hyphens, not starting or ending with a hyphen)", id.Region)
	}
	dns = []string{string(id.Role) + "." + id.Region + ".nomad", "localhost"}
	addrs := []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}
	if id.Role != RoleCLI {
		a, err := netip.ParseAddr(id.Address)
		if err != nil || a.Zone() != "" {
			return nil, nil, fmt.Errorf("certs: address %q of node %q is not an IP address", id.Address, id.NodeName)
		}
		a = a.Unmap()
		if a.IsUnspecified() {
			return nil, nil, fmt.Errorf("certs: address %s of node %q is unspecified; give the node's advertised address", a, id.NodeName)
		}
		if a != addrs[0] {
			addrs = append(addrs, a)
		}
	}
	for _, a := range addrs {
		ips = append(ips, net.IP(a.AsSlice()))
	}
	return dns, ips, nil
}

// isDNSLabel reports whether s is an RFC 1123 DNS label.
func isDNSLabel(s string) bool {
	if len(s) < 1 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
