package agent

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/discover"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
)

// Re-joining seeds.
//
// memberlist gossips only with the nodes it knows, and forgets a dead node
// GossipToTheDeadTime (30 s) after declaring it dead. Two groups of nodes
// that formed apart, such as both sides of a network partitioned during the
// bootstrap with seeds on each side, would therefore never merge once the
// network heals; nor would two sides of a partition that lasted longer than
// that. So once this node is in a pool it keeps re-joining the configured
// seeds that are not alive members of it. A join is a push/pull sync: the
// two pools learn each other's members, and a node without a committed plan
// receives the other side's and adopts it (a node never adopts a second plan
// of the epoch it holds, see adopt).
//
// The loop costs a look at the member list every Timings.RejoinMin while
// every seed is alive. While a seed stays missing it backs off to
// Timings.RejoinMax, with
// jitter so that the nodes of a large cluster do not all knock at once; an
// unreachable seed is never an error, only a debug line.

// rejoiner keeps re-joining the seeds that are not alive members.
type rejoiner struct {
	seeds         func() []string                   // the configured seeds, without this node
	members       func() []gossip.Member            // the pool as this node sees it
	join          func(seeds []string) (int, error) // gossip.Node.Join
	lookup        func(ctx context.Context, host string) ([]string, error)
	lookupTimeout time.Duration // bounds one lookup
	log           *slog.Logger
	min, max      time.Duration
	jitter        func(time.Duration) time.Duration

	warned map[string]bool // refusals logged at warn level since the last success
}

// newRejoiner returns the agent's re-join loop.
func (a *Agent) newRejoiner() *rejoiner {
	return &rejoiner{
		seeds:         a.seeds,
		members:       a.tr.Members,
		join:          a.node.Join,
		lookup:        net.DefaultResolver.LookupHost,
		lookupTimeout: a.tm.SeedLookup,
		log:           a.log,
		min:           a.tm.RejoinMin,
		max:           a.tm.RejoinMax,
		jitter:        jitter,
	}
}

// run re-joins missing seeds until ctx ends.
func (r *rejoiner) run(ctx context.Context) {
	delay := r.min
	t := time.NewTimer(r.jitter(delay))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		delay = r.attempt(ctx, delay)
		t.Reset(r.jitter(delay))
	}
}

// attempt joins the seeds that are not alive members, if any, and returns
// the delay before the next attempt: r.min when no seed is missing or
// one was reached, else twice the last delay, up to r.max.
func (r *rejoiner) attempt(ctx context.Context, delay time.Duration) time.Duration {
	missing := missingSeeds(ctx, r.seeds(), r.members(), r.lookup, r.lookupTimeout)
	if len(missing) == 0 {
		r.warned = nil
		return r.min
	}
	r.log.Debug("re-joining seeds that are not alive members", "seeds", strings.Join(missing, ","))
	// A seed that drops packets holds a join for memberlist's TCP timeout
	// (10 s): stopping the agent does not wait for it. Such a join fails
	// and changes nothing; one that succeeds does so at once.
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := r.join(missing)
		done <- result{n, err}
	}()
	var n int
	var err error
	select {
	case res := <-done:
		n, err = res.n, res.err
	case <-ctx.Done():
		return delay
	}
	if n > 0 {
		r.log.Info("re-joined seeds that were not alive members", "seeds", strings.Join(missing, ","), "reached", n)
		if err != nil {
			r.log.Debug("some seeds could not be re-joined", "error", err)
		}
		r.warned = nil
		return r.min
	}
	r.logFailure(err)
	return min(2*delay, r.max)
}

// logFailure logs why no seed could be re-joined: unreachable seeds at debug
// level, seeds that refused this node (another cluster's token at that
// address now, a second node of this name) at warn level, once each.
func (r *rejoiner) logFailure(err error) {
	for _, e := range gossip.JoinErrors(err) {
		var je *gossip.JoinError
		if errors.As(e, &je) && je.Kind != gossip.JoinUnreachable {
			if msg := je.Error(); !r.warned[msg] {
				if r.warned == nil {
					r.warned = map[string]bool{}
				}
				r.warned[msg] = true
				r.log.Warn("a seed refused this node; retrying", "error", je)
			}
			continue
		}
		r.log.Debug("seed not re-joined; retrying", "error", e)
	}
}

// jitter returns d scaled by a random factor from 0.75 to 1.25.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
}

// missingSeeds returns the seeds that no alive member answers for. A seed
// "ip" (or "[ipv6]") matches an alive member at that address, on any port;
// "ip:port" needs the port too; a host name matches when one of the
// addresses it resolves to does. A host name that does not resolve within
// timeout counts as missing: the join then says why.
func missingSeeds(ctx context.Context, seeds []string, members []gossip.Member,
	lookup func(ctx context.Context, host string) ([]string, error), timeout time.Duration) []string {
	alive := map[string][]int{} // canonical address -> ports
	for _, m := range members {
		if m.State != gossip.StateAlive {
			continue
		}
		if ip := net.ParseIP(m.Address); ip != nil {
			alive[ip.String()] = append(alive[ip.String()], m.Port)
		}
	}
	isAlive := func(addr string, port int) bool {
		ip := net.ParseIP(addr)
		if ip == nil {
			return false
		}
		for _, p := range alive[ip.String()] {
			if port == 0 || p == port {
				return true
			}
		}
		return false
	}
	var out []string
	for _, seed := range seeds {
		s, err := discover.Parse(seed)
		if err != nil {
			out = append(out, seed) // the join says what is wrong with it
			continue
		}
		host, port := s.Host, s.Port
		found := false
		if net.ParseIP(host) != nil {
			found = isAlive(host, port)
		} else if host != "" {
			lctx, cancel := context.WithTimeout(ctx, timeout)
			addrs, err := lookup(lctx, host)
			cancel()
			for _, addr := range addrs {
				if err == nil && isAlive(addr, port) {
					found = true
					break
				}
			}
		}
		if !found {
			out = append(out, seed)
		}
	}
	return out
}
