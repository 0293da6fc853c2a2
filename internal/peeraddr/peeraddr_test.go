package peeraddr

import (
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want netip.Addr
	}{
		{"127.0.0.1:4651", netip.MustParseAddr("127.0.0.1")},
		{"[::1]:4651", netip.MustParseAddr("::1")},
		{"[::ffff:10.0.0.5]:80", netip.MustParseAddr("10.0.0.5")},
		{"[fe80::1%eth0]:80", netip.MustParseAddr("fe80::1%eth0")},
		{"10.0.0.5", netip.Addr{}},
		{"host:80", netip.Addr{}},
		{"", netip.Addr{}},
		{"@", netip.Addr{}}, // a Unix socket's address
	} {
		if got := Of(tt.in); got != tt.want {
			t.Errorf("Of(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCounter(t *testing.T) {
	var c Counter
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for i := range 2 {
		if !c.Take(a, 2) {
			t.Fatalf("Take %d of a refused under the limit", i+1)
		}
	}
	if c.Take(a, 2) {
		t.Error("Take beyond the limit succeeded")
	}
	if !c.Take(b, 2) {
		t.Error("another address was refused")
	}
	c.Give(a)
	if got := c.Open(a); got != 1 {
		t.Errorf("Open(a) = %d after a Give, want 1", got)
	}
	if !c.Take(a, 2) {
		t.Error("Take after a Give refused")
	}
	c.Give(a)
	c.Give(a)
	c.Give(b)
	if len(c.open) != 0 {
		t.Errorf("addresses with nothing open are still counted: %v", c.open)
	}
	if c.Take(a, 0) {
		t.Error("Take with limit 0 succeeded")
	}
}
