package fingerprint

import (
	"errors"
	"net"
	"regexp"
	"runtime"
	"strings"
	"testing"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/go-sockaddr/template"
)

// fakeInterfaces builds an interface list from "name addr/prefix" pairs.
func fakeInterfaces(t *testing.T, pairs ...string) sockaddr.IfAddrs {
	t.Helper()
	var addrs sockaddr.IfAddrs
	for i, p := range pairs {
		name, cidr, _ := strings.Cut(p, " ")
		ip, err := sockaddr.NewIPAddr(cidr)
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, sockaddr.IfAddr{
			SockAddr:  ip,
			Interface: net.Interface{Index: i + 1, Name: name, Flags: net.FlagUp},
		})
	}
	return addrs
}

func TestResolveAddressFake(t *testing.T) {
	ifs := fakeInterfaces(t, "lo 127.0.0.1/8", "lo ::1/128", "eth0 10.0.0.5/24", "eth0 fd00::5/64")
	const machine = "addresses on this machine: 127.0.0.1 (lo), ::1 (lo), 10.0.0.5 (eth0), fd00::5 (eth0)"
	errEval := errors.New("boom")

	tests := []struct {
		name    string
		spec    string
		out     string // what the fake evaluator returns
		evalErr error
		want    string
		wantErr string // exact message; "" means success
	}{
		{name: "IPv4 literal", spec: "10.0.0.5", want: "10.0.0.5"},
		{name: "literal with spaces", spec: " 10.0.0.5\n", want: "10.0.0.5"},
		{name: "IPv6 literal canonicalized", spec: "2001:DB8:0:0::1", want: "2001:db8::1"},
		{name: "IPv4-mapped literal unmapped", spec: "::ffff:10.0.0.5", want: "10.0.0.5"},
		{
			name: "unspecified IPv4", spec: "0.0.0.0",
			wantErr: `fingerprint: address "0.0.0.0" cannot be used: an advertise address must be a single address other peers can reach, not 0.0.0.0 or the IPv6 unspecified address`,
		},
		{
			name: "unspecified IPv6", spec: "::",
			wantErr: `fingerprint: address "::" cannot be used: an advertise address must be a single address other peers can reach, not 0.0.0.0 or the IPv6 unspecified address`,
		},
		{
			name: "zone", spec: "fe80::1%eth0",
			wantErr: `fingerprint: address "fe80::1%eth0" has a zone; use an address without one (a link-local address cannot be advertised)`,
		},
		{
			name: "with port", spec: "10.0.0.5:4648",
			wantErr: `fingerprint: address "10.0.0.5:4648" includes a port; give the IP alone, e.g. 10.0.0.5`,
		},
		{
			name: "IPv6 with port", spec: "[fd00::5]:4648",
			wantErr: `fingerprint: address "[fd00::5]:4648" includes a port; give the IP alone, e.g. fd00::5`,
		},
		{name: "template one address", spec: `{{ GetInterfaceIP "eth0" }}`, out: "10.0.0.5", want: "10.0.0.5"},
		{name: "template output trimmed", spec: `{{ GetInterfaceIP "eth0" }}`, out: "\n fd00:0::5 \n", want: "fd00::5"},
		{
			name: "default matched nothing", spec: "", out: "",
			wantErr: `fingerprint: address template "{{ GetPrivateIP }}" matched no address; ` + machine +
				`; pass -advertise or -bind with an IP or a template, e.g. '{{ GetInterfaceIP "eth0" }}'`,
		},
		{
			name: "default given explicitly matched nothing", spec: DefaultAddress, out: "  ",
			wantErr: `fingerprint: address template "{{ GetPrivateIP }}" matched no address; ` + machine +
				`; pass -advertise or -bind with an IP or a template, e.g. '{{ GetInterfaceIP "eth0" }}'`,
		},
		{
			name: "template matched nothing", spec: `{{ GetInterfaceIP "eth1" }}`, out: "",
			wantErr: `fingerprint: address template '{{ GetInterfaceIP "eth1" }}' matched no address; ` + machine,
		},
		{
			name: "template matched several", spec: `{{ GetPrivateIPs }}`, out: "10.0.0.5 10.0.1.5 fd00::5",
			wantErr: `fingerprint: address template "{{ GetPrivateIPs }}" matched 3 addresses (10.0.0.5, 10.0.1.5, fd00::5); narrow it to one, e.g. with | limit 1 or an interface name`,
		},
		{
			name: "template gave a non-IP", spec: `{{ GetInterfaceIP "eth0" }}:4648`, out: "10.0.0.5:4648",
			wantErr: `fingerprint: address template '{{ GetInterfaceIP "eth0" }}:4648' gave "10.0.0.5:4648", which is not an IP address`,
		},
		{
			name: "template gave unspecified", spec: `{{ "0.0.0.0" }}`, out: "0.0.0.0",
			wantErr: `fingerprint: address template '{{ "0.0.0.0" }}' gave 0.0.0.0, which cannot be used: an advertise address must be a single address other peers can reach, not 0.0.0.0 or the IPv6 unspecified address`,
		},
		{
			name: "evaluation error", spec: "{{ Broken }}", evalErr: errEval,
			wantErr: `fingerprint: address template "{{ Broken }}" is invalid: boom`,
		},
		{
			name: "template with both quotes uses %q", spec: `{{ "it's" }}`, out: "",
			wantErr: `fingerprint: address template "{{ \"it's\" }}" matched no address; ` + machine,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resolver{
				interfaces: func() (sockaddr.IfAddrs, error) { return ifs, nil },
				eval: func(spec string, addrs sockaddr.IfAddrs) (string, error) {
					if len(addrs) != len(ifs) {
						t.Errorf("eval got %d interface addresses, want %d", len(addrs), len(ifs))
					}
					return tt.out, tt.evalErr
				},
			}
			got, err := r.resolve(tt.spec)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("resolve(%q) = %q, want error %q", tt.spec, got, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("resolve(%q) error:\n got  %s\n want %s", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve(%q) error = %v", tt.spec, err)
			}
			if got != tt.want {
				t.Errorf("resolve(%q) = %q, want %q", tt.spec, got, tt.want)
			}
		})
	}
}

func TestResolveAddressInterfacesError(t *testing.T) {
	errList := errors.New("netlink: permission denied")
	r := resolver{
		interfaces: func() (sockaddr.IfAddrs, error) { return nil, errList },
		eval:       template.ParseIfAddrs,
	}
	_, err := r.resolve("")
	if !errors.Is(err, errList) || !strings.Contains(err.Error(), `listing network interfaces for address template "{{ GetPrivateIP }}"`) {
		t.Errorf("resolve() error = %v", err)
	}
}

// The real go-sockaddr evaluator runs against the (fake) interface list it is
// given, so templates built on "." are checked without this machine.
func TestResolveAddressTemplateOnFakeInterfaces(t *testing.T) {
	ifs := fakeInterfaces(t, "lo 127.0.0.1/8", "eth0 10.0.0.5/24", "eth0 fd00::5/64", "eth1 10.1.0.7/16")
	r := resolver{
		interfaces: func() (sockaddr.IfAddrs, error) { return ifs, nil },
		eval:       template.ParseIfAddrs,
	}
	tests := []struct {
		spec, want, wantErr string
	}{
		{spec: `{{ . | include "name" "^eth0$" | include "type" "IPv4" | attr "address" }}`, want: "10.0.0.5"},
		{spec: `{{ . | include "name" "^eth1$" | attr "address" }}`, want: "10.1.0.7"},
		{spec: `{{ . | include "name" "^eth" | include "type" "IPv4" | join "address" " " }}`, wantErr: "matched 2 addresses (10.0.0.5, 10.1.0.7)"},
		{spec: `{{ . | include "name" "^eth" | include "type" "IPv4" | limit 1 | join "address" " " }}`, want: "10.0.0.5"},
		{spec: `{{ . | include "name" "^wlan0$" | attr "address" }}`, wantErr: "matched no address; addresses on this machine: 127.0.0.1 (lo), 10.0.0.5 (eth0), fd00::5 (eth0), 10.1.0.7 (eth1)"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := r.resolve(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolve() = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("resolve() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCandidatesTruncated(t *testing.T) {
	var pairs []string
	for i := range maxCandidates + 3 {
		pairs = append(pairs, "veth"+strings.Repeat("x", i)+" 10.0.0.1/32")
	}
	got := candidates(fakeInterfaces(t, pairs...))
	if !strings.HasSuffix(got, " and 3 more") || strings.Count(got, "(veth") != maxCandidates {
		t.Errorf("candidates() = %q", got)
	}
	if got := candidates(nil); got != "none" {
		t.Errorf("candidates(nil) = %q, want none", got)
	}
}

// TestResolveAddressThisMachine runs real go-sockaddr templates against this
// machine's interfaces, using only what every Linux machine has: a loopback
// interface "lo" holding 127.0.0.1.
func TestResolveAddressThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("relies on the Linux loopback interface name")
	}
	tests := []struct {
		name, spec string
		want       string
		wantErr    *regexp.Regexp
	}{
		{name: "literal", spec: "127.0.0.5", want: "127.0.0.5"},
		{name: "constant template", spec: `{{ "127.0.0.9" }}`, want: "127.0.0.9"},
		{
			name: "loopback IPv4",
			spec: `{{ GetAllInterfaces | include "name" "^lo$" | include "type" "IPv4" | attr "address" }}`,
			want: "127.0.0.1",
		},
		{
			// GetInterfaceIP keeps only forwardable addresses, so it never
			// returns a loopback address.
			name:    "GetInterfaceIP skips loopback",
			spec:    `{{ GetInterfaceIP "lo" }}`,
			wantErr: regexp.MustCompile(`^fingerprint: address template '\{\{ GetInterfaceIP "lo" \}\}' matched no address; addresses on this machine: .*127\.0\.0\.1 \(lo\)`),
		},
		{
			name:    "no such interface",
			spec:    `{{ GetAllInterfaces | include "name" "nosuchif0" | attr "address" }}`,
			wantErr: regexp.MustCompile(`matched no address; addresses on this machine: .*127\.0\.0\.1 \(lo\)`),
		},
		{
			name:    "several",
			spec:    `{{ "127.0.0.7 127.0.0.8" }}`,
			wantErr: regexp.MustCompile(`^fingerprint: address template '\{\{ "127\.0\.0\.7 127\.0\.0\.8" \}\}' matched 2 addresses \(127\.0\.0\.7, 127\.0\.0\.8\); narrow it to one`),
		},
		{
			name:    "syntax error",
			spec:    `{{ GetPrivateIP `,
			wantErr: regexp.MustCompile(`^fingerprint: address template "\{\{ GetPrivateIP" is invalid: template: .*unclosed action$`),
		},
		{
			name:    "unknown function",
			spec:    `{{ GetPrivatIP }}`,
			wantErr: regexp.MustCompile(`^fingerprint: address template "\{\{ GetPrivatIP \}\}" is invalid: template: .*function "GetPrivatIP" not defined$`),
		},
		{
			name:    "execution error",
			spec:    `{{ GetAllInterfaces | attr "nosuchattr" }}`,
			wantErr: regexp.MustCompile(`^fingerprint: address template '\{\{ GetAllInterfaces \| attr "nosuchattr" \}\}' failed: template: .*unsupported attribute name "nosuchattr"$`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveAddress(tt.spec)
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr.MatchString(err.Error()) {
					t.Fatalf("ResolveAddress() = %q, %v; want error matching %s", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ResolveAddress() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestResolveAddressThisMachineLoopbackPair checks a template matching both
// loopback addresses, where the machine has IPv6.
func TestResolveAddressThisMachineLoopbackPair(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("relies on the Linux loopback interface name")
	}
	all, err := sockaddr.GetAllInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	lo, _, err := sockaddr.IfByName("^lo$", all)
	if err != nil {
		t.Fatal(err)
	}
	if len(lo) < 2 {
		t.Skipf("lo has %d addresses, want 127.0.0.1 and ::1", len(lo))
	}
	_, err = ResolveAddress(`{{ GetAllInterfaces | include "name" "^lo$" | join "address" " " }}`)
	want := "matched 2 addresses (127.0.0.1, ::1); narrow it to one, e.g. with | limit 1 or an interface name"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ResolveAddress() error = %v, want it to contain %q", err, want)
	}
}

// TestResolveAddressDefault accepts either outcome: a machine without a
// private address on a default route legitimately matches nothing.
func TestResolveAddressDefault(t *testing.T) {
	got, err := ResolveAddress("")
	if err != nil {
		msg := err.Error()
		if !strings.Contains(msg, `address template "{{ GetPrivateIP }}" matched no address`) ||
			!strings.Contains(msg, "pass -advertise or -bind with an IP or a template") {
			t.Fatalf("ResolveAddress(\"\") error = %v", err)
		}
		t.Logf("default template matched nothing here: %v", err)
		return
	}
	if again, err := ResolveAddress(got); err != nil || again != got {
		t.Errorf("ResolveAddress(\"\") = %q, which does not resolve to itself (%q, %v)", got, again, err)
	}
	t.Logf("default template gave %s", got)
}
