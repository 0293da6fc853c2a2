package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeDNS answers SRV and host lookups from maps, counting the lookups.
type fakeDNS struct {
	srv     map[string][]*net.SRV
	hosts   map[string][]string
	lookups int
}

func (f *fakeDNS) resolver() Resolver {
	return Resolver{
		LookupSRV: func(_ context.Context, name string) ([]*net.SRV, error) {
			f.lookups++
			if recs, ok := f.srv[name]; ok {
				return recs, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		},
		LookupHost: func(_ context.Context, host string) ([]string, error) {
			f.lookups++
			if addrs, ok := f.hosts[host]; ok {
				return addrs, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		},
	}
}

func TestResolve(t *testing.T) {
	f := &fakeDNS{
		srv: map[string][]*net.SRV{
			"_g._tcp.example.com.": {
				{Target: "b.example.com.", Port: 4660, Priority: 10, Weight: 5},
				{Target: "a.example.com.", Port: 4650, Priority: 10, Weight: 50},
				{Target: "10.0.0.9.", Port: 4650, Priority: 20},
				{Target: "c.example.com.", Port: 4650, Priority: 0},
			},
			"_none._tcp.example.com.":   {{Target: ".", Port: 0}},
			"_broken._tcp.example.com.": {{Target: "gone.example.com.", Port: 4650}},
		},
		hosts: map[string][]string{
			"a.example.com": {"10.0.0.1", "fd00::1"},
			"b.example.com": {"10.0.0.2"},
			"c.example.com": {"10.0.0.3"},
		},
	}
	tests := []struct {
		name  string
		seeds []string
		want  []string
		errs  []string
	}{
		{name: "addresses and names stay", seeds: []string{"10.0.0.7", "n1:99", "[fd00::7]"},
			want: []string{"10.0.0.7:4650", "n1:99", "[fd00::7]:4650"}},
		{name: "SRV by priority, then the heaviest", seeds: []string{"dns+srv://_g._tcp.example.com"},
			want: []string{"10.0.0.3:4650", "10.0.0.1:4650", "[fd00::1]:4650", "10.0.0.2:4660", "10.0.0.9:4650"}},
		{name: "SRV among addresses", seeds: []string{"10.0.0.7", "dns+srv://_g._tcp.example.com.", "10.0.0.1:4650"},
			want: []string{"10.0.0.7:4650", "10.0.0.3:4650", "10.0.0.1:4650", "[fd00::1]:4650", "10.0.0.2:4660", "10.0.0.9:4650", "10.0.0.1:4650"}},
		{name: "no such name", seeds: []string{"dns+srv://_missing._tcp.example.com", "10.0.0.7"},
			want: []string{"10.0.0.7:4650"}, errs: []string{"looking up dns+srv://_missing._tcp.example.com: lookup _missing._tcp.example.com.: no such host"}},
		{name: "no service", seeds: []string{"dns+srv://_none._tcp.example.com"},
			errs: []string{"has no SRV record that names a host"}},
		{name: "no target resolves", seeds: []string{"dns+srv://_broken._tcp.example.com"},
			errs: []string{"no target of _broken._tcp.example.com. resolves (gone.example.com: lookup gone.example.com: no such host)"}},
		{name: "a bad seed stays for the join to report", seeds: []string{" bad/seed "}, want: []string{"bad/seed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := f.resolver().Resolve(context.Background(), tt.seeds, 0)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Resolve = %q, want %q", got, tt.want)
			}
			if len(errs) != len(tt.errs) {
				t.Fatalf("errors %v, want %d", errs, len(tt.errs))
			}
			for i, err := range errs {
				var se *LookupError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.errs[i]) {
					t.Errorf("error %v, want an *LookupError containing %q", err, tt.errs[i])
				}
			}
		})
	}
}

// An SRV name that answers with many records gives at most MaxTargets
// addresses.
func TestResolveBounded(t *testing.T) {
	f := &fakeDNS{srv: map[string][]*net.SRV{"_g._tcp.example.com.": nil}}
	for i := range 300 {
		ip := net.IPv4(10, 1, byte(i/256), byte(i%256)).String()
		f.srv["_g._tcp.example.com."] = append(f.srv["_g._tcp.example.com."], &net.SRV{Target: ip + ".", Port: 4650})
	}
	got, errs := f.resolver().Resolve(context.Background(), []string{"dns+srv://_g._tcp.example.com"}, 0)
	if len(got) != MaxTargets || len(errs) != 0 {
		t.Errorf("%d addresses, errors %v; want %d", len(got), errs, MaxTargets)
	}
}

// Against a real DNS server on loopback, through Go's own resolver: the
// records' targets and ports come back, and a lookup that gets no answer
// ends within the timeout.
func TestResolveRealDNS(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc("_g._tcp.test.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if r.Question[0].Qtype == dns.TypeSRV {
			m.Answer = append(m.Answer,
				&dns.SRV{Hdr: dns.RR_Header{Name: "_g._tcp.test.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5}, Priority: 1, Weight: 1, Port: 4701, Target: "n1.test."},
				&dns.SRV{Hdr: dns.RR_Header{Name: "_g._tcp.test.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5}, Priority: 2, Weight: 1, Port: 4702, Target: "n2.test."})
		}
		w.WriteMsg(m)
	})
	mux.HandleFunc("test.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		if q.Qtype == dns.TypeA {
			ip := map[string]string{"n1.test.": "127.31.0.1", "n2.test.": "127.31.0.2"}[q.Name]
			if ip != "" {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)})
			}
		}
		w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })

	goResolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	r := Resolver{
		LookupSRV: func(ctx context.Context, name string) ([]*net.SRV, error) {
			_, recs, err := goResolver.LookupSRV(ctx, "", "", name)
			return recs, err
		},
		LookupHost: goResolver.LookupHost,
		Timeout:    2 * time.Second,
	}
	got, errs := r.Resolve(context.Background(), []string{"dns+srv://_g._tcp.test"}, 0)
	if want := []string{"127.31.0.1:4701", "127.31.0.2:4702"}; !slices.Equal(got, want) || len(errs) != 0 {
		t.Errorf("Resolve = %q, %v; want %q", got, errs, want)
	}
	_, errs = r.Resolve(context.Background(), []string{"dns+srv://_missing._tcp.test"}, 0)
	if len(errs) != 1 {
		t.Errorf("a name without records: errors %v, want one", errs)
	}
}

// Names that never answer hold Resolve up for at most two timeouts, however
// many records name them: the lookups of the targets share one deadline,
// and at most MaxTargets of them are made.
func TestResolveSlowTargets(t *testing.T) {
	var recs []*net.SRV
	for i := range 200 {
		recs = append(recs, &net.SRV{Target: fmt.Sprintf("slow%d.example.com.", i), Port: 4650})
	}
	var deadlines []time.Time
	r := Resolver{
		LookupSRV: func(context.Context, string) ([]*net.SRV, error) { return recs, nil },
		LookupHost: func(ctx context.Context, host string) ([]string, error) {
			d, _ := ctx.Deadline()
			deadlines = append(deadlines, d)
			<-ctx.Done()
			return nil, ctx.Err()
		},
		Timeout: 20 * time.Millisecond,
	}
	got, errs := r.Resolve(context.Background(), []string{"dns+srv://_g._tcp.example.com"}, 0)
	if len(got) != 0 || len(errs) != 1 {
		t.Errorf("Resolve gave %q, %v; want nothing and one error", got, errs)
	}
	if len(deadlines) == 0 || len(deadlines) > MaxTargets {
		t.Fatalf("%d lookups of targets, want 1 to %d", len(deadlines), MaxTargets)
	}
	for _, d := range deadlines {
		if d.IsZero() || !d.Equal(deadlines[0]) {
			t.Fatalf("the lookups of targets had deadlines %v, want one shared deadline", deadlines)
		}
	}
}

// The mDNS seed gives what MDNS finds, among the other seeds; without
// MDNS it is a lookup error.
func TestResolveMDNS(t *testing.T) {
	found := Resolver{MDNS: func(context.Context) ([]string, error) { return []string{"10.0.0.8:4650", "10.0.0.9:4650"}, nil }}
	got, errs := found.Resolve(context.Background(), []string{"10.0.0.7", "provider=mdns"}, 0)
	if want := []string{"10.0.0.7:4650", "10.0.0.8:4650", "10.0.0.9:4650"}; !slices.Equal(got, want) || len(errs) != 0 {
		t.Errorf("Resolve = %q, %v; want %q", got, errs, want)
	}
	failing := Resolver{MDNS: func(context.Context) ([]string, error) { return nil, errors.New("no multicast listener") }}
	if _, errs := failing.Resolve(context.Background(), []string{"provider=mdns"}, 0); len(errs) != 1 ||
		errs[0].Error() != "looking up provider=mdns: no multicast listener" {
		t.Errorf("errors %v", errs)
	}
	if _, errs := (Resolver{}).Resolve(context.Background(), []string{"provider=mdns"}, 0); len(errs) != 1 {
		t.Errorf("without MDNS: errors %v, want one", errs)
	}
}

func TestMDNSTag(t *testing.T) {
	a, b := MDNSTag([]byte("key one")), MDNSTag([]byte("key two"))
	if len(a) != 16 || a == b || a != MDNSTag([]byte("key one")) {
		t.Errorf("tags %q and %q: want 16 hex digits, stable, different per key", a, b)
	}
}
