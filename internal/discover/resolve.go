package discover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one DNS lookup of Resolve when the Resolver sets
// none.
const DefaultTimeout = 5 * time.Second

// MaxTargets bounds the addresses one SRV seed gives: a name that answers
// with more still gives a cluster plenty to join.
const MaxTargets = 64

// Resolver looks up the SRV and mDNS seeds. The zero Resolver asks the
// system's resolver, and finds no one by mDNS.
type Resolver struct {
	// MDNS returns the gossip addresses of the agents that multicast DNS
	// finds on this machine's segment (Browse with the cluster's tag);
	// nil refuses the mDNS seed.
	MDNS func(ctx context.Context) ([]string, error)
	// LookupSRV returns the SRV records of name; nil asks the system's
	// resolver.
	LookupSRV func(ctx context.Context, name string) ([]*net.SRV, error)
	// LookupHost returns the addresses of host; nil asks the system's
	// resolver.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Timeout bounds each lookup; 0 is DefaultTimeout.
	Timeout time.Duration
}

// LookupError is the failure to look one SRV or mDNS seed up.
type LookupError struct {
	Seed string // the seed as given
	Err  error
}

func (e *LookupError) Error() string {
	return fmt.Sprintf("looking up %s: %v", strings.TrimSpace(e.Seed), e.Err)
}
func (e *LookupError) Unwrap() error { return e.Err }

// Resolve returns seeds as host:port, port being the default for the seeds
// that name none (DefaultPort when port is 0), in their order; each SRV
// seed is replaced by the addresses of its records' targets, each with its
// record's port, the records ordered by priority and then weight (the
// heaviest first), at most MaxTargets of them; the mDNS seed by the
// addresses MDNS finds. A seed that does not parse stays as it is, for the
// join to report. Each SRV or mDNS seed whose lookup fails adds a
// *LookupError.
func (r Resolver) Resolve(ctx context.Context, seeds []string, port int) ([]string, []error) {
	var out []string
	var errs []error
	for _, seed := range seeds {
		s, err := Parse(seed)
		switch {
		case err != nil:
			out = append(out, strings.TrimSpace(seed))
		case s.MDNS:
			addrs, err := r.mdns(ctx)
			if err != nil {
				errs = append(errs, &LookupError{Seed: seed, Err: err})
			}
			out = append(out, addrs...)
		case s.SRV == "":
			out = append(out, s.Addr(port))
		default:
			addrs, err := r.srv(ctx, s.SRV)
			if err != nil {
				errs = append(errs, &LookupError{Seed: seed, Err: err})
			}
			out = append(out, addrs...)
		}
	}
	return out, errs
}

// mdns returns the addresses that multicast DNS finds.
func (r Resolver) mdns(ctx context.Context) ([]string, error) {
	if r.MDNS == nil {
		return nil, errors.New("multicast DNS is not set up on this agent")
	}
	return r.MDNS(ctx)
}

// srv returns the addresses that the SRV records of name give.
func (r Resolver) srv(ctx context.Context, name string) ([]string, error) {
	lookupSRV, lookupHost := r.LookupSRV, r.LookupHost
	if lookupSRV == nil {
		lookupSRV = func(ctx context.Context, name string) ([]*net.SRV, error) {
			_, recs, err := net.DefaultResolver.LookupSRV(ctx, "", "", name)
			return recs, err
		}
	}
	if lookupHost == nil {
		lookupHost = net.DefaultResolver.LookupHost
	}
	timeout := cmp.Or(r.Timeout, DefaultTimeout)
	sctx, cancelSRV := context.WithTimeout(ctx, timeout)
	recs, err := lookupSRV(sctx, name)
	cancelSRV()
	if err != nil {
		return nil, err
	}
	recs = slices.DeleteFunc(slices.Clone(recs), func(rec *net.SRV) bool { return rec == nil || rec.Target == "." || rec.Port == 0 })
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s has no SRV record that names a host", name)
	}
	slices.SortStableFunc(recs, func(a, b *net.SRV) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(b.Weight, a.Weight))
	})
	// Every target gives at least one address, and the lookups of the
	// targets' names share one timeout: however many records a name
	// answers with, Resolve ends within two timeouts.
	recs = recs[:min(len(recs), MaxTargets)]
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out []string
	var failed []string
	seen := map[string]bool{}
	for _, rec := range recs {
		if len(out) >= MaxTargets {
			break
		}
		host := strings.TrimSuffix(rec.Target, ".")
		addrs := []string{host}
		if net.ParseIP(host) == nil {
			addrs, err = lookupHost(hctx, host)
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", host, err))
				continue
			}
		}
		for _, a := range addrs {
			hp := net.JoinHostPort(a, strconv.Itoa(int(rec.Port)))
			if !seen[hp] && len(out) < MaxTargets {
				seen[hp] = true
				out = append(out, hp)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no target of %s resolves (%s)", name, strings.Join(failed, "; "))
	}
	return out, nil
}
