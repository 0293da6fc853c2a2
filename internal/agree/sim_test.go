package agree

import (
	"container/heap"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// The deterministic simulation of the protocol.
//
// One seed is one run: a seeded scheduler and a virtual clock drive N nodes
// in one goroutine over a simulated network. For the first part of the run
// (the fault window) the network drops, delays, duplicates and reorders
// messages, partitions the nodes into groups and heals, and nodes crash and
// restart with exactly what their Store persisted. A third of the seeds
// also hold one server of the first plan down for longer than
// server_replace_after, so that it is replaced; seeds whose min_members is
// below a majority start in two halves. Then the faults stop: every
// partition heals, every node restarts, the network delivers. After every
// event the invariants are checked:
//
//   - a node never persists two different plans of one epoch, nor a lower
//     epoch than it holds, and always holds the plan it persisted;
//   - a node's promise never goes back within an epoch, and no two nodes
//     accept different plans at one ballot;
//   - with min_members a majority of the nodes, no two nodes ever persist
//     different plans of one epoch, so there is at most one CA holder per
//     epoch;
//   - a plan of epoch e > 1 is a valid successor of the plan of epoch e-1,
//     accepted by a majority of that plan's servers, and proposals replace
//     only servers their proposer had not seen alive for
//     server_replace_after;
//   - once faults stop, every node holds the same plan, of the highest
//     epoch, within convergeBound of virtual time.
//
// A failing seed prints the command that replays it.

var (
	simSeeds = flag.Int("sim.seeds", 500, "TestSimulation: number of seeds to run")
	simFirst = flag.Uint64("sim.first", 1, "TestSimulation: first seed")
	simTrace = flag.Bool("sim.trace", false, "TestSimulation: print every event of each seed")
)

// Simulation parameters.
const (
	suspicion     = 2 * time.Second // how long a node still sees an unreachable peer alive
	viewInterval  = 250 * time.Millisecond
	pushPullEvery = 10 * time.Second // each node syncs with a random peer this often, jittered
	faultWindow   = 3 * time.Minute
	// convergeBound is how long after the faults stop every node must hold
	// the same highest plan: the settle time, a few proposal rounds
	// (request timeout, backoff) and a push/pull interval, with room.
	convergeBound = time.Minute
)

func TestSimulation(t *testing.T) {
	failures := 0
	for seed := *simFirst; seed < *simFirst+uint64(*simSeeds); seed++ {
		if v := runSeed(seed, bugs{}, *simTrace); len(v) > 0 {
			failures++
			t.Errorf("seed %d: %s\nreplay: go test ./internal/agree -run 'TestSimulation$' -sim.seeds 1 -sim.first %d -sim.trace -v",
				seed, strings.Join(v, "\n  "), seed)
		}
	}
	t.Logf("%d seeds, %d violations", *simSeeds, failures)
	fmt.Printf("%d seeds, %d violations\n", *simSeeds, failures)
}

// TestSimulationCatchesBrokenProtocols shows that the simulator bites: each
// deliberately broken protocol is caught within the first few hundred seeds.
func TestSimulationCatchesBrokenProtocols(t *testing.T) {
	tests := []struct {
		name string
		bug  bugs
	}{
		{"coordinator commits before every server accepted", bugs{commitEarly: true}},
		{"node adopts another plan of its epoch", bugs{adoptSameEpoch: true}},
		{"successor accepted by a minority", bugs{minorityQuorum: true}},
	}
	const within = 400
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := uint64(1); seed <= within; seed++ {
				// A broken protocol is caught by what it breaks,
				// not by a cluster that never converges.
				v := slices.DeleteFunc(runSeed(seed, tt.bug, false), func(v string) bool { return strings.Contains(v, "after the faults stopped") })
				if len(v) > 0 {
					t.Logf("caught at seed %d: %s", seed, v[0])
					return
				}
			}
			t.Errorf("not caught in %d seeds", within)
		})
	}
}

// scenario is what one seed runs.
type scenario struct {
	nodes      int
	expect     int
	minMembers int
	bootstrap  int // bootstrap_size; 0 for none
	settle     time.Duration
	replace    time.Duration // server_replace_after
	split      bool          // minMembers is below a majority: groups may elect apart
	faults     bool
	drop, dup  float64
	maxDelay   time.Duration
	broadcast  int // largest broadcast payload
	startSpan  time.Duration
	timings    Timings
	// outage, when set, is how long one server stays down, from a time
	// in the fault window when it holds the first plan: long enough to
	// be replaced.
	outage time.Duration
}

func newScenario(r *rand.Rand) scenario {
	sc := scenario{faults: true}
	sc.expect = []int{1, 3, 3, 3, 5}[r.IntN(5)]
	sc.nodes = sc.expect + r.IntN(5)
	sc.minMembers = sc.nodes/2 + 1
	if r.IntN(10) == 0 {
		sc.minMembers = 1 + r.IntN(sc.nodes/2+1)
	}
	sc.split = sc.minMembers <= sc.nodes/2
	if r.IntN(3) == 0 {
		sc.bootstrap = sc.nodes
	}
	sc.settle = time.Duration(1+r.IntN(5)) * time.Second
	sc.replace = time.Duration(5+r.IntN(40)) * time.Second
	sc.drop = []float64{0, 0.01, 0.05, 0.2}[r.IntN(4)]
	sc.dup = []float64{0, 0.02, 0.1}[r.IntN(3)]
	sc.maxDelay = []time.Duration{5 * time.Millisecond, 100 * time.Millisecond, 2 * time.Second}[r.IntN(3)]
	sc.broadcast = 1400
	if r.IntN(4) == 0 {
		sc.broadcast = 200 // commits do not fit: announce and fetch
	}
	sc.startSpan = time.Duration(r.IntN(10000)) * time.Millisecond
	sc.timings = DefaultTimings()
	if r.IntN(3) == 0 {
		sc.outage = sc.replace + time.Duration(10+r.IntN(80))*time.Second
	}
	return sc
}

// event is one scheduled step of the simulation.
type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// sim is one run.
type sim struct {
	sc      scenario
	r       *rand.Rand
	bug     bugs
	start   time.Time
	now     time.Time
	queue   eventHeap
	seq     uint64
	nodes   []*simNode
	byName  map[string]*simNode
	faulty  bool // inside the fault window
	ended   bool
	scale   bool // no faults, many nodes: one shared view, invariants at the end
	upCount int  // nodes up

	shared    []gossip.Member // scale: the view every node has
	sharedVer int
	holding   int           // scale: nodes that persisted the first plan
	converged time.Duration // scale: when the last one did
	trace     []traceEntry
	traceAt   int
	traceOn   bool

	// what the invariants know
	committed  map[uint64]plan.Plan // epoch -> the first plan of that epoch persisted anywhere
	accepted   map[string][]string  // plan hash -> servers that acknowledged it
	proposals  map[reqKey]string    // a proposal request -> its plan hash
	coordOf    map[string]string    // plan hash -> the node that persisted it first
	ballots    map[ballotKey]string // ballot -> hash of the plan accepted at it
	lastSeen   map[[2]int]time.Time // pair of nodes -> last time they could talk
	linked     map[[2]int]bool      // pair of nodes -> they can talk now
	violations []string
}

type ballotKey struct {
	epoch  uint64
	ballot Ballot
}

type reqKey struct {
	from, to string
	inc      int
	id       uint64
}

// simNode is one simulated machine: what survives a crash is its store.
type simNode struct {
	s         *sim
	idx       int
	name      string
	id        string
	meta      gossip.Meta
	up        bool
	crashedAt time.Time
	bootedAt  time.Time
	lastAlive map[int]time.Time // peer -> when this incarnation's view last showed it alive
	out       bool              // in its outage: down until it ends
	inc       int               // incarnation: counts starts
	group     int               // partition group
	known     map[int]bool
	node      *Node
	view      []gossip.Member
	addr      string
	addrs     []string // every address it has had, addr the last
	viewVer   int
	tickGen   uint64

	stored     *plan.Plan // persisted plan
	storedHash string
	storedVote *Vote  // persisted vote
	keptCA     string // persisted CA fingerprint
	caFP       string // the CA made in memory for proposals
	warns      map[string]string
}

func runSeed(seed uint64, bug bugs, traceOn bool) []string {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	sc := newScenario(r)
	s := newSim(sc, r, bug, traceOn)
	s.run()
	return s.violations
}

func newSim(sc scenario, r *rand.Rand, bug bugs, traceOn bool) *sim {
	s := &sim{
		sc: sc, r: r, bug: bug, traceOn: traceOn,
		start:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		byName:    map[string]*simNode{},
		committed: map[uint64]plan.Plan{},
		accepted:  map[string][]string{},
		proposals: map[reqKey]string{},
		coordOf:   map[string]string{},
		ballots:   map[ballotKey]string{},
		lastSeen:  map[[2]int]time.Time{},
		linked:    map[[2]int]bool{},
	}
	s.now = s.start
	zones := 1 + r.IntN(3)
	// Names of one width sort like the nodes, as gossip lists members.
	width := max(2, len(fmt.Sprint(sc.nodes-1)))
	for i := range sc.nodes {
		role := "auto"
		if i > 0 && r.IntN(6) == 0 {
			role = []string{"server", "client"}[r.IntN(2)]
		}
		n := &simNode{
			s: s, idx: i, name: fmt.Sprintf("n%0*d", width, i), id: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			meta: gossip.Meta{
				Role: role, Pool: "default", Zone: fmt.Sprintf("z%d", r.IntN(zones)), Region: "global", Expect: sc.expect,
				CPUCores: 1 + r.IntN(8), MemoryMB: 1024 * (1 + r.IntN(16)),
			},
			addr:  fmt.Sprintf("10.0.0.%d", i+1),
			warns: map[string]string{},
		}
		n.addrs = []string{n.addr}
		n.meta.ID = n.id
		s.nodes = append(s.nodes, n)
		s.byName[n.name] = n
	}
	// Enough eligible nodes exist for the election to finish once faults
	// stop: clients by preference never outnumber the spare nodes.
	eligible := 0
	for _, n := range s.nodes {
		if n.meta.Role != "client" {
			eligible++
		}
	}
	for _, n := range s.nodes {
		if eligible >= sc.expect {
			break
		}
		if n.meta.Role == "client" {
			n.meta.Role = "auto"
			eligible++
		}
	}
	return s
}

func (s *sim) at(d time.Duration, fn func()) {
	s.seq++
	heap.Push(&s.queue, event{at: s.now.Add(d), seq: s.seq, fn: fn})
}

// logf records an event; the last ones are formatted only when a seed
// fails, or as they happen with -sim.trace.
func (s *sim) logf(format string, args ...any) {
	e := traceEntry{at: s.now.Sub(s.start), format: format, args: args}
	if s.traceOn {
		fmt.Println(e)
	}
	if len(s.trace) < traceLen {
		s.trace = append(s.trace, e)
	} else {
		s.trace[s.traceAt%traceLen] = e
	}
	s.traceAt++
}

const traceLen = 40

type traceEntry struct {
	at     time.Duration
	format string
	args   []any
}

func (e traceEntry) String() string {
	return fmt.Sprintf("%9.3fs ", e.at.Seconds()) + fmt.Sprintf(e.format, e.args...)
}

// lastEvents returns the recorded events, oldest first.
func (s *sim) lastEvents() []string {
	var out []string
	for i := range len(s.trace) {
		out = append(out, s.trace[(s.traceAt+i)%len(s.trace)].String())
	}
	return out
}

func (s *sim) violate(format string, args ...any) {
	msg := fmt.Sprintf("at %s: ", s.now.Sub(s.start)) + fmt.Sprintf(format, args...)
	if len(s.violations) == 0 {
		msg += "\n  last events:\n    " + strings.Join(s.lastEvents(), "\n    ")
	}
	s.violations = append(s.violations, msg)
	s.ended = true
}

func (s *sim) run() {
	s.faulty = s.sc.faults
	for _, n := range s.nodes {
		s.at(time.Duration(s.r.Int64N(int64(s.sc.startSpan)+1)), n.boot)
	}
	s.at(viewInterval, s.refreshViews)
	if s.sc.faults {
		first := time.Duration(s.r.Int64N(int64(3 * time.Second)))
		if s.sc.split {
			// Below a majority, groups that start apart elect apart:
			// the nodes start in two halves, which meet later.
			for _, n := range s.nodes {
				n.group = n.idx % 2
			}
			first = 20*time.Second + time.Duration(s.r.Int64N(int64(20*time.Second)))
		}
		s.at(first, s.fault)
		s.at(faultWindow, s.endFaults)
	}
	if s.sc.outage > 0 {
		s.at(20*time.Second+time.Duration(s.r.Int64N(int64(40*time.Second))), s.startOutage)
	}
	end := s.start.Add(faultWindow + convergeBound)
	for len(s.queue) > 0 && !s.ended {
		e := heap.Pop(&s.queue).(event)
		if e.at.After(end) {
			break
		}
		s.now = e.at
		e.fn()
		s.check()
	}
	if !s.ended {
		s.now = end
		s.checkConverged()
	}
}

// startOutage takes a server of the first plan down for sc.outage, or
// tries again a little later while no node holds a plan.
func (s *sim) startOutage() {
	if !s.faulty {
		return
	}
	p, ok := s.committed[1]
	if !ok {
		s.at(5*time.Second, s.startOutage)
		return
	}
	n := s.byName[p.Servers[s.r.IntN(len(p.Servers))].Name]
	s.logf("outage of %s for %s", n.name, s.sc.outage)
	if n.up {
		n.crash()
	}
	n.out = true
	s.at(s.sc.outage, func() {
		if s.faulty && n.out {
			n.out = false
			if !n.up {
				n.boot()
			}
		}
	})
}

// faultGap is the time to the next fault: dense during the first election,
// sparser after.
func (s *sim) faultGap() time.Duration {
	if s.now.Sub(s.start) < 30*time.Second {
		return 200*time.Millisecond + time.Duration(s.r.Int64N(int64(4*time.Second)))
	}
	return time.Second + time.Duration(s.r.Int64N(int64(15*time.Second)))
}

// fault injects one fault and schedules the next.
func (s *sim) fault() {
	if !s.faulty {
		return
	}
	switch k := s.r.IntN(10); {
	case k < 4: // crash a node, restart it later, at times on another address
		n := s.nodes[s.r.IntN(len(s.nodes))]
		if n.up {
			n.crash()
			down := time.Duration(s.r.Int64N(int64(60 * time.Second)))
			if s.r.IntN(3) == 0 {
				down = time.Duration(s.r.Int64N(int64(2 * time.Second)))
			}
			move := s.r.IntN(4) == 0
			s.at(down, func() {
				if s.faulty && !n.up && !n.out {
					if move {
						n.moveAddress()
					}
					n.boot()
				}
			})
		}
	case k < 7: // partition into groups
		groups := 2 + s.r.IntN(2)
		for _, n := range s.nodes {
			n.group = s.r.IntN(groups)
		}
		s.logf("partition into %d groups: %s", groups, s.groups())
		s.linksChanged()
	default: // heal
		for _, n := range s.nodes {
			n.group = 0
		}
		s.logf("heal")
		s.linksChanged()
	}
	s.at(s.faultGap(), s.fault)
}

func (s *sim) groups() string {
	var b strings.Builder
	for _, n := range s.nodes {
		fmt.Fprintf(&b, "%s:%d ", n.name, n.group)
	}
	return b.String()
}

// endFaults heals the network and restarts every node.
func (s *sim) endFaults() {
	s.faulty = false
	s.logf("faults stop")
	for _, n := range s.nodes {
		n.group = 0
	}
	s.linksChanged()
	for _, n := range s.nodes {
		n.out = false
		if !n.up {
			n.boot()
		}
	}
}

// booted counts the nodes up.
func (s *sim) booted() int { return s.upCount }

func (s *sim) connected(a, b *simNode) bool {
	return a.up && b.up && a.group == b.group
}

// linksChanged brings the links up to date after nodes started, crashed or
// moved between groups: a pair that just got connected syncs (memberlist's
// join and rejoin), a pair that lost its link remembers when it had it.
func (s *sim) linksChanged() {
	if s.scale {
		s.sharedVer++
		return
	}
	for _, a := range s.nodes {
		for _, b := range s.nodes {
			if a.idx >= b.idx {
				continue
			}
			key := [2]int{a.idx, b.idx}
			c := s.connected(a, b)
			if c && !s.linked[key] {
				a.known[b.idx], b.known[a.idx] = true, true
				s.at(time.Duration(s.r.Int64N(int64(time.Second))), func() { s.pushPull(a, b) })
			}
			if c || s.linked[key] {
				s.lastSeen[key] = s.now
			}
			s.linked[key] = c
		}
	}
}

// contact returns when a and b last could talk: now while they can.
func (s *sim) contact(a, b *simNode) time.Time {
	if s.scale {
		return s.now
	}
	if a.idx > b.idx {
		a, b = b, a
	}
	key := [2]int{a.idx, b.idx}
	if s.linked[key] {
		return s.now
	}
	return s.lastSeen[key]
}

// sees reports whether from lists to as an alive member.
func (s *sim) sees(from, to *simNode) bool {
	if s.scale {
		return to.up
	}
	for _, m := range from.view {
		if m.Name == to.name {
			return m.State == gossip.StateAlive
		}
	}
	return false
}

// refreshViews gives every node its gossip view: peers it knows, alive when
// it can reach them or could until suspicion ago.
func (s *sim) refreshViews() {
	for _, n := range s.nodes {
		if n.up {
			n.refreshView()
		}
	}
	s.at(viewInterval, s.refreshViews)
}

func (n *simNode) refreshView() {
	s := n.s
	if s.scale {
		if n.viewVer != s.sharedVer || n.view == nil {
			if s.shared == nil || len(s.shared) != s.booted() {
				s.shared = nil
				for _, o := range s.nodes {
					if o.up {
						s.shared = append(s.shared, gossip.Member{Name: o.name, Address: o.addr, Port: 4648, State: gossip.StateAlive, Meta: o.meta})
					}
				}
			}
			n.viewVer, n.view = s.sharedVer, s.shared
			n.node.MembersChanged(s.now, s.shared)
			n.schedule()
		}
		return
	}
	view := make([]gossip.Member, 0, len(n.view)+1)
	for _, o := range s.nodes {
		if o != n && !n.known[o.idx] {
			continue
		}
		st := gossip.StateAlive
		if o != n && !s.connected(n, o) && s.now.Sub(s.contact(n, o)) >= suspicion {
			st = gossip.StateDead
		}
		if st == gossip.StateAlive {
			n.lastAlive[o.idx] = s.now
		}
		view = append(view, gossip.Member{Name: o.name, Address: o.addr, Port: 4648, State: st, Meta: o.meta})
	}
	if !slices.EqualFunc(view, n.view, func(a, b gossip.Member) bool {
		return a.Name == b.Name && a.State == b.State && a.Address == b.Address
	}) || n.view == nil {
		n.view = view
		n.node.MembersChanged(s.now, view)
		n.schedule()
	}
}

// boot starts the node with what it persisted.
func (n *simNode) boot() {
	s := n.s
	n.up = true
	s.upCount++
	n.inc++
	n.caFP = ""
	n.known = map[int]bool{}
	n.lastAlive = map[int]time.Time{}
	n.bootedAt = s.now
	n.view = nil
	cfg := Config{
		Name: n.name, ID: n.id, Region: "global", Expect: s.sc.expect, MinMembers: s.sc.minMembers,
		BootstrapSize: s.sc.bootstrap, Settle: s.sc.settle, ServerReplaceAfter: s.sc.replace,
		CAPort: 4649, Timings: s.sc.timings,
	}
	n.node = New(cfg, Saved{Plan: n.stored, Vote: n.storedVote}, s.now, simTransport{n, n.inc}, simStore{n}, simCA{n}, simObserver{n})
	n.node.bugs = s.bug
	s.logf("%s starts (incarnation %d, plan %s)", n.name, n.inc, planString(n.stored))
	if n.stored != nil && n.node.PlanHash() != n.storedHash {
		s.violate("%s restarted without the plan it persisted", n.name)
	}
	s.linksChanged()
	joined := s.scale && s.booted() > 1
	for _, o := range s.nodes {
		if !s.scale && o != n && s.connected(n, o) {
			joined = true
		}
	}
	if n.idx == 0 || joined {
		n.node.SetJoined()
	}
	if !s.scale {
		// At scale every node gets the shared view at the next refresh:
		// one view per refresh, not one per start.
		n.refreshView()
	}
	n.schedule()
	n.s.at(time.Duration(s.r.Int64N(int64(pushPullEvery))), n.pushPullLoop(n.inc))
}

// moveAddress gives the node, while it is down, an address it never had,
// as a new DHCP lease would.
func (n *simNode) moveAddress() {
	n.addr = fmt.Sprintf("10.%d.0.%d", len(n.addrs), n.idx+1)
	n.addrs = append(n.addrs, n.addr)
	n.s.logf("%s moves to %s", n.name, n.addr)
	if n.s.scale {
		n.s.shared = nil
		n.s.sharedVer++
	}
}

func (n *simNode) crash() {
	s := n.s
	s.logf("%s crashes", n.name)
	n.up = false
	s.upCount--
	n.crashedAt = s.now
	n.node = nil
	n.view = nil
	n.tickGen++
	s.linksChanged()
}

// schedule sets the node's next tick from what it asks for.
func (n *simNode) schedule() {
	n.tickGen++
	gen := n.tickGen
	n.s.at(n.node.NextTick(n.s.now), func() {
		if n.up && n.tickGen == gen {
			n.node.Tick(n.s.now)
			n.schedule()
		}
	})
}

// pushPullLoop syncs with a random reachable peer now and then.
func (n *simNode) pushPullLoop(inc int) func() {
	return func() {
		s := n.s
		if !n.up || n.inc != inc {
			return
		}
		var peers []*simNode
		if s.scale {
			peers = []*simNode{s.nodes[s.r.IntN(len(s.nodes))]}
		}
		for _, o := range s.nodes {
			if !s.scale && o != n && s.connected(n, o) {
				peers = append(peers, o)
			}
		}
		if len(peers) > 0 {
			s.pushPull(n, peers[s.r.IntN(len(peers))])
		}
		s.at(pushPullEvery/2+time.Duration(s.r.Int64N(int64(pushPullEvery))), n.pushPullLoop(inc))
	}
}

// pushPull exchanges the plans of a and b, each through its wire form.
func (s *sim) pushPull(a, b *simNode) {
	if !s.connected(a, b) {
		return
	}
	sa, sb := EncodeState(a.node.Plan()), EncodeState(b.node.Plan())
	s.logf("push/pull %s <-> %s", a.name, b.name)
	for _, x := range []struct {
		to  *simNode
		buf []byte
	}{{a, sb}, {b, sa}} {
		if len(x.buf) == 0 {
			continue
		}
		p, err := DecodeState(x.buf)
		if err != nil {
			s.violate("push/pull state does not decode: %v", err)
			return
		}
		x.to.node.MergeRemote(s.now, p)
		x.to.schedule()
	}
}

func (s *sim) delay() time.Duration {
	return time.Millisecond + time.Duration(s.r.Int64N(int64(s.sc.maxDelay)))
}

// simTransport is one incarnation's side of the simulated network.
type simTransport struct {
	n   *simNode
	inc int
}

func (t simTransport) Send(to string, m Message) {
	s := t.n.s
	from := t.n
	dst := s.byName[to]
	buf := m.Encode()
	switch m.Type {
	case MsgPropose:
		s.proposals[reqKey{from.name, to, t.inc, m.ID}] = m.Plan.Hash()
	case MsgPrepare:
		if m.Plan.Epoch > 1 && !s.sc.split {
			s.checkReplacing(from, *m.Plan)
		}
	}
	if m.Type == MsgAck {
		// Which plan the ack is for: the request it answers.
		if h, ok := s.proposals[reqKey{to, from.name, dst.inc, m.ID}]; ok && !slices.Contains(s.accepted[h], from.name) {
			s.accepted[h] = append(s.accepted[h], from.name)
		}
	}
	fail := func(why string) {
		if m.Type == MsgPropose || m.Type == MsgPrepare {
			s.at(s.delay(), func() {
				if from.up && from.inc == t.inc {
					from.node.Undeliverable(s.now, to, m.ID, fmt.Errorf("%s", why))
					from.schedule()
				}
			})
		}
	}
	if dst == nil || !s.sees(from, dst) {
		fail("no node named " + to)
		return
	}
	copies := 1
	if s.faulty {
		if s.r.Float64() < s.sc.drop {
			copies = 0
		} else if s.r.Float64() < s.sc.dup {
			copies = 2
		}
	}
	sentAt, group := s.now, from.group
	for range copies {
		s.at(s.delay(), func() {
			// What left the machine arrives after its sender crashed;
			// what it sent in its last moments is lost.
			if !dst.up || dst.group != group || (!from.up && from.crashedAt.Sub(sentAt) < 20*time.Millisecond) {
				fail("connection refused")
				return
			}
			got, err := DecodeMessage(buf)
			if err != nil {
				s.violate("message does not decode: %v", err)
				return
			}
			s.logf("%s -> %s %s", from.name, dst.name, describe(got))
			dst.node.Receive(s.now, from.name, got)
			dst.schedule()
		})
	}
}

func (t simTransport) Broadcast(m Message) error {
	s := t.n.s
	buf := m.Encode()
	if len(buf) > s.sc.broadcast {
		return fmt.Errorf("a broadcast of %d bytes is too large", len(buf))
	}
	from := t.n
	s.logf("%s broadcasts %s", from.name, describe(m))
	for _, dst := range s.nodes {
		if dst == from || !s.connected(from, dst) || (s.faulty && s.r.Float64() < s.sc.drop) {
			continue
		}
		s.at(s.delay()+time.Duration(s.r.Int64N(int64(time.Second))), func() {
			if !dst.up {
				return
			}
			got, err := DecodeMessage(buf)
			if err != nil {
				s.violate("broadcast does not decode: %v", err)
				return
			}
			dst.node.Receive(s.now, from.name, got)
			dst.schedule()
		})
	}
	return nil
}

type simStore struct{ n *simNode }

// SaveVote checks that a node's promises never go back within an epoch
// and that no two nodes accept different plans at one ballot.
func (st simStore) SaveVote(v Vote) error {
	n := st.n
	s := n.s
	if err := v.check(); err != nil {
		s.violate("%s persists an invalid vote: %v", n.name, err)
	}
	if old := n.storedVote; old != nil && old.Epoch == v.Epoch && v.Promised.Less(old.Promised) {
		s.violate("%s's promise for epoch %d went back from %s to %s", n.name, v.Epoch, old.Promised, v.Promised)
	}
	if old := n.storedVote; old != nil && old.Epoch > v.Epoch {
		s.violate("%s votes on epoch %d after epoch %d", n.name, v.Epoch, old.Epoch)
	}
	if v.Plan != nil {
		k := ballotKey{v.Epoch, v.Accepted}
		h := v.Plan.Hash()
		if first, ok := s.ballots[k]; !ok {
			s.ballots[k] = h
		} else if first != h {
			s.violate("two plans accepted at ballot %s of epoch %d", v.Accepted, v.Epoch)
		}
	}
	c := v
	if v.Plan != nil {
		c.Plan = new(v.Plan.Clone())
	}
	n.storedVote = &c
	return nil
}

func (st simStore) SavePlan(p plan.Plan) error {
	n := st.n
	s := n.s
	p = p.Clone()
	hash := p.Hash()
	s.logf("%s persists %s", n.name, planString(&p))
	if old := n.stored; old != nil {
		switch {
		case p.Epoch < old.Epoch:
			s.violate("%s persisted epoch %d over its epoch %d", n.name, p.Epoch, old.Epoch)
		case p.Epoch == old.Epoch && n.storedHash != hash:
			s.violate("%s replaced its plan of epoch %d (%s) by another (%s)", n.name, p.Epoch, planString(old), planString(&p))
		}
	}
	first, seen := s.committed[p.Epoch]
	switch {
	case !seen:
		s.committed[p.Epoch] = p
		s.coordOf[hash] = n.name
		if p.Epoch > 1 {
			s.checkSuccessor(n, p)
		}
	case first.Hash() != hash && !s.sc.split:
		s.violate("two plans of epoch %d: %s persisted %s, another node %s", p.Epoch, n.name, planString(&p), planString(&first))
	case first.CAHolder != p.CAHolder && !s.sc.split:
		s.violate("two CA holders in epoch %d", p.Epoch)
	}
	if s.scale && n.stored == nil {
		s.holding++
		if s.holding == len(s.nodes) {
			s.converged = s.now.Sub(s.start)
			s.ended = true
		}
	}
	n.stored, n.storedHash = &p, hash
	return nil
}

// checkSuccessor checks the first persisted plan of an epoch above 1.
func (s *sim) checkSuccessor(coord *simNode, p plan.Plan) {
	prev, ok := s.committed[p.Epoch-1]
	if !ok {
		s.violate("epoch %d persisted without epoch %d", p.Epoch, p.Epoch-1)
		return
	}
	if s.sc.split {
		return // which plan of epoch-1 it follows is not known
	}
	if err := plan.CheckSuccessor(prev, p); err != nil {
		s.violate("epoch %d is not a valid successor: %v", p.Epoch, err)
		return
	}
	for _, srv := range p.Servers {
		if n := s.byName[srv.Name]; !slices.Contains(n.addrs, srv.Address) {
			s.violate("epoch %d records server %s at %s, an address it never had (%v)", p.Epoch, srv.Name, srv.Address, n.addrs)
		}
	}
	votes := 0
	acked := s.accepted[p.Hash()]
	for _, srv := range prev.Servers {
		if srv.Name == coord.name || slices.Contains(acked, srv.Name) {
			votes++
		}
	}
	if need := len(prev.Servers)/2 + 1; votes < need {
		s.violate("epoch %d committed by %s with %d of the %d votes it needs from epoch %d's servers (acks from %v)",
			p.Epoch, coord.name, votes, need, p.Epoch-1, acked)
	}
}

// checkReplacing checks a successor that from proposes: it replaces only
// servers from has not seen alive for server_replace_after, in its
// gossip view since it started.
func (s *sim) checkReplacing(from *simNode, p plan.Plan) {
	prev := from.node.Plan()
	for _, id := range plan.Replaced(*prev, p) {
		for _, srv := range prev.Servers {
			if srv.ID != id {
				continue
			}
			seen := from.bootedAt
			if t, ok := from.lastAlive[s.byName[srv.Name].idx]; ok && t.After(seen) {
				seen = t
			}
			if ago := s.now.Sub(seen); ago < s.sc.replace {
				s.violate("epoch %d replaces %s, which %s saw alive %s ago (server_replace_after %s)",
					p.Epoch, srv.Name, from.name, ago, s.sc.replace)
			}
		}
	}
}

type simCA struct{ n *simNode }

func (c simCA) ProposalCA() (string, error) {
	n := c.n
	if n.keptCA != "" {
		n.caFP = n.keptCA
		return n.keptCA, nil
	}
	if n.caFP == "" {
		n.caFP = fmt.Sprintf("sha256:%016x%016x%016x%016x", n.s.r.Uint64(), n.s.r.Uint64(), n.s.r.Uint64(), n.s.r.Uint64())
	}
	return n.caFP, nil
}

func (c simCA) KeepCA() error {
	c.n.keptCA = c.n.caFP
	if c.n.keptCA == "" {
		return fmt.Errorf("no CA made")
	}
	return nil
}

type simObserver struct{ n *simNode }

func (o simObserver) Committed(p plan.Plan, prev *plan.Plan, source string) {
	o.n.s.logf("%s commits %s from %s", o.n.name, planString(&p), source)
}
func (o simObserver) Warn(key, msg string)    { o.n.warns[key] = msg }
func (o simObserver) ClearWarning(key string) { delete(o.n.warns, key) }
func (o simObserver) Degraded(reason string)  { o.n.s.violate("%s degraded: %s", o.n.name, reason) }

// check runs the invariants that hold after every event.
func (s *sim) check() {
	if s.scale {
		return
	}
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		switch {
		case n.stored == nil && n.node.Plan() != nil:
			s.violate("%s holds a plan it did not persist", n.name)
		case n.stored != nil && n.node.PlanHash() != n.storedHash:
			s.violate("%s holds %s but persisted %s", n.name, planString(n.node.Plan()), planString(n.stored))
		}
	}
}

// checkConverged checks that every node holds the same plan, of the highest
// epoch, once the faults have stopped for convergeBound.
func (s *sim) checkConverged() {
	if s.sc.split {
		return // groups that elected apart keep their plans: the warning says so
	}
	var top uint64
	for e := range s.committed {
		top = max(top, e)
	}
	want := s.committed[top]
	for _, n := range s.nodes {
		if p := n.node.Plan(); p == nil || p.Hash() != want.Hash() {
			s.violate("%s holds %s %s after the faults stopped, not %s (reason: %q)",
				n.name, planString(p), convergeBound, planString(&want), n.node.Reason())
		}
	}
	for _, srv := range want.Servers {
		if n := s.byName[srv.Name]; n.addr != srv.Address {
			s.violate("%s holds server %s at %s %s after the faults stopped, not at its address %s (warnings: %v)",
				planString(&want), srv.Name, srv.Address, convergeBound, n.addr, s.nodes[0].warns)
		}
	}
}

func planString(p *plan.Plan) string {
	if p == nil {
		return "no plan"
	}
	return fmt.Sprintf("epoch %d [%s] ca %s", p.Epoch, strings.Join(p.ServerNames(), ","), p.CAHolderName())
}

func describe(m Message) string {
	if !m.Ballot.IsZero() {
		m.Type += "@" + m.Ballot.String()
	}
	switch {
	case m.Plan != nil:
		return fmt.Sprintf("%s#%d %s", m.Type, m.ID, planString(m.Plan))
	case m.Reason != "":
		return fmt.Sprintf("%s#%d %q", m.Type, m.ID, m.Reason)
	}
	return fmt.Sprintf("%s#%d", m.Type, m.ID)
}
