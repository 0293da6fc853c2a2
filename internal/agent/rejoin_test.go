package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
)

func TestMissingSeeds(t *testing.T) {
	members := []gossip.Member{
		{Name: "a", Address: "10.0.0.1", Port: 4650, State: gossip.StateAlive},
		{Name: "b", Address: "10.0.0.2", Port: 4650, State: gossip.StateDead},
		{Name: "c", Address: "10.0.0.3", Port: 5000, State: gossip.StateAlive},
		{Name: "d", Address: "10.0.0.4", Port: 4650, State: gossip.StateLeft},
		{Name: "e", Address: "2001:db8::1", Port: 4650, State: gossip.StateAlive},
	}
	hosts := map[string][]string{
		"alive.example": {"10.0.0.9", "10.0.0.1"},
		"dead.example":  {"10.0.0.2"},
	}
	lookupTimeout := DefaultTimings().SeedLookup
	lookup := func(ctx context.Context, host string) ([]string, error) {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > lookupTimeout {
			t.Errorf("lookup of %s without a deadline of at most %s", host, lookupTimeout)
		}
		if addrs, ok := hosts[host]; ok {
			return addrs, nil
		}
		return nil, errors.New("no such host")
	}
	tests := []struct {
		name  string
		seeds []string
		want  []string
	}{
		{"no seeds", nil, nil},
		{"alive member by address", []string{"10.0.0.1"}, nil},
		{"alive member by address and port", []string{"10.0.0.1:4650"}, nil},
		{"address without port matches any port", []string{"10.0.0.3"}, nil},
		{"another port", []string{"10.0.0.1:4651"}, []string{"10.0.0.1:4651"}},
		{"dead member", []string{"10.0.0.2"}, []string{"10.0.0.2"}},
		{"left member", []string{"10.0.0.4"}, []string{"10.0.0.4"}},
		{"never seen", []string{"10.0.0.5"}, []string{"10.0.0.5"}},
		{"IPv6", []string{"2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:4650", "[2001:db8::2]:4650"}, []string{"[2001:db8::2]:4650"}},
		{"IPv4-mapped IPv6", []string{"::ffff:10.0.0.1"}, nil},
		{"host name of an alive member", []string{"alive.example", "alive.example:4650"}, nil},
		{"host name of a dead member", []string{"dead.example"}, []string{"dead.example"}},
		{"host name on another port", []string{"alive.example:4651"}, []string{"alive.example:4651"}},
		{"host name that does not resolve", []string{"nowhere.example"}, []string{"nowhere.example"}},
		{"malformed seed, for the join to report", []string{"10.0.0.1:http"}, []string{"10.0.0.1:http"}},
		{"order kept", []string{"10.0.0.5", "10.0.0.1", "10.0.0.2"}, []string{"10.0.0.5", "10.0.0.2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := missingSeeds(context.Background(), tt.seeds, members, lookup, lookupTimeout)
			if !slices.Equal(got, tt.want) {
				t.Errorf("missingSeeds(%q) = %q, want %q", tt.seeds, got, tt.want)
			}
		})
	}
}

// logRecorder is a slog handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}

// count returns how many records at level contain msg.
func (l *logRecorder) count(level slog.Level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Level == level && strings.Contains(r.Message, msg) {
			n++
		}
	}
	return n
}

func unreachable(seed string) error {
	return &gossip.JoinError{Seed: seed, Kind: gossip.JoinUnreachable, Err: errors.New("no route to host")}
}

func TestRejoinAttempt(t *testing.T) {
	const lo, hi = 5 * time.Second, 30 * time.Second
	alive := []gossip.Member{{Name: "a", Address: "10.0.0.1", Port: 4650, State: gossip.StateAlive}}
	tests := []struct {
		name      string
		seeds     []string
		delay     time.Duration // before the attempt
		reached   int
		err       error
		wantJoin  []string // nil: no join
		wantDelay time.Duration
		wantWarn  int
	}{
		{"every seed alive", []string{"10.0.0.1"}, 20 * time.Second, 0, nil, nil, lo, 0},
		{"missing seed reached", []string{"10.0.0.1", "10.0.0.2"}, 20 * time.Second, 1, nil, []string{"10.0.0.2"}, lo, 0},
		{"one of two reached", []string{"10.0.0.2", "10.0.0.3"}, 20 * time.Second, 1, unreachable("10.0.0.3:4650"), []string{"10.0.0.2", "10.0.0.3"}, lo, 0},
		{"unreachable backs off", []string{"10.0.0.2"}, lo, 0, unreachable("10.0.0.2:4650"), []string{"10.0.0.2"}, 2 * lo, 0},
		{"backoff is bounded", []string{"10.0.0.2"}, 20 * time.Second, 0, unreachable("10.0.0.2:4650"), []string{"10.0.0.2"}, hi, 0},
		{"refusal is a warning", []string{"10.0.0.2"}, lo, 0,
			errors.Join(&gossip.JoinError{Seed: "10.0.0.2:4650", Kind: gossip.JoinRejected, Err: errors.New("bad key")}),
			[]string{"10.0.0.2"}, 2 * lo, 1},
		{"name conflict is a warning", []string{"10.0.0.2"}, lo, 0,
			&gossip.JoinError{Seed: "10.0.0.2:4650", Kind: gossip.JoinNameConflict, Err: errors.New("conflict")},
			[]string{"10.0.0.2"}, 2 * lo, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &logRecorder{}
			var joined []string
			r := &rejoiner{
				seeds:   func() []string { return tt.seeds },
				members: func() []gossip.Member { return alive },
				join: func(s []string) (int, error) {
					joined = append(joined, s...)
					return tt.reached, tt.err
				},
				lookup: func(context.Context, string) ([]string, error) { return nil, errors.New("no lookups expected") },
				log:    slog.New(rec),
				min:    lo, max: hi,
			}
			// Twice: a refusal is a warning the first time only.
			for range 2 {
				joined = nil
				if got := r.attempt(context.Background(), tt.delay); got != tt.wantDelay {
					t.Errorf("delay after the attempt %s, want %s", got, tt.wantDelay)
				}
				if !slices.Equal(joined, tt.wantJoin) {
					t.Errorf("joined %q, want %q", joined, tt.wantJoin)
				}
			}
			if got := rec.count(slog.LevelWarn, ""); got != tt.wantWarn {
				t.Errorf("%d warnings, want %d", got, tt.wantWarn)
			}
			if got := rec.count(slog.LevelError, ""); got != 0 {
				t.Errorf("%d errors logged, want none", got)
			}
		})
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if d := jitter(time.Second); d < 750*time.Millisecond || d > 1250*time.Millisecond {
			t.Fatalf("jitter(1s) = %s, want 0.75s to 1.25s", d)
		}
	}
}

// The loop retries a missing seed with backoff until it is reached, then
// only looks at the member list, and stops with its context.
func TestRejoinLoop(t *testing.T) {
	var mu sync.Mutex
	var attempts []time.Time
	members := []gossip.Member{{Name: "self", Address: "10.0.0.9", Port: 4650, State: gossip.StateAlive}}
	r := &rejoiner{
		seeds: func() []string { return []string{"10.0.0.1"} },
		members: func() []gossip.Member {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(members)
		},
		join: func(s []string) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, time.Now())
			if len(attempts) < 3 {
				return 0, unreachable("10.0.0.1:4650")
			}
			members = append(members, gossip.Member{Name: "a", Address: "10.0.0.1", Port: 4650, State: gossip.StateAlive})
			return 1, nil
		},
		log:    slog.New(slog.DiscardHandler),
		min:    20 * time.Millisecond,
		max:    50 * time.Millisecond,
		jitter: func(d time.Duration) time.Duration { return d },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	waitFor(t, 5*time.Second, "three joins", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) >= 3
	})
	time.Sleep(300 * time.Millisecond) // many periods more: no join once the seed is a member
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not stop with its context")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 3 {
		t.Fatalf("%d joins, want 3: two failures, then the seed is a member", len(attempts))
	}
	if gap1, gap2 := attempts[1].Sub(attempts[0]), attempts[2].Sub(attempts[1]); gap1 < 40*time.Millisecond || gap2 < 50*time.Millisecond {
		t.Errorf("retries after %s and %s, want at least 40ms (twice min) and 50ms (max)", gap1, gap2)
	}
}

// Stopping the agent does not wait for a join that hangs on a seed that
// drops packets.
func TestRejoinStopsDuringJoin(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	r := &rejoiner{
		seeds:   func() []string { return []string{"10.0.0.1"} },
		members: func() []gossip.Member { return nil },
		join: func([]string) (int, error) {
			close(entered)
			<-release
			return 0, unreachable("10.0.0.1:4650")
		},
		log:    slog.New(slog.DiscardHandler),
		min:    time.Millisecond,
		max:    time.Millisecond,
		jitter: func(d time.Duration) time.Duration { return d },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no join")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("the loop waits for a hanging join after its context ended")
	}
}

// Two pools that formed apart merge once a seed of one is reachable from
// the other, and the pool without a plan adopts the committed one: a
// partition during the bootstrap that heals.
func TestSeparatePoolsMerge(t *testing.T) {
	c := newCluster(t)
	// The minority first, on addresses 3 and 4, with a seed on each side:
	// nothing answers at the majority's seed yet.
	var minority []*testNode
	var logs []*logRecorder
	for i := 3; i < 5; i++ {
		o := c.options(i)
		o.Config.Join = []string{c.addr(0), c.addr(3)}
		rec := &logRecorder{}
		o.Logger = slog.New(rec)
		logs = append(logs, rec)
		minority = append(minority, c.start(o))
	}
	waitFor(t, 10*time.Second, "the minority's nodes to see each other", func() bool {
		for _, n := range minority {
			if len(aliveIn(n.agent.tr.Members())) != 2 {
				return false
			}
		}
		return true
	})
	// Once a re-join across has failed on both, the next is at least 7.5 s
	// away: time for the majority to commit on its own.
	waitFor(t, 3*c.timings.RejoinMin, "a failed re-join of the majority's seed on both minority nodes", func() bool {
		for _, rec := range logs {
			if rec.count(slog.LevelDebug, "seed not re-joined") == 0 {
				return false
			}
		}
		return true
	})
	var majority []*testNode
	for i := range 3 {
		majority = append(majority, c.start(c.options(i)))
	}
	want := c.waitCommitted(majority, 20*time.Second)[0]
	for _, n := range minority {
		if s := n.agent.Status(); s.Plan != nil {
			t.Fatalf("%s committed %+v before the pools merged", s.Node.Name, s.Plan)
		}
	}

	all := append(slices.Clone(majority), minority...)
	plans := c.waitCommitted(all, 2*c.timings.RejoinMax)
	for i, p := range plans {
		if fmt.Sprint(p) != fmt.Sprint(want) {
			t.Errorf("%s holds %+v, want the majority's %+v", all[i].agent.Name(), p, want)
		}
	}
	// The plan may overtake the members' gossip; every node ends with all.
	waitFor(t, 10*time.Second, "every node to see the five alive", func() bool {
		for _, n := range all {
			if len(aliveIn(n.agent.tr.Members())) != 5 {
				return false
			}
		}
		return true
	})
	for _, n := range minority {
		s := n.agent.Status()
		if s.Node.Role != "client" {
			t.Errorf("%s: role %s, want client", s.Node.Name, s.Node.Role)
		}
		for _, w := range s.Warnings {
			if strings.Contains(w, "committed plan") || strings.Contains(w, "successor") {
				t.Errorf("%s warns: %s", s.Node.Name, w)
			}
		}
	}
	if logs[0].count(slog.LevelInfo, "re-joined seeds")+logs[1].count(slog.LevelInfo, "re-joined seeds") == 0 {
		t.Error("no minority node logged its re-join")
	}
}
