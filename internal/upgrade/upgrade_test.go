package upgrade

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// Node IDs, in the order of their names.
const (
	idS1 = "10000000-0000-4000-8000-000000000001"
	idS2 = "10000000-0000-4000-8000-000000000002"
	idS3 = "10000000-0000-4000-8000-000000000003"
	idC1 = "20000000-0000-4000-8000-000000000001"
	idC2 = "20000000-0000-4000-8000-000000000002"
	idC3 = "20000000-0000-4000-8000-000000000003"
)

// cluster is three servers (s2 leads) and three clients (c1 and c2 in
// pool batch, c3 in pool warm), every one on from.
func cluster(from string) View {
	v := View{Now: t0, Healthy: true, LeaderIndex: 1000}
	for i, id := range []string{idS1, idS2, idS3} {
		v.Nodes = append(v.Nodes, Node{ID: id, Name: "s" + string(rune('1'+i)), Server: true, Leader: id == idS2, RaftID: "raft-" + id[len(id)-1:], Version: from, Healthy: true, LastIndex: 1000})
	}
	for i, id := range []string{idC1, idC2, idC3} {
		pool := "batch"
		if id == idC3 {
			pool = "warm"
		}
		v.Nodes = append(v.Nodes, Node{ID: id, Name: "c" + string(rune('1'+i)), Version: from, NomadID: "nomad-" + id[len(id)-1:], Pool: pool, Ready: true})
	}
	return v
}

func (v View) with(id string, change func(n *Node)) View {
	v.Nodes = slices.Clone(v.Nodes)
	for i := range v.Nodes {
		if v.Nodes[i].ID == id {
			change(&v.Nodes[i])
		}
	}
	return v
}

func started() clusterstate.NomadUpgrade {
	return clusterstate.NomadUpgrade{Version: "1.6.3", Stage: clusterstate.UpgradeServers, Batch: 2, DrainDeadline: 5 * time.Minute, NodeTimeout: 10 * time.Minute, StartedAt: t0}
}

func inTurn(u clusterstate.NomadUpgrade, step string, at time.Time, ids ...string) clusterstate.NomadUpgrade {
	u.Turn, u.Step, u.TurnAt = ids, step, at
	return u
}

func TestNext(t *testing.T) {
	clients := started()
	clients.Stage = clusterstate.UpgradeClients
	clients.Upgraded = 3
	upgradedTo := func(v View, version string, ids ...string) View {
		for _, id := range ids {
			v = v.with(id, func(n *Node) { n.Version = version })
		}
		return v
	}
	upgraded := func(v View, ids ...string) View { return upgradedTo(v, "1.6.3", ids...) }
	to171 := started()
	to171.Version = "1.7.1"
	later := t0.Add(time.Minute)
	tests := []struct {
		name     string
		u        clusterstate.NomadUpgrade
		v        View
		want     clusterstate.NomadUpgrade
		drain    []string
		eligible []string
		transfer string
		wait     string // in Step.Wait, or in the failure when the roll fails
	}{
		{name: "a follower first, by name",
			u: started(), v: cluster("1.6.0"),
			want: inTurn(started(), clusterstate.TurnInstall, t0, idS1)},
		{name: "then the other follower",
			u: started(), v: upgraded(cluster("1.6.0"), idS1),
			want: inTurn(started(), clusterstate.TurnInstall, t0, idS3)},
		{name: "the leader last",
			u: started(), v: upgraded(cluster("1.6.0"), idS1, idS3),
			want: inTurn(started(), clusterstate.TurnInstall, t0, idS2)},
		{name: "the leader hands leadership to an upgraded server when its Nomad can",
			u: to171, v: func() View { v := upgradedTo(cluster("1.7.0"), "1.7.1", idS1, idS3); v.CanTransfer = true; return v }(),
			want: to171, transfer: "raft-1", wait: "moving leadership to s1 before upgrading s2"},
		{name: "not to an upgraded server behind the leader's log",
			u: to171, v: func() View {
				v := upgradedTo(cluster("1.7.0"), "1.7.1", idS1, idS3).with(idS1, func(n *Node) { n.LastIndex = 10 })
				v.CanTransfer = true
				return v
			}(),
			want: to171, transfer: "raft-3", wait: "moving leadership to s3"},
		{name: "with no server to hand leadership to, the leader restarts",
			u: to171, v: func() View {
				v := upgradedTo(cluster("1.7.0"), "1.7.1", idS1, idS3).with(idS1, func(n *Node) { n.Healthy = false }).with(idS3, func(n *Node) { n.Healthy = false })
				v.CanTransfer = true
				return v
			}(),
			want: inTurn(to171, clusterstate.TurnInstall, t0, idS2)},
		{name: "no server before autopilot is healthy",
			u: started(), v: func() View { v := cluster("1.6.0"); v.Healthy = false; return v }(),
			want: started(), wait: "autopilot"},
		{name: "a server still on the old version",
			u: inTurn(started(), clusterstate.TurnInstall, t0, idS1), v: cluster("1.6.0"),
			want: inTurn(started(), clusterstate.TurnInstall, t0, idS1), wait: "s1 to run Nomad 1.6.3 (runs 1.6.0)"},
		{name: "a server back but not healthy",
			u: inTurn(started(), clusterstate.TurnInstall, t0, idS1), v: upgraded(cluster("1.6.0"), idS1).with(idS1, func(n *Node) { n.Healthy = false }),
			want: inTurn(started(), clusterstate.TurnInstall, t0, idS1), wait: "s1 to be healthy"},
		{name: "a server behind the leader's log",
			u: inTurn(started(), clusterstate.TurnInstall, t0, idS1), v: upgraded(cluster("1.6.0"), idS1).with(idS1, func(n *Node) { n.LastIndex = 900 }),
			want: inTurn(started(), clusterstate.TurnInstall, t0, idS1), wait: "catch up"},
		{name: "a server within the slack of the leader's log",
			u: inTurn(started(), clusterstate.TurnInstall, t0, idS1), v: upgraded(cluster("1.6.0"), idS1).with(idS1, func(n *Node) { n.LastIndex = 1000 - CatchUpSlack }),
			want: func() clusterstate.NomadUpgrade { u := started(); u.Upgraded = 1; return u }()},
		{name: "a server that never comes back stops the roll",
			u: inTurn(started(), clusterstate.TurnInstall, t0, idS1), v: func() View { v := cluster("1.6.0"); v.Now = t0.Add(10*time.Minute + time.Second); return v }(),
			want: started().Failed("x", t0.Add(10*time.Minute+time.Second)), wait: "waited 10m0s for s1 to run Nomad 1.6.3"},
		{name: "every server upgraded: the clients",
			u: started(), v: upgraded(cluster("1.6.0"), idS1, idS2, idS3),
			want: func() clusterstate.NomadUpgrade { u := started(); u.Stage = clusterstate.UpgradeClients; return u }()},
		{name: "a server newer than the target stops the roll",
			u: started(), v: cluster("1.6.0").with(idS3, func(n *Node) { n.Version = "1.7.0" }),
			want: started().Failed("x", t0), wait: "s3 runs Nomad 1.7.0, newer than 1.6.3"},
		{name: "the first pool's batch is drained",
			u: clients, v: upgraded(cluster("1.6.0"), idS1, idS2, idS3),
			want: inTurn(clients, clusterstate.TurnDrain, t0, idC1, idC2), drain: []string{"nomad-1", "nomad-2"}},
		{name: "a batch is no larger than the pool's clients left",
			u: clients, v: upgraded(cluster("1.6.0"), idS1, idS2, idS3, idC1),
			want: inTurn(clients, clusterstate.TurnDrain, t0, idC2), drain: []string{"nomad-2"}},
		{name: "then the next pool",
			u: clients, v: upgraded(cluster("1.6.0"), idS1, idS2, idS3, idC1, idC2),
			want: inTurn(clients, clusterstate.TurnDrain, t0, idC3), drain: []string{"nomad-3"}},
		{name: "a client that is down is left for when it starts",
			u: clients, v: upgraded(cluster("1.6.0"), idS1, idS2, idS3, idC1, idC2).with(idC3, func(n *Node) { n.Ready = false }),
			want: func() clusterstate.NomadUpgrade {
				u := clients
				u.Stage, u.FinishedAt = clusterstate.UpgradeDone, t0
				return u
			}()},
		{name: "a drain under way",
			u: inTurn(clients, clusterstate.TurnDrain, t0, idC1, idC2), v: cluster("1.6.0").with(idC2, func(n *Node) { n.Draining = true }),
			want: inTurn(clients, clusterstate.TurnDrain, t0, idC1, idC2), wait: "draining c2"},
		{name: "a drain done: install",
			u: inTurn(clients, clusterstate.TurnDrain, t0, idC1, idC2), v: func() View { v := cluster("1.6.0"); v.Now = later; return v }(),
			want: inTurn(clients, clusterstate.TurnInstall, later, idC1, idC2)},
		{name: "a drain past its deadline stops the roll",
			u: inTurn(clients, clusterstate.TurnDrain, t0, idC1), v: func() View {
				v := cluster("1.6.0").with(idC1, func(n *Node) { n.Draining = true })
				v.Now = t0.Add(8 * time.Minute)
				return v
			}(),
			want: clients.Failed("x", t0.Add(8*time.Minute)), wait: "the drain of c1 did not finish within 7m0s"},
		{name: "a client of the batch not ready yet",
			u: inTurn(clients, clusterstate.TurnInstall, t0, idC1, idC2), v: upgraded(cluster("1.6.0"), idC1, idC2).with(idC2, func(n *Node) { n.Ready = false }),
			want: inTurn(clients, clusterstate.TurnInstall, t0, idC1, idC2), wait: "c2 to be ready"},
		{name: "a batch upgraded is made eligible",
			u: inTurn(clients, clusterstate.TurnInstall, t0, idC1, idC2), v: upgraded(cluster("1.6.0"), idC1, idC2),
			want: func() clusterstate.NomadUpgrade { u := clients; u.Upgraded = 5; return u }(), eligible: []string{"nomad-1", "nomad-2"}},
		{name: "every client upgraded: done",
			u: clients, v: cluster("1.6.3"),
			want: func() clusterstate.NomadUpgrade {
				u := clients
				u.Stage, u.FinishedAt = clusterstate.UpgradeDone, t0
				return u
			}()},
		{name: "a node of the turn Nomad does not know",
			u: inTurn(clients, clusterstate.TurnInstall, t0, "30000000-0000-4000-8000-000000000001"), v: cluster("1.6.3"),
			want: inTurn(clients, clusterstate.TurnInstall, t0, "30000000-0000-4000-8000-000000000001"), wait: "runs nothing Nomad knows of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Next(tt.u, tt.v)
			want := tt.want
			if want.Stage == clusterstate.UpgradeFailed {
				if got.Record.Stage != clusterstate.UpgradeFailed || !strings.Contains(got.Record.Failure, tt.wait) {
					t.Fatalf("record %+v, want a failure containing %q", got.Record, tt.wait)
				}
				want.Failure = got.Record.Failure
			} else if !strings.Contains(got.Wait, tt.wait) || (tt.wait == "") != (got.Wait == "") {
				t.Fatalf("wait %q, want one containing %q", got.Wait, tt.wait)
			}
			if _, changed, err := (clusterstate.State{}).WithNomadUpgrade(got.Record); err != nil && !changed {
				t.Fatalf("an invalid record: %v", err)
			}
			if !got.Record.Same(want) {
				t.Fatalf("record\n%+v\nwant\n%+v", got.Record, want)
			}
			if !slices.Equal(got.Drain, tt.drain) || !slices.Equal(got.Eligible, tt.eligible) || got.TransferTo != tt.transfer {
				t.Fatalf("drain %v eligible %v transfer %q, want %v %v %q", got.Drain, got.Eligible, got.TransferTo, tt.drain, tt.eligible, tt.transfer)
			}
		})
	}
}

// TestRoll runs a whole roll: every step Next takes from a cluster that
// does what the step says, until it is done.
func TestRoll(t *testing.T) {
	v, u := cluster("1.6.0"), started()
	var order []string
	for range 100 {
		v.Now = v.Now.Add(10 * time.Second)
		st := Next(u, v)
		if st.Record.Stage == clusterstate.UpgradeFailed {
			t.Fatal(st.Record.Failure)
		}
		if st.Record.Stage == clusterstate.UpgradeDone {
			if st.Record.Upgraded != 6 {
				t.Fatalf("upgraded %d nodes, want 6", st.Record.Upgraded)
			}
			want := []string{"s1", "s3", "s2", "c1", "c2", "c3"}
			if !slices.Equal(order, want) {
				t.Fatalf("order %v, want %v", order, want)
			}
			return
		}
		// The nodes of a new install turn upgrade; a drain is done by
		// the next look.
		if st.Record.Step == clusterstate.TurnInstall && st.Record.TurnAt.Equal(v.Now) {
			for _, id := range st.Record.Turn {
				v = v.with(id, func(n *Node) { n.Version = "1.6.3"; order = append(order, n.Name) })
			}
		}
		u = st.Record
	}
	t.Fatalf("no end after 100 steps: %+v", u)
}
