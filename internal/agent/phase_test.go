package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// moveGuard is a slog handler that passes every record on to next and keeps
// the phase moves the agent tried and the transition table refused.
type moveGuard struct {
	next  slog.Handler
	mu    *sync.Mutex
	moves *[]string
}

func (g *moveGuard) init() {
	if g.mu == nil {
		g.mu, g.moves = &sync.Mutex{}, new([]string)
	}
}

func (g *moveGuard) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || g.next.Enabled(ctx, l)
}

func (g *moveGuard) WithAttrs(as []slog.Attr) slog.Handler {
	g.init()
	return &moveGuard{next: g.next.WithAttrs(as), mu: g.mu, moves: g.moves}
}

func (g *moveGuard) WithGroup(name string) slog.Handler {
	g.init()
	return &moveGuard{next: g.next.WithGroup(name), mu: g.mu, moves: g.moves}
}

func (g *moveGuard) Handle(ctx context.Context, r slog.Record) error {
	g.init()
	if strings.HasPrefix(r.Message, "phase move refused") {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
			return true
		})
		g.mu.Lock()
		*g.moves = append(*g.moves, b.String())
		g.mu.Unlock()
	}
	if !g.next.Enabled(ctx, r.Level) {
		return nil
	}
	return g.next.Handle(ctx, r)
}

// refusals returns the refused moves logged so far.
func (g *moveGuard) refusals() []string {
	g.init()
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), *g.moves...)
}

// forwardPath is the agent's phases from joining to running, in order.
var forwardPath = []status.Phase{
	status.PhaseJoining, status.PhaseElecting, status.PhaseCommitted, status.PhaseCertified,
	status.PhaseConfigured, status.PhaseStarting, status.PhaseRunning,
}

// agentAt returns an agent in phase from, reached one phase at a time, whose
// logs go to rec.
func agentAt(t *testing.T, from status.Phase, rec *logRecorder) *Agent {
	t.Helper()
	a := &Agent{log: slog.New(rec), tm: localTimings()}
	for _, p := range forwardPath {
		if p > from {
			break
		}
		if !a.move(p, "reached "+p.String()) {
			t.Fatalf("cannot reach %v", p)
		}
	}
	if a.st.Phase() != from {
		t.Fatalf("the agent is in %v, want %v", a.st.Phase(), from)
	}
	return a
}

// The agent's one writer of the phase applies exactly the moves the
// transition table allows, and logs and drops every other.
func TestMoveFollowsTheTable(t *testing.T) {
	tests := []struct {
		name     string
		from, to status.Phase
		moved    bool
	}{
		{name: "joined", from: status.PhaseJoining, to: status.PhaseElecting, moved: true},
		{name: "a plan learnt while joining", from: status.PhaseJoining, to: status.PhaseCommitted, moved: true},
		{name: "committed", from: status.PhaseElecting, to: status.PhaseCommitted, moved: true},
		{name: "a reason changes", from: status.PhaseConfigured, to: status.PhaseConfigured, moved: true},
		{name: "certified", from: status.PhaseCommitted, to: status.PhaseCertified, moved: true},
		{name: "Nomad healthy", from: status.PhaseStarting, to: status.PhaseRunning, moved: true},
		{name: "Nomad no longer healthy", from: status.PhaseRunning, to: status.PhaseStarting, moved: true},
		{name: "a new role, from running", from: status.PhaseRunning, to: status.PhaseCommitted, moved: true},
		{name: "a new role, from certified", from: status.PhaseCertified, to: status.PhaseCommitted, moved: true},
		{name: "no election after a commit", from: status.PhaseCommitted, to: status.PhaseElecting},
		{name: "no joining again", from: status.PhaseElecting, to: status.PhaseJoining},
		{name: "no certificates before a plan", from: status.PhaseElecting, to: status.PhaseCertified},
		{name: "no skipped configuration", from: status.PhaseCertified, to: status.PhaseStarting},
		{name: "no running before starting", from: status.PhaseConfigured, to: status.PhaseRunning},
		{name: "a committed node does not run Nomad", from: status.PhaseCommitted, to: status.PhaseRunning},
		{name: "starting does not go back to configured", from: status.PhaseStarting, to: status.PhaseConfigured},
		{name: "running does not go back to certified", from: status.PhaseRunning, to: status.PhaseCertified},
		{name: "degraded is no phase to move to", from: status.PhaseRunning, to: status.PhaseDegraded},
		{name: "stopped is no phase to move to", from: status.PhaseJoining, to: status.PhaseStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.from.CanMove(tt.to) != tt.moved {
				t.Fatalf("the table says %v.CanMove(%v) = %v", tt.from, tt.to, !tt.moved)
			}
			rec := &logRecorder{}
			a := agentAt(t, tt.from, rec)
			if got := a.move(tt.to, "the move"); got != tt.moved {
				t.Errorf("move(%v) from %v = %v, want %v", tt.to, tt.from, got, tt.moved)
			}
			phase, reason := a.st.View()
			wantPhase, wantReason := tt.to, "the move"
			if !tt.moved {
				wantPhase, wantReason = tt.from, "reached "+tt.from.String()
			}
			if phase != wantPhase || reason != wantReason {
				t.Errorf("after the move: %v %q, want %v %q", phase, reason, wantPhase, wantReason)
			}
			wantLogged := 0
			if !tt.moved {
				wantLogged = 1
			}
			if got := rec.count(slog.LevelWarn, "phase move refused"); got != wantLogged {
				t.Errorf("%d refused moves logged, want %d", got, wantLogged)
			}
		})
	}
}

// A degraded cause shows while its step fails, and clears when the step
// succeeds, leaving the node's phase and the other causes as they were.
func TestRetryDegraded(t *testing.T) {
	tests := []struct {
		name     string
		failures []error // what f returns before it succeeds
		other    bool    // another cause is set throughout
		cancel   bool    // ctx ends while f fails
	}{
		{name: "succeeds at once"},
		{name: "fails, then succeeds", failures: []error{errors.New("disk full")}},
		{name: "fails the same way twice", failures: []error{errors.New("disk full"), errors.New("disk full")}},
		{name: "fails differently", failures: []error{errors.New("disk full"), errors.New("read-only")}},
		{name: "another cause stays", failures: []error{errors.New("disk full")}, other: true},
		{name: "gives up when the pipeline stops", failures: []error{errors.New("disk full")}, cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &logRecorder{}
			a := agentAt(t, status.PhaseCertified, rec)
			if tt.other {
				a.degrade(causeProtocol, "cannot persist the committed plan")
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			calls := 0
			ok := a.retryDegraded(ctx, causeWriteConfig, func() error {
				if calls > 0 {
					// The previous try's failure shows.
					if phase, reason := a.st.View(); phase != status.PhaseDegraded || (!tt.other && reason != tt.failures[calls-1].Error()) {
						t.Errorf("try %d: status %v %q, want degraded by %q", calls, phase, reason, tt.failures[calls-1])
					}
				}
				calls++
				if calls <= len(tt.failures) {
					if tt.cancel {
						cancel()
					}
					return tt.failures[calls-1]
				}
				return nil
			})
			if ok == tt.cancel {
				t.Errorf("retryDegraded = %v, want %v", ok, !tt.cancel)
			}
			phase, reason := a.st.View()
			switch {
			case tt.cancel:
				if phase != status.PhaseDegraded || reason != tt.failures[0].Error() {
					t.Errorf("after giving up: %v %q; want still degraded", phase, reason)
				}
			case tt.other:
				if phase != status.PhaseDegraded || reason != "cannot persist the committed plan" {
					t.Errorf("after success: %v %q; want degraded by the other cause", phase, reason)
				}
			default:
				if phase != status.PhaseCertified || reason != "reached certified" {
					t.Errorf("after success: %v %q; want certified again", phase, reason)
				}
			}
			distinct := map[string]bool{}
			for _, err := range tt.failures {
				distinct[err.Error()] = true
			}
			if tt.cancel {
				distinct = map[string]bool{tt.failures[0].Error(): true}
			}
			if got := rec.count(slog.LevelError, "degraded") - btoi(tt.other); got != len(distinct) {
				t.Errorf("%d degraded causes logged, want %d: one per new reason", got, len(distinct))
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// What the agreement protocol reports as degraded clears with the next
// commit, and only that cause.
func TestProtocolDegradedClearsOnCommit(t *testing.T) {
	a := agentAt(t, status.PhaseElecting, &logRecorder{})
	obs := protoObserver{a}
	obs.Degraded("cannot create the cluster CA: no entropy")
	obs.Degraded("cannot persist the committed plan: disk full")
	if s := a.Status(); s.Phase != status.PhaseDegraded || s.Reason != "cannot persist the committed plan: disk full" {
		t.Fatalf("status %v %q; want degraded by the last report", s.Phase, s.Reason)
	}
	a.degrade(causeWriteConfig, "writing Nomad's configuration: read-only")
	obs.Committed(plan.Plan{Epoch: 1}, nil, "n01")
	if s := a.Status(); s.Phase != status.PhaseDegraded || s.Reason != "writing Nomad's configuration: read-only" {
		t.Errorf("after the commit: status %v %q; want degraded by the pipeline's cause only", s.Phase, s.Reason)
	}
	a.recover(causeWriteConfig)
	if s := a.Status(); s.Phase != status.PhaseCommitted || s.Reason != "" {
		t.Errorf("status %v %q; want committed", s.Phase, s.Reason)
	}
}

// A node degraded because it cannot write what it must shows its phase
// again once the cause is gone, without a restart.
func TestDegradedClearsWhenItsCauseDoes(t *testing.T) {
	c := newCluster(t)
	c.startN(3, nil)
	c.waitCommitted(c.nodes, 30*time.Second)
	tests := []struct {
		name    string
		reason  string                // what status shows while degraded
		blocked func(a *Agent) string // the path made a directory
	}{
		// Plan files cannot be renamed over a directory; the node adopts
		// the plan at a later push/pull sync.
		{name: "the plan cannot be persisted", reason: "cannot persist the committed plan",
			blocked: func(a *Agent) string { return a.paths.PlanFile() }},
		{name: "Nomad's configuration cannot be written", reason: "writing Nomad's configuration",
			blocked: func(a *Agent) string { return filepath.Join(a.paths.NomadConfigDir(), nomadconf.ClientFile) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var blocked string
			n := c.startThen(c.options(3+i), func(a *Agent) {
				blocked = tt.blocked(a)
				if err := os.MkdirAll(blocked, 0o755); err != nil {
					t.Fatal(err)
				}
			})
			defer func() {
				if t.Failed() {
					s := n.agent.Status()
					t.Logf("%s: %s %q", s.Node.Name, s.Phase, s.Reason)
				}
			}()
			waitFor(t, 30*time.Second, "the node to be degraded", func() bool {
				s := n.agent.Status()
				return s.Phase == status.PhaseDegraded && strings.Contains(s.Reason, tt.reason)
			})
			if err := os.Remove(blocked); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 60*time.Second, "the node to write Nomad's configuration", func() bool {
				return n.agent.Status().Phase == status.PhaseConfigured
			})
			if s := n.agent.Status(); s.Reason != "Nomad's configuration is written; supervise=none starts nothing" {
				t.Errorf("reason %q; want the reason of the configured phase", s.Reason)
			}
		})
	}
}
