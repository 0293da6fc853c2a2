package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/peeraddr"
)

// Bounds of the TCP streams memberlist reads, before it decrypts them: a
// stranger that knows nothing of the cluster, or a member, must not grow the
// agent's memory with streams of up to memberlist's own limit (20 MiB each),
// nor hold the streams that members need.
const (
	// MaxStreams is how many streams from addresses that are not members'
	// are read at once; more wait. Members' streams have as many slots of
	// their own.
	MaxStreams = 16
	// MaxStreamsPerAddr is how many streams an address that is not a
	// member's may have open; more are closed at once.
	MaxStreamsPerAddr = 4
	// StreamWait is how long a stream waits for its turn before it is
	// closed unread.
	StreamWait = 5 * time.Second
	// FirstByteWithin is how soon a stream must send its first bytes.
	FirstByteWithin = 2 * time.Second
	// MaxStreamBytes is the most read from one stream: a push/pull sync of
	// about 3,000 members fits.
	MaxStreamBytes = 1 << 20
)

// errStreamTooLong ends a stream that sent more than MaxStreamBytes.
var errStreamTooLong = errors.New("gossip: stream longer than allowed")

// cappedTransport is memberlist's network transport with its TCP streams
// capped (MaxStreams, MaxStreamsPerAddr, StreamWait, FirstByteWithin,
// MaxStreamBytes).
type cappedTransport struct {
	*memberlist.NetTransport
	bind    net.IP // the address streams are dialled from; nil for any
	streams chan net.Conn
	slots   chan struct{} // for strangers' streams
	members chan struct{} // for members' streams
	// member reports whether an address is an alive member's.
	member func(netip.Addr) bool
	log    *slog.Logger
	done   chan struct{}
	once   sync.Once
	open   peeraddr.Counter // strangers' streams open per remote address
}

// newCappedTransport starts memberlist's transport on addr:port (0 picks a
// port) with capped streams; member tells the members' addresses.
func newCappedTransport(addr string, port int, member func(netip.Addr) bool, log *slog.Logger) (*cappedTransport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{addr}, BindPort: port, Logger: NewStdLogger(log),
	})
	if err != nil {
		return nil, fmt.Errorf("gossip: start: %w", err)
	}
	t := &cappedTransport{
		NetTransport: nt,
		streams:      make(chan net.Conn),
		slots:        make(chan struct{}, MaxStreams),
		members:      make(chan struct{}, MaxStreams),
		member:       member,
		log:          log,
		done:         make(chan struct{}),
	}
	if ip := net.ParseIP(addr); ip != nil && !ip.IsUnspecified() {
		t.bind = ip
	}
	go t.admit()
	return t, nil
}

// DialTimeout dials addr from the bound address, so that the stream comes
// from the address the other members know this node by.
func (t *cappedTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout is DialTimeout for a memberlist address.
func (t *cappedTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if t.bind != nil {
		d.LocalAddr = &net.TCPAddr{IP: t.bind}
	}
	return d.Dial("tcp", a.Addr)
}

// admit hands memberlist each accepted stream, capped, once a slot is free;
// it closes a stream whose address has MaxStreamsPerAddr open, and one that
// waited StreamWait for a slot.
func (t *cappedTransport) admit() {
	for {
		var c net.Conn
		select {
		case c = <-t.NetTransport.StreamCh():
		case <-t.done:
			return
		}
		addr := peeraddr.Of(c.RemoteAddr().String())
		member := t.member(addr)
		if !member && !t.open.Take(addr, MaxStreamsPerAddr) {
			t.log.Debug("gossip: closing a stream: its address has too many open", "remote", addr.String())
			c.Close()
			continue
		}
		slots := t.slots
		if member {
			slots = t.members
		}
		capped := &cappedConn{Conn: c, left: MaxStreamBytes}
		capped.release = func() {
			if capped.slot {
				<-slots
			}
			if !member {
				t.open.Give(addr)
			}
		}
		timer := time.NewTimer(StreamWait)
		select {
		case slots <- struct{}{}:
			timer.Stop()
		case <-timer.C:
			t.log.Debug("gossip: closing a stream that waited too long for its turn", "remote", addr.String())
			capped.Close()
			continue
		case <-t.done:
			timer.Stop()
			capped.Close()
			return
		}
		capped.slot = true
		select {
		case t.streams <- capped:
		case <-t.done:
			capped.Close()
			return
		}
	}
}

// StreamCh returns the capped streams.
func (t *cappedTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown stops the transport.
func (t *cappedTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	// The listener may be handing over a stream still: close what comes
	// until it has stopped.
	stopped := make(chan struct{})
	go func() {
		for {
			select {
			case c := <-t.NetTransport.StreamCh():
				c.Close()
			case <-stopped:
				return
			}
		}
	}()
	err := t.NetTransport.Shutdown()
	close(stopped)
	return err
}

// cappedConn is a stream that must send its first bytes within
// FirstByteWithin, reads at most left more bytes, and frees what it holds
// (its address's count, its slot) when closed.
type cappedConn struct {
	net.Conn
	left     int64
	slot     bool      // it holds a slot of cappedTransport.slots
	deadline time.Time // the read deadline memberlist set
	started  bool      // a first read returned data
	once     sync.Once
	release  func()
}

func (c *cappedConn) SetDeadline(t time.Time) error {
	c.deadline = t
	return c.Conn.SetDeadline(t)
}

func (c *cappedConn) SetReadDeadline(t time.Time) error {
	c.deadline = t
	return c.Conn.SetReadDeadline(t)
}

func (c *cappedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errStreamTooLong
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	if !c.started {
		first := time.Now().Add(FirstByteWithin)
		if c.deadline.IsZero() || first.Before(c.deadline) {
			c.Conn.SetReadDeadline(first)
		}
	}
	n, err := c.Conn.Read(p)
	if n > 0 && !c.started {
		c.started = true
		c.Conn.SetReadDeadline(c.deadline)
	}
	c.left -= int64(n)
	return n, err
}

func (c *cappedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
