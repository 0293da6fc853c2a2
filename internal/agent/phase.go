package agent

import (
	"context"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// The node's phase, its reason and its degraded causes live in a.st, under
// a.mu. moveLocked is the one writer of the phase and its reason,
// degradeLocked and recoverLocked the only writers of the degraded causes;
// the other methods here take a.mu and call them.

// Degraded causes. Each is set by a step that failed and needs the
// operator, and cleared by that same step when it next succeeds.
const (
	causeACL         = "acl"          // Nomad's ACLs were bootstrapped by someone else; cleared by an ACL setup of this agent's
	causeCA          = "ca"           // the CA holder cannot serve the CA; cleared once it serves it
	causeNomadRun    = "nomad-run"    // the supervisor could not run Nomad; cleared when Nomad is started again
	causeNomadStart  = "nomad-start"  // Nomad could not be started; cleared once it is
	causeProfile     = "profile"      // a server's shell profile could not be written; cleared once it is
	causeProtocol    = "protocol"     // internal/agree could not make or keep the CA, or persist a plan; cleared by the next commit
	causeRender      = "render"       // Nomad's configuration could not be rendered; cleared once it is
	causeWriteConfig = "write-config" // Nomad's configuration could not be written; cleared once it is
)

// moveLocked moves the node to phase to with reason, when status.CanMove
// allows it, and reports whether it did. A move the table forbids is a bug
// of the agent: it is logged and changes nothing. a.mu is held.
func (a *Agent) moveLocked(to status.Phase, reason string) bool {
	from := a.st.Phase()
	if !a.st.Move(to, reason) {
		a.log.Warn("phase move refused: the transition table forbids it", "from", from, "to", to, "reason", reason)
		return false
	}
	switch {
	case to == from:
	case from == status.PhaseFingerprinting:
		// The agent is being built: not news.
		a.log.Debug("phase", "phase", to, "from", from)
	default:
		a.log.Info("phase", "phase", to, "from", from)
	}
	return true
}

// move is moveLocked with a.mu taken.
func (a *Agent) move(to status.Phase, reason string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.moveLocked(to, reason)
}

// advance moves the node forward to phase, with no reason; a node already
// there or past it stays where it is.
func (a *Agent) advance(phase status.Phase) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.Phase() < phase {
		a.moveLocked(phase, "")
	}
}

// setReason shows why the node waits in its phase.
func (a *Agent) setReason(r string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.moveLocked(a.st.Phase(), r)
}

// degradeLocked sets the degraded cause of key to reason, logging it when
// it is new or its reason changed. a.mu is held.
func (a *Agent) degradeLocked(key, reason string) {
	if a.st.SetDegraded(key, reason) {
		a.log.Error("degraded", "cause", key, "reason", reason)
	}
}

// degrade is degradeLocked with a.mu taken.
func (a *Agent) degrade(key, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.degradeLocked(key, reason)
}

// recoverLocked clears the degraded cause of key, once the step that set
// it has succeeded. a.mu is held.
func (a *Agent) recoverLocked(key string) {
	if a.st.ClearDegraded(key) {
		a.log.Info("recovered", "cause", key)
	}
}

// recover is recoverLocked with a.mu taken.
func (a *Agent) recover(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recoverLocked(key)
}

// retry runs f until it succeeds or ctx ends, showing failures as the
// reason; it reports whether f succeeded.
func (a *Agent) retry(ctx context.Context, what string, f func() error) bool {
	return a.retryBackoff(ctx, f, func(err error, backoff time.Duration) {
		a.setReason(what + ": " + err.Error() + "; retrying")
		a.log.Warn(what+"; retrying", "error", err, "after", backoff)
	})
}

// retryDegraded runs f until it succeeds or ctx ends: while f fails the
// node is degraded under key, with f's error as the reason, and the cause
// clears once f succeeds. It reports whether f succeeded.
func (a *Agent) retryDegraded(ctx context.Context, key string, f func() error) bool {
	ok := a.retryBackoff(ctx, f, func(err error, _ time.Duration) { a.degrade(key, err.Error()) })
	if ok {
		a.recover(key)
	}
	return ok
}

// retryBackoff runs f until it succeeds or ctx ends, calling failed with
// each error and the time until the next try; it reports whether f
// succeeded.
func (a *Agent) retryBackoff(ctx context.Context, f func() error, failed func(err error, backoff time.Duration)) bool {
	backoff := a.tm.StepRetryMin
	for {
		err := f()
		if err == nil {
			return true
		}
		failed(err, backoff)
		if ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, a.tm.StepRetryMax)
	}
}
