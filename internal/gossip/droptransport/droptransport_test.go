package droptransport

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestPacketsDropWhenFull(t *testing.T) {
	var n Network
	a, err := n.NewTransport("127.10.0.1:4650")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.NewTransport("127.10.0.2:4650")
	if err != nil {
		t.Fatal(err)
	}
	for range PacketQueue + 10 {
		if _, err := a.WriteTo([]byte("x"), "127.10.0.2:4650"); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(b.PacketCh()); got != PacketQueue {
		t.Errorf("queued %d packets, want %d", got, PacketQueue)
	}
	if n.Dropped() != 10 {
		t.Errorf("dropped %d, want 10", n.Dropped())
	}
	p := <-b.PacketCh()
	if p.From.String() != "127.10.0.1:4650" || string(p.Buf) != "x" {
		t.Errorf("packet from %s %q", p.From, p.Buf)
	}
}

func TestDuplicateAddress(t *testing.T) {
	var n Network
	a, _ := n.NewTransport("127.10.0.1:4650")
	if _, err := n.NewTransport("127.10.0.1:4650"); err == nil {
		t.Fatal("a second transport on one address was accepted")
	}
	a.Shutdown()
	if _, err := n.NewTransport("127.10.0.1:4650"); err != nil {
		t.Fatalf("address not free after Shutdown: %v", err)
	}
}

func TestStreams(t *testing.T) {
	var n Network
	a, _ := n.NewTransport("127.10.0.1:4650")
	b, _ := n.NewTransport("127.10.0.2:4650")
	go func() {
		c := <-b.StreamCh()
		defer c.Close()
		buf := make([]byte, 5)
		io.ReadFull(c, buf)
		c.Write(buf)
	}()
	c, err := a.DialTimeout("127.10.0.2:4650", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	got, _ := io.ReadAll(c)
	if string(got) != "hello" || c.RemoteAddr().String() != "127.10.0.2:4650" {
		t.Errorf("echo %q from %s", got, c.RemoteAddr())
	}
	if _, err := a.DialTimeout("127.10.0.9:4650", time.Second); err == nil {
		t.Error("dial to an unknown address succeeded")
	}
	b.Shutdown()
	if _, err := a.DialTimeout("127.10.0.2:4650", time.Second); err == nil {
		t.Error("dial to a shut down transport succeeded")
	}
}

// TestMemberlist joins more nodes than MockNetwork survives.
func TestMemberlist(t *testing.T) {
	count := 120
	if raceDetector {
		count = 30 // the race detector's slowdown, not the transport, limits the size
	}
	var n Network
	var lists []*memberlist.Memberlist
	defer func() {
		for _, m := range lists {
			m.Shutdown()
		}
	}()
	for i := range count {
		tr, err := n.NewTransport(fmt.Sprintf("127.10.%d.%d:4650", i/250, i%250+1))
		if err != nil {
			t.Fatal(err)
		}
		c := memberlist.DefaultLANConfig()
		c.Name = fmt.Sprint("n", i)
		c.Transport = tr
		c.LogOutput = io.Discard
		m, err := memberlist.Create(c)
		if err != nil {
			t.Fatal(err)
		}
		lists = append(lists, m)
		if i > 0 {
			if _, err := m.Join([]string{"127.10.0.1:4650"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		done := 0
		for _, m := range lists {
			if m.NumMembers() == count {
				done++
			}
		}
		if done == count {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s only %d of %d nodes see everyone", done, count)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
