// Package upgrade decides the next step of a rolling Nomad upgrade from
// what the cluster looks like now: the servers one at a time, followers
// first and the leader last, each back healthy and caught up with the
// leader's Raft log before the next; then the clients pool by pool, in
// batches, each batch drained first and made eligible again once it runs
// the new version. It only decides: the server whose Nomad leads carries
// the step out (drains, eligibility) and records it in the cluster state,
// and each node installs the new version when its turn says so. A roll is
// stateless between steps, so that whichever server leads next goes on
// from the record.
package upgrade

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"
)

// drainGrace is how long past its deadline a drain may still be running
// (Nomad stops what is left at the deadline) before it stops the roll.
const drainGrace = 2 * time.Minute

// CatchUpSlack is how many Raft entries an upgraded server may be behind
// the leader and count as caught up: a busy cluster writes between the
// two reads.
const CatchUpSlack = 25

// Node is one node of the cluster as the leader sees it.
type Node struct {
	ID     string // the agent's node ID
	Name   string // the agent's and Nomad's name
	Server bool   // a Nomad server of the plan
	Leader bool   // the Nomad server that leads
	RaftID string // a server's ID in Nomad's Raft
	// Version is the Nomad version the node runs, as Nomad reports it;
	// "" when Nomad does not know the node, or it is down.
	Version string
	// Servers: Healthy is autopilot's verdict on it, LastIndex the last
	// Raft index it stored.
	Healthy   bool
	LastIndex uint64
	// Clients: NomadID is Nomad's node ID, Pool its pool, Ready that
	// Nomad sees it ready, Draining that a drain is under way on it.
	NomadID  string
	Pool     string
	Ready    bool
	Draining bool
}

// View is the cluster as the leader sees it.
type View struct {
	Now   time.Time
	Nodes []Node
	// Healthy is autopilot's verdict on the servers as a whole.
	Healthy bool
	// LeaderIndex is the last Raft index the leader stored.
	LeaderIndex uint64
	// CanTransfer says the leader's Nomad hands leadership to a given
	// server on request (nomadver.Features.LeadershipTransfer).
	CanTransfer bool
}

func (v View) node(id string) (Node, bool) {
	i := slices.IndexFunc(v.Nodes, func(n Node) bool { return n.ID == id })
	if i < 0 {
		return Node{ID: id}, false
	}
	return v.Nodes[i], true
}

// Step is what the leader does next: record Record in the cluster state,
// after draining the Nomad nodes in Drain, or before making those in
// Eligible eligible again. Wait says why nothing changes when Record is
// the record given.
type Step struct {
	Record   clusterstate.NomadUpgrade
	Drain    []string // Nomad node IDs
	Eligible []string // Nomad node IDs
	// TransferTo is the Raft ID of an upgraded server the leader hands
	// leadership to before its own turn, when its Nomad can.
	TransferTo string
	Wait       string
}

// Next decides the step after u, a roll under way, given v.
func Next(u clusterstate.NomadUpgrade, v View) Step {
	target, err := u.Target()
	if err != nil {
		return Step{Record: u.Failed(err.Error(), v.Now)}
	}
	if len(u.Turn) > 0 {
		return turn(u, target, v)
	}
	switch u.Stage {
	case clusterstate.UpgradeServers:
		return nextServer(u, target, v)
	case clusterstate.UpgradeClients:
		return nextClients(u, target, v)
	}
	return Step{Record: u, Wait: "the upgrade is over"}
}

// runs reports whether n runs target.
func runs(n Node, target nomadver.Version) bool {
	got, err := nomadver.Parse(n.Version)
	return err == nil && n.Version != "" && got.Compare(target) == 0
}

// turn follows the nodes of u's turn.
func turn(u clusterstate.NomadUpgrade, target nomadver.Version, v View) Step {
	elapsed := v.Now.Sub(u.TurnAt)
	if u.Step == clusterstate.TurnDrain {
		var draining []string
		for _, id := range u.Turn {
			if n, _ := v.node(id); n.Draining {
				draining = append(draining, n.Name)
			}
		}
		if len(draining) == 0 {
			next := u
			next.Step, next.TurnAt = clusterstate.TurnInstall, v.Now.UTC()
			return Step{Record: next}
		}
		if limit := u.DrainDeadline + drainGrace; elapsed > limit {
			return Step{Record: u.Failed(fmt.Sprintf("the drain of %s did not finish within %s", strings.Join(draining, ", "), limit), v.Now)}
		}
		return Step{Record: u, Wait: "draining " + strings.Join(draining, ", ")}
	}
	var waiting []string
	var eligible []string
	for _, id := range u.Turn {
		n, known := v.node(id)
		name := cmp.Or(n.Name, id)
		switch {
		case !known || !runs(n, target):
			waiting = append(waiting, fmt.Sprintf("%s to run Nomad %s (runs %s)", name, target, cmp.Or(n.Version, "nothing Nomad knows of")))
		case n.Server && !n.Healthy:
			waiting = append(waiting, name+" to be healthy in autopilot")
		case n.Server && n.LastIndex+CatchUpSlack < v.LeaderIndex:
			waiting = append(waiting, fmt.Sprintf("%s to catch up with the leader's Raft log (index %d of %d)", name, n.LastIndex, v.LeaderIndex))
		case n.Server && !v.Healthy:
			waiting = append(waiting, "autopilot to report the servers healthy")
		case !n.Server && !n.Ready:
			waiting = append(waiting, name+" to be ready")
		case !n.Server:
			eligible = append(eligible, n.NomadID)
		}
	}
	if len(waiting) > 0 {
		if elapsed > u.NodeTimeout {
			return Step{Record: u.Failed(fmt.Sprintf("waited %s for %s", u.NodeTimeout, strings.Join(waiting, "; ")), v.Now)}
		}
		return Step{Record: u, Wait: "waiting for " + strings.Join(waiting, "; ")}
	}
	next := u
	next.Upgraded += len(u.Turn)
	next.Turn, next.Step, next.TurnAt = nil, "", time.Time{}
	return Step{Record: next, Eligible: eligible}
}

// nextServer gives the next server its turn: a follower, the leader last.
func nextServer(u clusterstate.NomadUpgrade, target nomadver.Version, v View) Step {
	var todo []Node
	for _, n := range v.Nodes {
		if n.Server && !runs(n, target) {
			todo = append(todo, n)
		}
	}
	if len(todo) == 0 {
		next := u
		next.Stage = clusterstate.UpgradeClients
		return Step{Record: next}
	}
	if !v.Healthy {
		return Step{Record: u, Wait: "waiting for autopilot to report the servers healthy before the next server"}
	}
	if newer := newerThan(v.Nodes, target); newer != "" {
		return Step{Record: u.Failed(newer, v.Now)}
	}
	slices.SortFunc(todo, func(a, b Node) int {
		if a.Leader != b.Leader {
			if a.Leader {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if todo[0].Leader && v.CanTransfer {
		// Rather than restart the leader, which costs an election, hand
		// leadership to a server that runs the new version; the leader
		// is then a follower like the others.
		for _, n := range v.Nodes {
			if n.Server && !n.Leader && n.RaftID != "" && runs(n, target) && n.Healthy && n.LastIndex+CatchUpSlack >= v.LeaderIndex {
				return Step{Record: u, TransferTo: n.RaftID, Wait: "moving leadership to " + n.Name + " before upgrading " + todo[0].Name}
			}
		}
	}
	next := u
	next.Turn, next.Step, next.TurnAt = []string{todo[0].ID}, clusterstate.TurnInstall, v.Now.UTC()
	return Step{Record: next}
}

// nextClients drains the next batch of clients of the first pool, by name,
// that has clients on another version. A client that is down is left: it
// installs the version when it starts again.
func nextClients(u clusterstate.NomadUpgrade, target nomadver.Version, v View) Step {
	pools := map[string][]Node{}
	for _, n := range v.Nodes {
		if !n.Server && n.NomadID != "" && n.Ready && !runs(n, target) {
			pools[n.Pool] = append(pools[n.Pool], n)
		}
	}
	if len(pools) == 0 {
		next := u
		next.Stage, next.FinishedAt = clusterstate.UpgradeDone, v.Now.UTC()
		return Step{Record: next}
	}
	names := make([]string, 0, len(pools))
	for p := range pools {
		names = append(names, p)
	}
	slices.Sort(names)
	batch := pools[names[0]]
	slices.SortFunc(batch, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	batch = batch[:min(len(batch), u.Batch)]
	next := u
	next.Turn, next.Step, next.TurnAt = nil, clusterstate.TurnDrain, v.Now.UTC()
	var drain []string
	for _, n := range batch {
		next.Turn = append(next.Turn, n.ID)
		drain = append(drain, n.NomadID)
	}
	slices.Sort(next.Turn)
	return Step{Record: next, Drain: drain}
}

// newerThan names a node that runs a Nomad newer than target, which a
// roll to target would downgrade; "" when none does.
func newerThan(nodes []Node, target nomadver.Version) string {
	for _, n := range nodes {
		if got, err := nomadver.Parse(n.Version); err == nil && n.Version != "" && got.Compare(target) > 0 {
			return fmt.Sprintf("%s runs Nomad %s, newer than %s: Nomad does not support downgrades", n.Name, got, target)
		}
	}
	return ""
}
