package discover

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/mdns"
)

// MDNSService is the DNS-SD service agents announce on their network
// segment with multicast DNS.
const MDNSService = "_nomad-bootstrapd._udp"

// mdnsTagLabel keys the tag a cluster's agents announce.
const mdnsTagLabel = "nomad-bootstrapd mdns tag v1"

// mdnsTagField starts the TXT field that carries the tag.
const mdnsTagField = "nbd="

// MaxMDNSEntries bounds the agents one browse keeps.
const MaxMDNSEntries = 64

// MDNSTag returns the tag that the agents of one cluster announce and look
// for, made from gossipKey (the cluster's agents' gossip key of generation
// 0, which every token of the cluster gives): it tells the cluster's
// agents apart from others on the segment, and gives neither the key nor
// the cluster's ID.
func MDNSTag(gossipKey []byte) string {
	m := hmac.New(sha256.New, gossipKey)
	m.Write([]byte(mdnsTagLabel))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// Announcer answers multicast DNS queries for this agent's gossip address
// on one interface.
type Announcer struct{ srv *mdns.Server }

// Announce answers, on iface, the queries for MDNSService with this
// agent's address and gossip port and the cluster's tag. instance names
// the agent uniquely on the segment (its node ID).
func Announce(instance string, ip net.IP, port int, tag string, iface *net.Interface) (*Announcer, error) {
	zone, err := mdns.NewMDNSService(instance, MDNSService, "local.", instance+".local.", port, []net.IP{ip}, []string{mdnsTagField + tag})
	if err != nil {
		return nil, fmt.Errorf("discover: mDNS: %w", err)
	}
	srv, err := mdns.NewServer(&mdns.Config{Zone: zone, Iface: iface, Logger: quietLogger()})
	if err != nil {
		return nil, fmt.Errorf("discover: mDNS on %s: %w", iface.Name, err)
	}
	return &Announcer{srv: srv}, nil
}

// Close stops answering.
func (a *Announcer) Close() error { return a.srv.Shutdown() }

// quietLogger drops the mdns package's own logs: the agent logs what a
// browse found or why it failed.
func quietLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// mdnsMu serialises browses: each binds the multicast DNS port.
var mdnsMu sync.Mutex

// Browse asks the segment of iface, for timeout, which agents announce the
// cluster's tag, and returns their gossip addresses as host:port, at most
// MaxMDNSEntries.
func Browse(ctx context.Context, tag string, iface *net.Interface, timeout time.Duration) ([]string, error) {
	mdnsMu.Lock()
	defer mdnsMu.Unlock()
	entries := make(chan *mdns.ServiceEntry, MaxMDNSEntries)
	params := &mdns.QueryParam{Service: MDNSService, Domain: "local", Timeout: timeout, Interface: iface,
		Entries: entries, Logger: quietLogger()}
	var out []string
	done := make(chan error, 1)
	go func() { done <- mdns.QueryContext(ctx, params); close(entries) }()
	for e := range entries {
		if len(out) < MaxMDNSEntries && slices.Contains(e.InfoFields, mdnsTagField+tag) {
			ip := e.AddrV4
			if ip == nil && e.AddrV6IPAddr != nil {
				ip = e.AddrV6IPAddr.IP
			}
			if ip != nil && e.Port > 0 {
				if hp := net.JoinHostPort(ip.String(), strconv.Itoa(e.Port)); !slices.Contains(out, hp) {
					out = append(out, hp)
				}
			}
		}
	}
	if err := <-done; err != nil {
		return nil, fmt.Errorf("mDNS query on %s: %w", iface.Name, err)
	}
	return out, nil
}
