package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadrun"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// Recovery from the loss of a majority of the servers (recover): the
// survivors can neither agree on a successor plan nor give Nomad a leader.
// On a surviving server, and only once an operator confirmed that the
// others are lost for good, the agent
//  1. writes Nomad's raft/peers.json naming this server alone and restarts
//     its Nomad, as Nomad's outage guide prescribes, so that it leads a
//     cluster of one with all its data;
//  2. proposes a recovery plan (agree.Node.Recover) that gives the lost
//     servers' seats to live holders of the server token, agreed and
//     signed by its own servers, whose Nomad then joins this one.
// Either step is skipped when it is done already, so running it again
// finishes a recovery cut short.

// RecoverRoute is the control socket's route of recover.
const RecoverRoute = "/v1/recover"

// RecoverTimeout bounds recover on the agent: the plan's rounds, Nomad's
// restart and its election.
const RecoverTimeout = 5 * time.Minute

// RecoverRequest is what recover sends to the agent.
type RecoverRequest struct {
	// Confirm carries the recovery out; without it the agent only says
	// what it would do.
	Confirm bool `json:"confirm"`
}

// RecoverAnswer is what recover reports.
type RecoverAnswer struct {
	Done bool `json:"done"` // false for what it would do
	// Lost are the plan's servers that are not alive.
	Lost []string `json:"lost"`
	// Plan is the recovery plan's epoch and servers, when the plan step
	// runs (or ran).
	Epoch   uint64   `json:"epoch,omitempty"`
	Servers []string `json:"servers,omitempty"`
	// Peers is what peers.json names, when Nomad's step runs (or ran).
	Peers []nomadrun.RaftPeer `json:"peers,omitempty"`
	// Leader is Nomad's leader at the end.
	Leader string `json:"leader,omitempty"`
}

// Recover recovers the cluster from the loss of a majority of its
// servers, or, without confirm, says how it would.
func (a *Agent) Recover(ctx context.Context, confirm bool) (RecoverAnswer, error) {
	a.mu.Lock()
	p := a.plan
	a.mu.Unlock()
	switch {
	case p == nil:
		return RecoverAnswer{}, errors.New("no plan is committed yet: there is no cluster to recover")
	case !p.IsServer(a.id) || !a.cred.IsServer():
		return RecoverAnswer{}, fmt.Errorf("recover runs on a surviving Nomad server; %s is not a server of plan epoch %d (servers: %s)",
			a.name, p.Epoch, strings.Join(p.ServerNames(), ", "))
	}
	cur := p.Clone()
	var ans RecoverAnswer
	lost, err := a.lostServers(cur)
	if err != nil {
		return RecoverAnswer{}, err
	}
	for _, s := range cur.Servers {
		if slices.Contains(lost, s.ID) {
			ans.Lost = append(ans.Lost, s.Name)
		}
	}
	needPlan := len(lost) > 0
	leader, err := a.nomadLeader(cur)
	if err != nil {
		return RecoverAnswer{}, err
	}
	needNomad := leader == ""
	switch {
	case !needPlan && !needNomad:
		return RecoverAnswer{}, fmt.Errorf("nothing to recover: a majority of the servers of plan epoch %d are alive and Nomad's leader is %s", cur.Epoch, leader)
	case !needPlan:
		// Nomad's servers may be electing, or their agents alive while
		// Nomad is not: forcing a cluster of one would split it.
		return RecoverAnswer{}, fmt.Errorf("no Nomad leader yet, but a majority of the servers of plan epoch %d are alive: they elect one on their own; see status on each of them", cur.Epoch)
	case !needNomad:
		// Either this server's recovery of Nomad is done (it leads a
		// cluster of one), or the lost servers' Nomad still runs.
		if peers, err := a.raftPeers(cur); err != nil || len(peers) != 1 {
			return RecoverAnswer{}, fmt.Errorf("this server's Nomad still follows the leader %s, with the raft peers %v: the lost servers' Nomad still runs although their agents are not alive; start their agents rather than recover", leader, peers)
		}
	}
	if needPlan {
		next, err := a.recoveryOf(ctx, lost)
		if err != nil {
			return RecoverAnswer{}, err
		}
		ans.Epoch, ans.Servers = next.Epoch, next.ServerNames()
	}
	if needNomad {
		self, err := a.raftSelf(cur)
		if err != nil {
			return RecoverAnswer{}, err
		}
		ans.Peers = []nomadrun.RaftPeer{self}
	}
	if !confirm {
		return ans, nil
	}

	// Nomad first: the new servers start their Nomad once the plan is
	// committed, and must find this one leading already. One that joined
	// it before its restart could be left out of its cluster.
	if needNomad {
		a.log.Warn("writing Nomad's raft/peers.json with this server alone and restarting Nomad, as the operator confirmed", "peers", ans.Peers[0].Address)
		if err := nomadrun.WritePeers(a.paths.NomadDataDir(), ans.Peers); err != nil {
			return ans, err
		}
		if err := a.restartNomad(ctx, cur); err != nil {
			return ans, err
		}
	}
	if needPlan {
		if err := a.commitRecovery(ctx, cur, lost); err != nil {
			return ans, err
		}
	}
	if ans.Leader, err = a.nomadLeader(cur); err != nil || ans.Leader == "" {
		return ans, fmt.Errorf("no Nomad leader after the recovery (%v): see the log of %s", err, a.name)
	}
	ans.Done = true
	a.log.Info("recovered the cluster", "lost", strings.Join(ans.Lost, ","), "servers", strings.Join(ans.Servers, ","), "leader", ans.Leader)
	return ans, nil
}

// lostServers returns the IDs of cur's servers to recover without: those
// not alive in gossip when they are a majority. A minority that is down
// returns none: the survivors replace it on their own after
// server_replace_after. A lost server must have been down for
// server_replace_after, as the voters on the recovery check too.
func (a *Agent) lostServers(cur plan.Plan) ([]string, error) {
	alive := a.aliveNames()
	var lost []string
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range cur.Servers {
		if alive[s.Name] {
			continue
		}
		if since, ok := a.downSince[s.Name]; ok && !since.IsZero() && a.now().Sub(since) < a.cfg.ServerReplaceAfter {
			return nil, fmt.Errorf("server %s has been down for %s only: recover once it has been down for server_replace_after (%s), which the other servers check too",
				s.Name, a.now().Sub(since).Round(time.Second), a.cfg.ServerReplaceAfter)
		}
		lost = append(lost, s.ID)
	}
	if len(lost) <= (len(cur.Servers)-1)/2 {
		return nil, nil
	}
	return lost, nil
}

// recoveryOf asks the agreement for the recovery plan of lost, on the
// loop. Nothing reads next or refused once onLoop gave up on ctx.
func (a *Agent) recoveryOf(ctx context.Context, lost []string) (plan.Plan, error) {
	var next plan.Plan
	var refused error
	if err := a.onLoop(ctx, func() { next, refused = a.proto.RecoveryOf(lost) }); err != nil {
		return plan.Plan{}, err
	}
	return next, refused
}

// commitRecovery proposes the recovery of lost and waits until a plan
// after cur is committed.
func (a *Agent) commitRecovery(ctx context.Context, cur plan.Plan, lost []string) error {
	var refused error
	if err := a.onLoop(ctx, func() { refused = a.proto.Recover(a.now(), lost) }); err != nil {
		return err
	}
	if refused != nil {
		return refused
	}
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		a.mu.Lock()
		p := a.plan
		a.mu.Unlock()
		if p != nil && p.Epoch > cur.Epoch {
			return nil
		}
		select {
		case <-wait.Done():
			return fmt.Errorf("the recovery plan was not committed within a minute: the new servers must see the lost ones down for server_replace_after; see the logs of %s and of the new servers", a.name)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// onLoop runs fn on the agent's event loop and waits for it, or for ctx.
func (a *Agent) onLoop(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	if !a.ev.post(func() { defer close(done); fn() }) {
		return errors.New("the agent is too busy; try again")
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the agent's event loop did not answer: %w", context.Cause(ctx))
	}
}

// nomadLeader returns the RPC address of the leader this server's Nomad
// knows, or "" when it knows none.
func (a *Agent) nomadLeader(p plan.Plan) (string, error) {
	c, err := a.nomad.ClientWithin(p, a.advertise, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	leader, err := c.Status().Leader()
	if err != nil {
		return "", nil // no leader: Nomad answers 500 "No cluster leader"
	}
	return leader, nil
}

// raftServers returns the servers of Nomad's Raft configuration, as this
// server knows it (a stale read: it needs no leader).
func (a *Agent) raftServers(p plan.Plan) ([]*api.RaftServer, error) {
	c, secret, err := a.nomadClient(p)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cfg, err := c.Operator().RaftGetConfiguration(&api.QueryOptions{AllowStale: true, AuthToken: secret})
	if err != nil {
		return nil, err
	}
	return cfg.Servers, nil
}

// raftPeers returns the addresses of the servers in Nomad's Raft
// configuration, as this server knows it.
func (a *Agent) raftPeers(p plan.Plan) ([]string, error) {
	servers, err := a.raftServers(p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range servers {
		out = append(out, s.Address)
	}
	return out, nil
}

// raftSelf returns this server's entry of Nomad's Raft configuration: its
// node ID, and its RPC address as the configuration has it, else as the
// agent advertises it.
func (a *Agent) raftSelf(p plan.Plan) (nomadrun.RaftPeer, error) {
	id, err := nomadrun.ServerNodeID(a.paths.NomadDataDir())
	if err != nil {
		return nomadrun.RaftPeer{}, err
	}
	self := nomadrun.RaftPeer{ID: id, Address: net.JoinHostPort(a.advertise, "4647")}
	servers, _ := a.raftServers(p) // none known: the advertised address
	for _, s := range servers {
		if s.ID == id {
			self.Address = s.Address
		}
	}
	return self, nil
}
