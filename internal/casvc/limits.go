package casvc

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/peeraddr"
)

// ConnLimits bound the connections the endpoint holds, so that strangers
// cannot grow its memory or crowd out the members.
type ConnLimits struct {
	// PerAddr is how many connections one source address may hold; more
	// are closed at once. DefaultConnLimits.PerAddr when 0.
	PerAddr int
	// Total is how many connections from addresses that are not members
	// the endpoint holds; more are closed at once. A member's connection
	// is taken whatever this count. DefaultConnLimits.Total when 0.
	Total int
	// Member reports whether an address is a member's; nil counts none.
	Member func(netip.Addr) bool
}

// DefaultConnLimits allow 16 connections per address, enough for the nodes
// behind one NAT to ask at once, and 256 from non-members.
var DefaultConnLimits = ConnLimits{PerAddr: 16, Total: 256}

// DefaultRatePerAddr allows each source address 10 requests a second
// with a burst of 50, before any is authenticated: the nodes behind one NAT
// share it.
var DefaultRatePerAddr = RateLimit{Every: 100 * time.Millisecond, Burst: 50}

// limitedListener applies ConnLimits to a listener's connections.
type limitedListener struct {
	net.Listener
	lim ConnLimits

	open   peeraddr.Counter // connections per source address
	mu     sync.Mutex
	others int // connections of non-members
}

func limitListener(l net.Listener, lim ConnLimits) *limitedListener {
	if lim.PerAddr <= 0 {
		lim.PerAddr = DefaultConnLimits.PerAddr
	}
	if lim.Total <= 0 {
		lim.Total = DefaultConnLimits.Total
	}
	return &limitedListener{Listener: l, lim: lim}
}

// Accept returns the next connection within the limits, closing those
// beyond them.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := peeraddr.Of(c.RemoteAddr().String())
		member := l.lim.Member != nil && l.lim.Member(addr)
		if !l.take(addr, member) {
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.give(addr, member) }}, nil
	}
}

func (l *limitedListener) take(addr netip.Addr, member bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !member && l.others >= l.lim.Total || !l.open.Take(addr, l.lim.PerAddr) {
		return false
	}
	if !member {
		l.others++
	}
	return true
}

func (l *limitedListener) give(addr netip.Addr, member bool) {
	l.open.Give(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !member {
		l.others--
	}
}

// limitedConn frees its place in the limits when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// sampler lets one log line per key (a source and a reason) through each
// interval and counts the others, so that a flood of the same refusal costs
// a line a minute.
type sampler struct {
	every time.Duration

	mu   sync.Mutex
	seen map[string]*sample
}

type sample struct {
	last       time.Time
	suppressed int
}

// maxSamples bounds the sampler's keys; past it, it starts over.
const maxSamples = 10_000

// allow reports whether a line about key may be logged at now, and how
// many were suppressed since the last one.
func (s *sampler) allow(key string, now time.Time) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil || len(s.seen) >= maxSamples {
		s.seen = map[string]*sample{}
	}
	e, ok := s.seen[key]
	if !ok {
		s.seen[key] = &sample{last: now}
		return true, 0
	}
	if now.Sub(e.last) < s.every {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}
