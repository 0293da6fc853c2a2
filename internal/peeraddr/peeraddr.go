// Package peeraddr tells a listener's peers apart by IP address: it reads
// the address of a host:port, and counts what each address holds open, so
// that no one address takes every slot.
package peeraddr

import (
	"net/netip"
	"sync"
)

// Of returns the IP address of hostport (a connection's RemoteAddr, an
// http.Request's RemoteAddr), an IPv4-mapped IPv6 address as IPv4; the zero
// Addr when it has none.
func Of(hostport string) netip.Addr {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Counter counts, per address, what is open. The zero Counter is ready to
// use, and safe for concurrent use.
type Counter struct {
	mu   sync.Mutex
	open map[netip.Addr]int
}

// Take counts one more for addr, unless it holds limit already, and
// reports whether it did.
func (c *Counter) Take(addr netip.Addr, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[addr] >= limit {
		return false
	}
	if c.open == nil {
		c.open = map[netip.Addr]int{}
	}
	c.open[addr]++
	return true
}

// Give uncounts one that Take counted for addr.
func (c *Counter) Give(addr netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[addr]--; c.open[addr] <= 0 {
		delete(c.open, addr)
	}
}

// Open returns how many addr holds.
func (c *Counter) Open(addr netip.Addr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open[addr]
}
