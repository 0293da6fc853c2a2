package gossip

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/discover"
)

// probeTimeout bounds the TCP dial that tells an unreachable seed from one
// that refused us.
const probeTimeout = 2 * time.Second

// JoinErrorKind classifies a failed join.
type JoinErrorKind int

// Kinds of join errors.
const (
	JoinUnreachable  JoinErrorKind = iota // no TCP connection to the seed, or no answer on it
	JoinRejected                          // connected, but the handshake failed: another token or not an agent
	JoinNameConflict                      // the cluster already has a node of this name
)

// String returns the kind's name.
func (k JoinErrorKind) String() string {
	switch k {
	case JoinUnreachable:
		return "unreachable"
	case JoinRejected:
		return "rejected"
	case JoinNameConflict:
		return "name conflict"
	}
	return "JoinErrorKind(" + strconv.Itoa(int(k)) + ")"
}

// JoinError is one seed's failure.
type JoinError struct {
	Seed string // host:port as contacted
	Kind JoinErrorKind
	Err  error // the cause: the dial error, memberlist's error or the conflict
}

// Error says what went wrong with the seed, in words for an operator. It
// never contains key material.
func (e *JoinError) Error() string {
	switch e.Kind {
	case JoinUnreachable:
		return fmt.Sprintf("gossip: cannot reach seed %s: %s", e.Seed, describeDialError(e.Err))
	case JoinRejected:
		return fmt.Sprintf("gossip: seed %s rejected us: the join token does not match that node's cluster, or it is not a nomad-bootstrapd agent", e.Seed)
	case JoinNameConflict:
		var c *conflictError
		if errors.As(e.Err, &c) {
			return fmt.Sprintf("gossip: the cluster already has a node named %q at %s (seen through seed %s); give this node a unique name", c.name, c.addr, e.Seed)
		}
		return fmt.Sprintf("gossip: the cluster of seed %s already has a node of this name; give this node a unique name", e.Seed)
	}
	return fmt.Sprintf("gossip: joining seed %s failed: %v", e.Seed, e.Err)
}

// Unwrap returns the cause.
func (e *JoinError) Unwrap() error { return e.Err }

// describeDialError shortens a dial error to its cause, e.g.
// "connection refused" or "lookup x: no such host".
func describeDialError(err error) string {
	if err == nil {
		return "unknown error"
	}
	var sys *os.SyscallError
	if errors.As(err, &sys) {
		return sys.Err.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// conflictError is a name conflict found by NotifyMerge.
type conflictError struct {
	name string // our name
	addr string // host:port of the other node with it
}

func (c *conflictError) Error() string {
	return fmt.Sprintf("gossip: the cluster already has a node named %q at %s; give this node a unique name", c.name, c.addr)
}

// Join contacts the given seeds one at a time and returns how many were
// reached. A seed is what discover.Parse reads, but no SRV name; the port
// defaults to DefaultPort and memberlist resolves host names.
// Errors are *JoinError values joined with errors.Join, one per failed seed;
// the error is nil when every seed was reached.
func (n *Node) Join(seeds []string) (int, error) {
	if n.closed.Load() {
		return 0, ErrShutdown
	}
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	ml := n.ml.Load()
	reached := 0
	var errs []error
	for _, seed := range seeds {
		parsed, err := discover.Parse(seed)
		if err == nil && parsed.SRV != "" {
			err = fmt.Errorf("%q is a DNS SRV name: look it up first (discover.Resolver)", seed)
		}
		if err != nil {
			errs = append(errs, &JoinError{Seed: seed, Kind: JoinUnreachable, Err: err})
			continue
		}
		addr := parsed.Addr(DefaultPort)
		n.recordConflicts(true)
		_, err = ml.Join([]string{addr})
		found := n.recordConflicts(false)
		if err == nil {
			reached++
			continue
		}
		errs = append(errs, classifyJoin(addr, err, found))
	}
	return reached, errors.Join(errs...)
}

// classifyJoin turns memberlist's error for one seed into a *JoinError.
func classifyJoin(addr string, err error, conflicts []*conflictError) *JoinError {
	// memberlist formats the merge delegate's error into its own with %v.
	for _, c := range conflicts {
		if strings.Contains(err.Error(), c.Error()) {
			return &JoinError{Seed: addr, Kind: JoinNameConflict, Err: c}
		}
	}
	err = unwrapMulti(err)
	if cause, ok := dialFailure(err); ok {
		// memberlist could not connect: the seed is down or not started
		// yet, even if it listens by the time we could probe it.
		return &JoinError{Seed: addr, Kind: JoinUnreachable, Err: cause}
	}
	if isTimeout(err) {
		// Connected, but no answer within TCPTimeout: a hung or overloaded
		// seed, or a service that waits for its client to speak first.
		// Worth retrying, unlike a rejection.
		return &JoinError{Seed: addr, Kind: JoinUnreachable, Err: &noAnswerError{err}}
	}
	conn, dialErr := net.DialTimeout("tcp", addr, probeTimeout)
	if dialErr != nil {
		return &JoinError{Seed: addr, Kind: JoinUnreachable, Err: dialErr}
	}
	_ = conn.Close()
	return &JoinError{Seed: addr, Kind: JoinRejected, Err: err}
}

// unwrapMulti returns the only error inside memberlist's multierror.
func unwrapMulti(err error) error {
	if m, ok := err.(interface{ WrappedErrors() []error }); ok && len(m.WrappedErrors()) == 1 {
		return m.WrappedErrors()[0]
	}
	return err
}

// dialFailure reports whether memberlist's error is a failure to resolve or
// connect to the seed, before any exchange with it, and returns its cause
// ("connection refused", "no such host"). memberlist formats the dial
// error with %v, so only the text is left.
func dialFailure(err error) (error, bool) {
	msg := err.Error()
	if !strings.HasPrefix(msg, "failed to resolve ") && !strings.Contains(msg, ": dial ") {
		return nil, false
	}
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return errors.New(msg), true
}

// isTimeout reports whether memberlist's error is a stream timeout. It
// formats the cause with %v, so only the text is left.
func isTimeout(err error) bool {
	return strings.HasSuffix(err.Error(), "i/o timeout")
}

// noAnswerError is a seed that accepted the connection but did not answer.
type noAnswerError struct{ err error }

func (e *noAnswerError) Error() string { return "it accepted the connection but did not answer" }
func (e *noAnswerError) Unwrap() error { return e.err }

// recordConflicts starts (on) or stops recording the conflicts NotifyMerge
// finds; stopping returns them.
func (n *Node) recordConflicts(on bool) []*conflictError {
	n.conflictMu.Lock()
	defer n.conflictMu.Unlock()
	found := n.conflicts
	n.recording, n.conflicts = on, nil
	return found
}

// checkMerge is NotifyMerge: on a join, either side refuses the other's
// member list when it holds a live node with this node's name at another
// address. A node of that name at the same address is this node restarted
// (two processes cannot bind one port); a left one is replaced at once; a
// dead one is replaced by memberlist's rules, which our Join only warns of.
func (n *Node) checkMerge(peers []*memberlist.Node) error {
	ml := n.ml.Load()
	if ml == nil {
		return nil // still starting; memberlist refutes claims on our name itself
	}
	n.conflictMu.Lock()
	joining := n.recording
	n.conflictMu.Unlock()
	self := ml.LocalNode()
	for _, p := range peers {
		if p.Name != n.name || p.Addr.Equal(self.Addr) && p.Port == self.Port || p.State == memberlist.StateLeft {
			continue
		}
		if p.State == memberlist.StateDead {
			if joining {
				n.log.Warn("gossip: the cluster remembers this node as failed at its old address; the others accept the new one once they forget the old (about 30 s after the failure) or after DeadNodeReclaimTime",
					"node", n.name, "old", p.Address(), "new", self.Address())
			}
			continue
		}
		c := &conflictError{name: n.name, addr: p.Address()}
		if !joining {
			// Another node is joining us with our name; memberlist logs
			// this error.
			return fmt.Errorf("gossip: refused a join from a second node named %q at %s; give each node a unique name", n.name, c.addr)
		}
		n.conflictMu.Lock()
		n.conflicts = append(n.conflicts, c)
		n.conflictMu.Unlock()
		return c
	}
	return nil
}

// JoinErrors returns the failures of single seeds in an error that Join
// returned, in the order of the seeds: each is a *JoinError. Any other
// error is returned alone, and nil gives none.
func JoinErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
