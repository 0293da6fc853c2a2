package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/discover"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/fingerprint"
)

// mdnsBrowse is how long one multicast DNS query listens for answers.
const mdnsBrowse = time.Second

// usesMDNS reports whether a seed is provider=mdns.
func (a *Agent) usesMDNS() bool {
	return slices.ContainsFunc(a.cfg.Join, func(s string) bool { p, err := discover.Parse(s); return err == nil && p.MDNS })
}

// startMDNS, when a seed is provider=mdns, announces this agent on the
// segment of the interface that holds its advertise address, with the
// cluster's tag, and finds the other agents there at each join. The gossip
// node must have started.
func (a *Agent) startMDNS() error {
	if !a.usesMDNS() {
		return nil
	}
	addr, err := netip.ParseAddr(a.advertise)
	if err != nil {
		return fmt.Errorf("agent: provider=mdns: the advertise address %q is not an IP address", a.advertise)
	}
	iface, ok := fingerprint.InterfaceOf(addr)
	switch {
	case !ok:
		return fmt.Errorf("agent: provider=mdns finds machines on the network segment of the advertise address, but no interface of this machine has %s as its address; name seeds instead", addr)
	case iface.Flags&net.FlagMulticast == 0:
		return fmt.Errorf("agent: provider=mdns needs multicast, which %s (the interface of %s) does not do; name seeds instead", iface.Name, addr)
	}
	tag := discover.MDNSTag(a.keys.Gossip)
	ann, err := discover.Announce(a.id, net.IP(addr.AsSlice()), a.node.Port(), tag, iface)
	if err != nil {
		return fmt.Errorf("agent: provider=mdns: %w", err)
	}
	a.mdns = ann
	if a.resolver.MDNS == nil {
		a.resolver.MDNS = func(ctx context.Context) ([]string, error) {
			return discover.Browse(ctx, tag, iface, mdnsBrowse)
		}
	}
	a.log.Info("announcing this agent by multicast DNS", "interface", iface.Name, "service", discover.MDNSService)
	return nil
}

// stopMDNS stops announcing this agent.
func (a *Agent) stopMDNS() {
	if a.mdns != nil {
		a.mdns.Close()
		a.mdns = nil
	}
}
