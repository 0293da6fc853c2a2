package discover

import (
	"net"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts is a host that gives
// an address with a port, or an SRV name of DNS's characters only.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"10.0.0.5", "[fd00::1]:7000", "n1:99", "dns+srv://_g._tcp.example.com", "dns+srv://", "a/b", ":1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		if s.MDNS {
			if s.Host != "" || s.Port != 0 || s.SRV != "" {
				t.Fatalf("Parse(%q) = %+v", in, s)
			}
			return
		}
		if s.SRV != "" {
			if s.Host != "" || s.Port != 0 || !strings.HasSuffix(s.SRV, ".") || strings.ContainsAny(s.SRV, " /:@") {
				t.Fatalf("Parse(%q) = %+v", in, s)
			}
			return
		}
		if _, _, err := net.SplitHostPort(s.Addr(0)); err != nil || s.Host == "" {
			t.Fatalf("Parse(%q) = %+v, whose address %q does not split: %v", in, s, s.Addr(0), err)
		}
	})
}
