package discover

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Seed
		addr string // Addr(0); "" for an SRV seed
		err  string
	}{
		{in: "10.0.0.5", want: Seed{Host: "10.0.0.5"}, addr: "10.0.0.5:4650"},
		{in: "10.0.0.5:7946", want: Seed{Host: "10.0.0.5", Port: 7946}, addr: "10.0.0.5:7946"},
		{in: " 10.0.0.5 ", want: Seed{Host: "10.0.0.5"}, addr: "10.0.0.5:4650"},
		{in: "fd00::1", want: Seed{Host: "fd00::1"}, addr: "[fd00::1]:4650"},
		{in: "[fd00::1]", want: Seed{Host: "fd00::1"}, addr: "[fd00::1]:4650"},
		{in: "[fd00::1]:7000", want: Seed{Host: "fd00::1", Port: 7000}, addr: "[fd00::1]:7000"},
		{in: "node1.example.com", want: Seed{Host: "node1.example.com"}, addr: "node1.example.com:4650"},
		{in: "node1:99", want: Seed{Host: "node1", Port: 99}, addr: "node1:99"},
		{in: "dns+srv://_nomad-bootstrapd._tcp.example.com", want: Seed{SRV: "_nomad-bootstrapd._tcp.example.com."}},
		{in: "DNS+SRV://_Gossip._TCP.Example.COM.", want: Seed{SRV: "_gossip._tcp.example.com."}},
		{in: "provider=mdns", want: Seed{MDNS: true}},
		{in: " Provider=MDNS ", want: Seed{MDNS: true}},
		{in: "provider=aws tag_key=nomad", err: "the only provider is mdns"},
		{in: "provider=mdns service=x", err: "the only provider is mdns"},
		{in: "", err: "empty seed address"},
		{in: "a/10.0.0.1", err: "not an address"},
		{in: ":4650", err: "has no host"},
		{in: "10.0.0.5:0", err: "bad port"},
		{in: "10.0.0.5:70000", err: "bad port"},
		{in: "10.0.0.5:http", err: "bad port"},
		{in: "[fd00::1", err: "not an address"},
		{in: "[nope]", err: "not an address"},
		{in: "dns+srv://", err: "no name"},
		{in: "dns+srv://_x._tcp.example.com:4650", err: "holds ':'"},
		{in: "dns+srv://_x._tcp.example.com/path", err: "holds '/'"},
		{in: "dns+srv://a..b", err: `label ""`},
		{in: "dns+srv://" + strings.Repeat("a", 64) + ".com", err: "not 1 to 63 bytes"},
		{in: "dns+srv://" + strings.Repeat("a.", 127) + "com", err: "longer than 253 bytes"},
		{in: "srv://_x._tcp.example.com", err: "not an address"},
		{in: "[", err: "not an address or a host name"},
		{in: "n1!", err: "not an address or a host name"},
		{in: "n1..example.com:4650", err: "not an address or a host name"},
		{in: "N1.Example.COM", want: Seed{Host: "N1.Example.COM"}, addr: "N1.Example.COM:4650"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse(%q) = %+v, %v; want error %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if tt.addr != "" {
				if a := got.Addr(0); a != tt.addr {
					t.Errorf("Addr(0) = %q, want %q", a, tt.addr)
				}
			}
		})
	}
}

func TestAddrPort(t *testing.T) {
	for _, tt := range []struct {
		seed Seed
		port int
		want string
	}{
		{Seed{Host: "10.0.0.5"}, 7000, "10.0.0.5:7000"},
		{Seed{Host: "10.0.0.5", Port: 4651}, 7000, "10.0.0.5:4651"},
		{Seed{Host: "fd00::1"}, 7000, "[fd00::1]:7000"},
		{Seed{Host: "n1"}, 0, "n1:4650"},
	} {
		if got := tt.seed.Addr(tt.port); got != tt.want {
			t.Errorf("%+v.Addr(%d) = %q, want %q", tt.seed, tt.port, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := Validate([]string{"10.0.0.1", "dns+srv://_g._tcp.example.com", "n1:4650"}); err != nil {
		t.Errorf("Validate = %v", err)
	}
	err := Validate([]string{"10.0.0.1:0", "ok", "dns+srv://a b"})
	if err == nil || !strings.Contains(err.Error(), `"10.0.0.1:0" has a bad port`) || !strings.Contains(err.Error(), `"dns+srv://a b" is not a DNS SRV seed`) {
		t.Errorf("Validate = %v; want both bad seeds named", err)
	}
}
