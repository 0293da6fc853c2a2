package gossip

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// labelled returns the start of a stream memberlist reads past its label
// check: the label header, then an encrypted message of the given length.
func labelled(length uint32) []byte {
	b := []byte{244, byte(len(testLabel))} // hasLabelMsg, label length
	b = append(b, testLabel...)
	b = append(b, 10) // encryptMsg
	return binary.BigEndian.AppendUint32(b, length)
}

// closedWithin reports whether the agent closes c within d: a read that
// ends (EOF or reset) rather than timing out.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// Streams from one address beyond MaxStreamsPerAddr are closed at once,
// one that sends nothing is closed after FirstByteWithin, one longer than
// MaxStreamBytes is cut, and a member joins while all of that goes on.
func TestStreamsAreCapped(t *testing.T) {
	a := startNode(t, "a", func(c *Config) { c.BindAddr = "127.0.0.3" })
	addr := "127.0.0.3:" + strconv.Itoa(a.Port())
	// The strangers come from 127.0.0.4; the member from the default
	// source address.
	stranger := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}
	var held []net.Conn
	for range MaxStreamsPerAddr {
		c, err := stranger.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	time.Sleep(100 * time.Millisecond)
	extra, err := stranger.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if !closedWithin(extra, time.Second) {
		t.Error("a stream beyond the per-address cap was kept open")
	}

	// A member on another address joins meanwhile.
	b := startNode(t, "b", func(c *Config) { c.BindAddr = "127.0.0.2" })
	if n, err := b.Join([]string{addr}); n != 1 {
		t.Fatalf("a member could not join while strangers hold streams: %v", err)
	}

	began := time.Now()
	if !closedWithin(held[0], FirstByteWithin+2*time.Second) {
		t.Error("a stream that sent nothing was kept open")
	}
	if took := time.Since(began); took > FirstByteWithin+time.Second {
		t.Errorf("an idle stream was closed after %s, want about %s", took, FirstByteWithin)
	}

	long, err := stranger.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	if _, err := long.Write(labelled(20 << 20)); err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 64<<10)
	sent := 0
	long.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for sent < 8<<20 {
		n, err := long.Write(junk)
		sent += n
		if err != nil {
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Fatalf("writing the long stream: %v", err)
			}
			break
		}
	}
	if sent >= 8<<20 {
		t.Errorf("the agent read %d bytes of one stream, more than %d", sent, MaxStreamBytes)
	}
}
