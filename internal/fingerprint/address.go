package fingerprint

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	texttemplate "text/template"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/go-sockaddr/template"
)

// ResolveAddress turns spec into exactly one IP address. spec is an IP
// literal or a go-sockaddr template; "" means DefaultAddress.
//
// An IP literal comes back in canonical form (IPv4-mapped IPv6 unmapped). It
// may not carry a zone or be unspecified (0.0.0.0, ::), since other peers
// must be able to reach it. A template must evaluate to exactly one such
// address; otherwise the error names the template and, when nothing matched,
// lists the addresses this machine has.
func ResolveAddress(spec string) (string, error) {
	return defaultResolver.resolve(spec)
}

// resolver evaluates address templates. Its fields are the seams tests
// replace to avoid depending on this machine's interfaces.
type resolver struct {
	// interfaces lists the machine's interface addresses; they are the
	// template's input and the candidates an error lists.
	interfaces func() (sockaddr.IfAddrs, error)
	// eval evaluates a go-sockaddr template against addrs.
	eval func(spec string, addrs sockaddr.IfAddrs) (string, error)
}

var defaultResolver = resolver{
	interfaces: sockaddr.GetAllInterfaces,
	eval:       template.ParseIfAddrs, // what template.Parse does after listing interfaces
}

// maxCandidates bounds how many addresses an error lists.
const maxCandidates = 16

func (r resolver) resolve(spec string) (string, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		spec = DefaultAddress
	}
	if addr, err := netip.ParseAddr(spec); err == nil {
		if err := checkAddr(addr); err != nil {
			return "", fmt.Errorf("fingerprint: address %s %w", quote(spec), err)
		}
		return addr.Unmap().String(), nil
	}
	if ap, err := netip.ParseAddrPort(spec); err == nil {
		return "", fmt.Errorf("fingerprint: address %s includes a port; give the IP alone, e.g. %s",
			quote(spec), ap.Addr().Unmap())
	}

	addrs, err := r.interfaces()
	if err != nil {
		return "", fmt.Errorf("fingerprint: listing network interfaces for address template %s: %w", quote(spec), err)
	}
	out, err := r.eval(spec, addrs)
	if err != nil {
		return "", templateError(spec, err)
	}

	results := strings.Fields(out)
	switch len(results) {
	case 0:
		msg := fmt.Sprintf("fingerprint: address template %s matched no address; addresses on this machine: %s",
			quote(spec), candidates(addrs))
		if spec == DefaultAddress {
			msg += `; pass -advertise or -bind with an IP or a template, e.g. '{{ GetInterfaceIP "eth0" }}'`
		}
		return "", errors.New(msg)
	case 1:
	default:
		return "", fmt.Errorf("fingerprint: address template %s matched %d addresses (%s); narrow it to one, e.g. with | limit 1 or an interface name",
			quote(spec), len(results), strings.Join(results, ", "))
	}

	addr, err := netip.ParseAddr(results[0])
	if err != nil {
		return "", fmt.Errorf("fingerprint: address template %s gave %s, which is not an IP address",
			quote(spec), strconv.Quote(results[0]))
	}
	if err := checkAddr(addr); err != nil {
		return "", fmt.Errorf("fingerprint: address template %s gave %s, which %w", quote(spec), results[0], err)
	}
	return addr.Unmap().String(), nil
}

// checkAddr rejects addresses other peers cannot be told to use. Its errors
// read as the end of a sentence about the address.
func checkAddr(addr netip.Addr) error {
	if addr.Zone() != "" {
		return errors.New("has a zone; use an address without one (a link-local address cannot be advertised)")
	}
	if addr.Unmap().IsUnspecified() {
		return errors.New("cannot be used: an advertise address must be a single address other peers can reach, not 0.0.0.0 or the IPv6 unspecified address")
	}
	return nil
}

// templateError explains a failed template evaluation. go-sockaddr's own
// message repeats the template, so only the underlying cause is kept.
func templateError(spec string, err error) error {
	cause := err
	if inner := errors.Unwrap(err); inner != nil {
		cause = inner
	}
	var execErr texttemplate.ExecError
	if errors.As(err, &execErr) {
		return fmt.Errorf("fingerprint: address template %s failed: %w", quote(spec), cause)
	}
	return fmt.Errorf("fingerprint: address template %s is invalid: %w", quote(spec), cause)
}

// candidates lists addrs as "127.0.0.1 (lo), 10.0.0.5 (eth0)".
func candidates(addrs sockaddr.IfAddrs) string {
	var list []string
	for _, a := range addrs {
		ip := sockaddr.ToIPAddr(a.SockAddr)
		if ip == nil {
			continue
		}
		list = append(list, fmt.Sprintf("%s (%s)", sockaddr.IPAddrAttr(*ip, "address"), a.Name))
	}
	switch {
	case len(list) == 0:
		return "none"
	case len(list) > maxCandidates:
		return fmt.Sprintf("%s and %d more", strings.Join(list[:maxCandidates], ", "), len(list)-maxCandidates)
	}
	return strings.Join(list, ", ")
}

// quote quotes a spec for an error message. Templates usually contain double
// quotes, which %q would escape, so those are put in single quotes instead.
func quote(s string) string {
	if strings.ContainsRune(s, '"') && !strings.ContainsRune(s, '\'') && strconv.CanBackquote(s) {
		return "'" + s + "'"
	}
	return strconv.Quote(s)
}

// InterfaceOf returns the machine's interface that holds addr.
func InterfaceOf(addr netip.Addr) (*net.Interface, bool) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, false
	}
	for _, i := range ifaces {
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == addr.Unmap() {
				return &i, true
			}
		}
	}
	return nil, false
}
