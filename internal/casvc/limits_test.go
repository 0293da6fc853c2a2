package casvc

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// dialFromAddr connects to addr from the loopback address from.
func dialFromAddr(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// open reports whether the listener kept c: a read that times out rather
// than ending.
func open(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := io.Copy(io.Discard, c)
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// Beyond PerAddr connections of one address, and beyond Total of
// non-members, connections are closed at once; a member's are taken
// whatever the total, and a closed connection frees its place.
func TestConnLimits(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	member := netip.MustParseAddr("127.0.0.9")
	l := limitListener(inner, ConnLimits{PerAddr: 2, Total: 3, Member: func(a netip.Addr) bool { return a == member }})
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	addr := inner.Addr().String()
	steps := []struct {
		from string
		kept bool
	}{
		{"127.0.0.2", true}, {"127.0.0.2", true}, {"127.0.0.2", false}, // per address
		{"127.0.0.3", true}, {"127.0.0.4", false}, // three non-members in all
		{"127.0.0.9", true}, {"127.0.0.9", true}, {"127.0.0.9", false}, // a member: over the total, within its own cap
	}
	var conns []net.Conn
	for i, s := range steps {
		c := dialFromAddr(t, s.from, addr)
		conns = append(conns, c)
		if got := open(c); got != s.kept {
			t.Errorf("step %d from %s: kept %v, want %v", i, s.from, got, s.kept)
		}
	}
	conns[0].Close()
	time.Sleep(100 * time.Millisecond)
	if c := dialFromAddr(t, "127.0.0.4", addr); !open(c) {
		t.Error("a closed connection did not free its place")
	}
}

func TestSampler(t *testing.T) {
	s := sampler{every: time.Minute}
	t0 := time.Unix(1_800_000_000, 0)
	steps := []struct {
		key        string
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{"a", 0, true, 0}, {"a", time.Second, false, 0}, {"a", 2 * time.Second, false, 0},
		{"b", 3 * time.Second, true, 0},
		{"a", time.Minute, true, 2}, {"a", time.Minute + time.Second, false, 0},
	}
	for i, st := range steps {
		ok, n := s.allow(st.key, t0.Add(st.at))
		if ok != st.ok || n != st.suppressed {
			t.Errorf("step %d: allow = %v, %d; want %v, %d", i, ok, n, st.ok, st.suppressed)
		}
	}
}
