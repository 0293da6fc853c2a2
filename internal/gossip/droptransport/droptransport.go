// Package droptransport is an in-memory memberlist transport for tests and
// benchmarks with many nodes in one process. Unlike memberlist's
// MockNetwork, whose unbuffered channels deadlock once a few nodes write to
// each other at the same time (at about 100 nodes), it never blocks a
// sender: a packet to a node whose queue is full is dropped, as a busy UDP
// socket would drop it, and a stream that is not accepted in time fails
// like a TCP dial that times out.
package droptransport

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// PacketQueue is how many packets a node's inbound queue holds before
// further packets to it are dropped.
const PacketQueue = 1024

// StreamQueue is how many streams may wait to be accepted by one node.
const StreamQueue = 64

// Network connects the transports made by NewTransport. The zero value is
// ready to use; it is safe for concurrent use.
type Network struct {
	mu     sync.RWMutex
	byAddr map[string]*Transport

	dropped atomic.Int64
	sent    atomic.Int64
}

// Dropped returns how many packets were dropped because a queue was full or
// the destination unknown or shut down.
func (n *Network) Dropped() int64 { return n.dropped.Load() }

// Sent returns how many packets were delivered to a queue.
func (n *Network) Sent() int64 { return n.sent.Load() }

// NewTransport returns a transport reachable at addr ("ip:port"), which it
// also advertises. It fails when addr is taken by a live transport.
func (n *Network) NewTransport(addr string) (*Transport, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("droptransport: %w", err)
	}
	ip := net.ParseIP(host)
	p, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		return nil, fmt.Errorf("droptransport: %q is not ip:port", addr)
	}
	t := &Transport{
		net:      n,
		addr:     &net.TCPAddr{IP: ip, Port: p},
		key:      net.JoinHostPort(ip.String(), strconv.Itoa(p)),
		packetCh: make(chan *memberlist.Packet, PacketQueue),
		streamCh: make(chan net.Conn, StreamQueue),
		done:     make(chan struct{}),
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byAddr == nil {
		n.byAddr = map[string]*Transport{}
	}
	if old, ok := n.byAddr[t.key]; ok && !old.closed() {
		return nil, fmt.Errorf("droptransport: %s is in use", t.key)
	}
	n.byAddr[t.key] = t
	return t, nil
}

func (n *Network) lookup(addr string) (*Transport, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	n.mu.RLock()
	t, ok := n.byAddr[net.JoinHostPort(host, port)]
	n.mu.RUnlock()
	if !ok || t.closed() {
		return nil, fmt.Errorf("droptransport: no route to %s", addr)
	}
	return t, nil
}

// Transport is one node's end of a Network. It implements
// memberlist.NodeAwareTransport; set it as memberlist.Config.Transport.
type Transport struct {
	net      *Network
	addr     *net.TCPAddr
	key      string
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

func (t *Transport) closed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// FinalAdvertiseAddr returns the transport's own address, whatever was
// configured.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.addr.IP, t.addr.Port, nil
}

// WriteTo queues b for addr, or drops it when addr's queue is full. Only an
// unknown address is an error, like an unreachable network would be.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	now := time.Now()
	dest, err := t.net.lookup(addr)
	if err != nil {
		t.net.dropped.Add(1)
		return now, nil // UDP does not tell the sender either
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: t.addr, Timestamp: now}
	select {
	case dest.packetCh <- p:
		t.net.sent.Add(1)
	default:
		t.net.dropped.Add(1)
	}
	return now, nil
}

// WriteToAddress is WriteTo; the node name is not needed.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh returns the inbound packets.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout connects to addr with an in-memory pipe. It fails when addr
// is unknown or does not accept the stream within timeout.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	dest, err := t.net.lookup(addr)
	if err != nil {
		return nil, err
	}
	local, remote := net.Pipe()
	c := &conn{Conn: local, local: t.addr, remote: dest.addr}
	r := &conn{Conn: remote, local: dest.addr, remote: t.addr}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dest.streamCh <- r:
		return c, nil
	case <-dest.done:
	case <-timer.C:
	}
	local.Close()
	remote.Close()
	return nil, fmt.Errorf("droptransport: dial %s: %w", addr, errTimeout)
}

// DialAddressTimeout is DialTimeout; the node name is not needed.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh returns the inbound streams.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown makes the address unreachable. Packets already queued are left
// for the garbage collector; memberlist stops reading when it shuts down.
func (t *Transport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		t.net.mu.Lock()
		if t.net.byAddr[t.key] == t {
			delete(t.net.byAddr, t.key)
		}
		t.net.mu.Unlock()
	})
	return nil
}

// errTimeout is a dial that was not accepted in time.
var errTimeout = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var _ net.Error = timeoutError{}

// conn is a pipe end with the addresses memberlist logs and checks.
type conn struct {
	net.Conn
	local, remote net.Addr
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }
