package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadinstall"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadrun"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/systemd"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/upgrade"
)

// Rolling Nomad upgrades (internal/upgrade): upgrade nomad records the
// version every node is to run in the cluster state; the server whose
// Nomad leads drives the roll from there (upgradeLoop), a step at a time,
// recording each; every node installs the version when the record says it
// is its turn (followUpgrade), and a node that starts Nomad starts the
// version the roll has reached (convergeNomad).

const (
	// upgradeLookEvery is how often the leading server looks at a roll
	// under way.
	upgradeLookEvery = 5 * time.Second
	// upgradeRetryAfter is how long a node waits after a failed install
	// before it tries again, while its turn lasts.
	upgradeRetryAfter = 30 * time.Second
	// UpgradeTimeout bounds upgrade nomad and upgrade status on the
	// agent: the package manager's lists may be refreshed.
	UpgradeTimeout = 3 * time.Minute
	// DefaultDrainDeadline is how long a client's drain may take unless
	// -drain-deadline says otherwise.
	DefaultDrainDeadline = 5 * time.Minute
	// DefaultNodeTimeout is how long the nodes of a turn have to run the
	// new version healthy unless -node-timeout says otherwise;
	// MinNodeTimeout is the shortest: a server restarts and catches up.
	DefaultNodeTimeout = 10 * time.Minute
	MinNodeTimeout     = 30 * time.Second
)

// Routes of the upgrade commands.
const (
	UpgradeRoute       = "/v1/upgrade/nomad"
	UpgradeStatusRoute = "/v1/upgrade/status"
)

// UpgradeRequest is what upgrade nomad sends to the agent.
type UpgradeRequest struct {
	Version       string        `json:"version"`
	Batch         int           `json:"batch"`
	DrainDeadline time.Duration `json:"drain_deadline"`
	NodeTimeout   time.Duration `json:"node_timeout"`
}

// UpgradeNode is one node's Nomad as the servers see it.
type UpgradeNode struct {
	Name    string `json:"name"`
	Role    string `json:"role"` // server or client
	Pool    string `json:"pool,omitempty"`
	Version string `json:"version"` // "" when Nomad does not know it, or it is down
	Turn    bool   `json:"turn,omitempty"`
}

// UpgradeAnswer is what upgrade nomad and upgrade status report.
type UpgradeAnswer struct {
	// Upgrade is the roll recorded in the cluster state; its zero value
	// when there was none.
	Upgrade clusterstate.NomadUpgrade `json:"upgrade"`
	// Started is true when this command started the roll, false when it
	// was under way already, or when every node runs the version.
	Started bool `json:"started"`
	// Current is true when every node runs the version already.
	Current bool `json:"current,omitempty"`
	// Wait says what the roll waits for; "" when it is over or unknown.
	Wait string `json:"wait,omitempty"`
	// Turn names the nodes of the roll's turn.
	Turn []string `json:"turn,omitempty"`
	// Nodes are the nodes' versions, as Nomad's servers report them;
	// empty when this node is no server.
	Nodes []UpgradeNode `json:"nodes,omitempty"`
}

// installer installs Nomad versions on this node: from nomad_dir when
// Nomad runs as the agent's child and nomad_dir is set, else with the
// package manager, at the nomad path.
func (a *Agent) installer() nomadinstall.Installer {
	in := nomadinstall.Installer{Binary: a.cfg.Nomad}
	if a.cfg.Supervise == config.SuperviseProcess {
		in.Dir = a.cfg.NomadDir
	}
	return in
}

// parseTarget reads the version upgrade nomad is given: "1.6.3" or
// "v1.6.3", nothing else.
func parseTarget(s string) (nomadver.Version, error) {
	v, err := nomadver.Parse(s)
	if err != nil || (v.String() != s && "v"+v.String() != s) {
		return nomadver.Version{}, fmt.Errorf("%q is not a Nomad version such as 1.6.3", s)
	}
	return v, nil
}

// StartUpgrade starts a rolling upgrade of every node to Nomad
// req.Version, after checking that this server can install it, that it
// is no downgrade and that this release of the agent drives it.
func (a *Agent) StartUpgrade(ctx context.Context, req UpgradeRequest) (UpgradeAnswer, error) {
	p, err := a.serverReady()
	if err != nil {
		return UpgradeAnswer{}, err
	}
	target, err := parseTarget(req.Version)
	if err != nil {
		return UpgradeAnswer{}, err
	}
	if err := nomadver.Supported(target); err != nil {
		return UpgradeAnswer{}, errors.New(strings.TrimPrefix(err.Error(), "nomadver: "))
	}
	switch {
	case req.Batch < 1 || req.Batch > clusterstate.MaxUpgradeBatch:
		return UpgradeAnswer{}, fmt.Errorf("-batch %d is not within 1 and %d", req.Batch, clusterstate.MaxUpgradeBatch)
	case req.DrainDeadline <= 0:
		return UpgradeAnswer{}, fmt.Errorf("-drain-deadline %s must be positive", req.DrainDeadline)
	case req.NodeTimeout < MinNodeTimeout:
		return UpgradeAnswer{}, fmt.Errorf("-node-timeout %s is shorter than %s", req.NodeTimeout, MinNodeTimeout)
	case a.cfg.Supervise == config.SuperviseNone:
		return UpgradeAnswer{}, errors.New(`this agent runs no Nomad (supervise = "none"), so it cannot upgrade one: run the command on a server whose agent runs Nomad`)
	}
	if held := a.clusterState(); held != nil && held.NomadUpgrade.Active() && held.NomadUpgrade.Version != target.String() {
		return UpgradeAnswer{}, fmt.Errorf("an upgrade to Nomad %s is under way; wait until upgrade status shows it done or failed", held.NomadUpgrade.Version)
	}
	view, err := a.readUpgradeView(ctx, p)
	if err != nil {
		return UpgradeAnswer{}, err
	}
	older := 0
	for _, n := range view.Nodes {
		got, err := nomadver.Parse(n.Version)
		if err != nil || n.Version == "" {
			continue
		}
		switch got.Compare(target) {
		case 1:
			return UpgradeAnswer{}, fmt.Errorf("%s runs Nomad %s, newer than %s: Nomad does not support downgrades; restore a snapshot taken before the upgrade instead", n.Name, got, target)
		case -1:
			older++
		}
	}
	if older == 0 {
		ans := a.upgradeAnswer(view, p)
		ans.Current = true
		return ans, nil
	}
	how, err := a.installer().Check(ctx, target)
	if err != nil {
		return UpgradeAnswer{}, fmt.Errorf("this server cannot install Nomad %s: %s", target, strings.TrimPrefix(err.Error(), "nomadinstall: "))
	}
	vars, closeVars, err := a.nomadVars(p)
	if err != nil {
		return UpgradeAnswer{}, err
	}
	defer closeVars()
	u := clusterstate.NomadUpgrade{Version: target.String(), Stage: clusterstate.UpgradeServers, Batch: req.Batch, DrainDeadline: req.DrainDeadline, NodeTimeout: req.NodeTimeout, StartedAt: a.now().UTC()}
	var started bool
	st, _, err := clusterstate.Update(ctx, vars, a.cred.ClusterIDString(), func(s clusterstate.State) (clusterstate.State, bool, error) {
		a.restore(&s)
		next, changed, err := s.StartNomadUpgrade(u)
		started = changed
		return next, changed, err
	})
	if err != nil {
		return UpgradeAnswer{}, errors.New(strings.TrimPrefix(err.Error(), "clusterstate: "))
	}
	if err := a.publishClusterState(ctx, st); err != nil {
		return UpgradeAnswer{}, err
	}
	if started {
		a.log.Info("started a rolling upgrade of Nomad", "version", target.String(), "from", how, "batch", req.Batch, "drain_deadline", req.DrainDeadline, "state_version", st.Version)
	}
	ans := a.upgradeAnswer(view, p)
	ans.Started = started
	return ans, nil
}

// UpgradeStatus reports the roll recorded in the cluster state this node
// holds and, on a server, every node's version and what the roll waits
// for.
func (a *Agent) UpgradeStatus(ctx context.Context) (UpgradeAnswer, error) {
	p, err := a.serverReady()
	if err != nil {
		// Not a server: the record this node holds, without the
		// versions, which only the servers read from Nomad.
		ans := UpgradeAnswer{}
		if held := a.clusterState(); held != nil {
			ans.Upgrade = held.NomadUpgrade
			ans.Turn = memberNames(a.tr.Members(), held.NomadUpgrade.Turn)
		}
		return ans, nil
	}
	view, err := a.readUpgradeView(ctx, p)
	if err != nil {
		return UpgradeAnswer{}, err
	}
	return a.upgradeAnswer(view, p), nil
}

// upgradeAnswer describes the held roll and view.
func (a *Agent) upgradeAnswer(view upgrade.View, p plan.Plan) UpgradeAnswer {
	var ans UpgradeAnswer
	if held := a.clusterState(); held != nil {
		ans.Upgrade = held.NomadUpgrade
	}
	u := ans.Upgrade
	if u.Active() {
		ans.Wait = upgrade.Next(u, view).Wait
	}
	for _, n := range view.Nodes {
		un := UpgradeNode{Name: n.Name, Role: "client", Pool: n.Pool, Version: n.Version, Turn: u.InTurn(n.ID)}
		if n.Server {
			un.Role, un.Pool = "server", ""
		}
		if un.Turn {
			ans.Turn = append(ans.Turn, n.Name)
		}
		ans.Nodes = append(ans.Nodes, un)
	}
	return ans
}

// readUpgradeView is upgradeView through a client of its own.
func (a *Agent) readUpgradeView(ctx context.Context, p plan.Plan) (upgrade.View, error) {
	c, secret, err := a.nomadClient(p)
	if err != nil {
		return upgrade.View{}, err
	}
	defer c.Close()
	return a.upgradeView(ctx, c, secret, p)
}

// upgradeView reads what the roll needs from Nomad: the servers'
// versions and health from autopilot, the clients' from the node list;
// the agent's members name them.
func (a *Agent) upgradeView(ctx context.Context, c *api.Client, secret string, p plan.Plan) (upgrade.View, error) {
	q := (&api.QueryOptions{AuthToken: secret}).WithContext(ctx)
	health, _, err := c.Operator().AutopilotServerHealth(q)
	if err != nil {
		return upgrade.View{}, fmt.Errorf("reading autopilot's server health from Nomad: %w", err)
	}
	nodes, _, err := c.Nodes().List(q)
	if err != nil {
		return upgrade.View{}, fmt.Errorf("listing Nomad's nodes: %w", err)
	}
	byName := map[string]gossip.Member{}
	for _, m := range a.tr.Members() {
		if m.MetaErr == nil {
			byName[m.Name] = m
		}
	}
	v := upgrade.View{Now: a.now(), Healthy: health.Healthy}
	for _, s := range p.Servers {
		n := upgrade.Node{ID: s.ID, Name: s.Name, Server: true}
		for _, h := range health.Servers {
			if strings.TrimSuffix(h.Name, "."+p.Region) != s.Name {
				continue
			}
			n.Leader, n.Healthy, n.LastIndex, n.RaftID = h.Leader, h.Healthy, h.LastIndex, h.ID
			if h.SerfStatus == "alive" {
				n.Version = h.Version
			}
			if h.Leader {
				v.LeaderIndex = h.LastIndex
				if lv, err := nomadver.Parse(h.Version); err == nil {
					f, _ := nomadver.For(lv)
					v.CanTransfer = f.LeadershipTransfer
				}
			}
		}
		v.Nodes = append(v.Nodes, n)
	}
	for _, nn := range nodes {
		m, ok := byName[nn.Name]
		if !ok || p.IsServer(m.Meta.ID) {
			continue // a server's client is upgraded with it
		}
		n := upgrade.Node{
			ID: m.Meta.ID, Name: nn.Name, NomadID: nn.ID, Pool: m.Meta.Pool,
			Ready:    nn.Status == api.NodeStatusReady,
			Draining: nn.Drain,
		}
		if nn.Status != api.NodeStatusDown {
			n.Version = nn.Version
		}
		v.Nodes = append(v.Nodes, n)
	}
	slices.SortFunc(v.Nodes, func(x, y upgrade.Node) int { return strings.Compare(x.Name, y.Name) })
	return v, nil
}

// upgradeLoop drives a roll under way while this server's Nomad leads,
// until ctx ends.
func (a *Agent) upgradeLoop(ctx context.Context) {
	if !a.cred.IsServer() || a.cfg.Supervise == config.SuperviseNone {
		return
	}
	t := time.NewTicker(upgradeLookEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held := a.clusterState()
		if held == nil || !held.NomadUpgrade.Active() {
			continue
		}
		p, err := a.serverReady()
		if err != nil {
			continue
		}
		if err := a.driveUpgrade(ctx, p); err != nil && ctx.Err() == nil {
			a.log.Warn("driving the Nomad upgrade; retrying", "error", err)
		}
	}
}

// driveUpgrade takes the roll's next step when this server's Nomad leads.
func (a *Agent) driveUpgrade(ctx context.Context, p plan.Plan) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, secret, err := a.nomadClient(p)
	if err != nil {
		return err
	}
	defer c.Close()
	view, err := a.upgradeView(ctx, c, secret, p)
	if err != nil {
		return err
	}
	if i := slices.IndexFunc(view.Nodes, func(n upgrade.Node) bool { return n.ID == a.id }); i < 0 || !view.Nodes[i].Leader {
		return nil // the leader's agent drives it
	}
	vars := clusterstate.NomadVars(c, secret)
	cur, _, err := clusterstate.Load(ctx, vars, a.cred.ClusterIDString())
	if err != nil {
		return err
	}
	if !cur.NomadUpgrade.Active() {
		return nil
	}
	step := upgrade.Next(cur.NomadUpgrade, view)
	w := (&api.WriteOptions{AuthToken: secret}).WithContext(ctx)
	for _, id := range step.Drain {
		spec := &api.DrainSpec{Deadline: cur.NomadUpgrade.DrainDeadline}
		meta := map[string]string{"message": "nomad-bootstrapd: upgrading Nomad to " + cur.NomadUpgrade.Version}
		if _, err := c.Nodes().UpdateDrainOpts(id, &api.DrainOptions{DrainSpec: spec, Meta: meta}, w); err != nil {
			return fmt.Errorf("draining Nomad node %s: %w", id, err)
		}
	}
	if step.TransferTo != "" {
		a.log.Info("Nomad upgrade: handing Nomad's leadership to an upgraded server before upgrading this one", "raft_id", step.TransferTo)
		err := c.Operator().RaftTransferLeadershipByID(step.TransferTo, w)
		if err == nil {
			return nil // the next leader goes on
		}
		// The leader restarts instead, at the cost of an election.
		a.log.Warn("Nomad upgrade: Nomad did not hand its leadership over; restarting the leader instead", "error", err)
		view.CanTransfer = false
		step = upgrade.Next(cur.NomadUpgrade, view)
	}
	for _, id := range step.Eligible {
		if _, err := c.Nodes().ToggleEligibility(id, true, w); err != nil {
			return fmt.Errorf("making Nomad node %s eligible again: %w", id, err)
		}
	}
	st, changed, err := clusterstate.Update(ctx, vars, a.cred.ClusterIDString(), func(s clusterstate.State) (clusterstate.State, bool, error) {
		a.restore(&s)
		if !s.NomadUpgrade.Same(cur.NomadUpgrade) {
			return s, false, nil // moved on meanwhile: the next look decides again
		}
		return s.WithNomadUpgrade(step.Record)
	})
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	if err := a.publishClusterState(ctx, st); err != nil {
		return err
	}
	u := st.NomadUpgrade
	switch {
	case u.Stage == clusterstate.UpgradeFailed:
		a.log.Error("the Nomad upgrade stopped", "version", u.Version, "reason", u.Failure, "upgraded", u.Upgraded)
	case u.Stage == clusterstate.UpgradeDone:
		a.log.Info("the Nomad upgrade is done", "version", u.Version, "upgraded", u.Upgraded)
	case len(u.Turn) > 0:
		a.log.Info("Nomad upgrade", "version", u.Version, "stage", u.Stage, "step", u.Step, "turn", memberNames(a.tr.Members(), u.Turn))
	default:
		a.log.Info("Nomad upgrade", "version", u.Version, "stage", u.Stage, "upgraded", u.Upgraded)
	}
	return nil
}

// memberNames returns the names of the members with the node IDs ids, in
// the order of ids; an ID no member has stands for itself.
func memberNames(members []gossip.Member, ids []string) []string {
	var names []string
	for _, id := range ids {
		name := id
		if i := slices.IndexFunc(members, func(m gossip.Member) bool { return m.MetaErr == nil && m.Meta.ID == id }); i >= 0 {
			name = members[i].Name
		}
		names = append(names, name)
	}
	return names
}

// upgradeTarget returns the version this node is to run by the roll the
// cluster state records, and whether it is to install it now, running
// another: in its turn, or when starting Nomad (starting) once the roll
// reached its role.
func (a *Agent) upgradeTarget(p plan.Plan, starting bool, running nomadver.Version) (nomadver.Version, bool) {
	held := a.clusterState()
	if held == nil {
		return nomadver.Version{}, false
	}
	u := held.NomadUpgrade
	target, err := u.Target()
	if err != nil || running.Compare(target) == 0 {
		return nomadver.Version{}, false
	}
	switch {
	case u.InTurn(a.id) && u.Step == clusterstate.TurnInstall:
		return target, true
	case !starting:
		return nomadver.Version{}, false
	case u.Stage == clusterstate.UpgradeDone, u.Stage == clusterstate.UpgradeClients:
		return target, true
	case u.Stage == clusterstate.UpgradeServers:
		return target, p.IsServer(a.id)
	}
	return nomadver.Version{}, false
}

// installNomad installs target and makes the runner, and the supervised
// process when there is one, use it; the running Nomad is left alone.
func (a *Agent) installNomad(ctx context.Context, target nomadver.Version, sup *nomadrun.Process) error {
	from := a.nomad.Features().Version
	path, err := a.installer().Install(ctx, target)
	if err != nil {
		return err
	}
	feat, err := nomadver.For(target)
	if err != nil {
		return err
	}
	a.nomad.Use(path, feat)
	if sup != nil {
		sup.Use(path)
	}
	a.log.Info("installed Nomad", "version", target.String(), "from", from.String(), "path", path)
	return nil
}

// convergeNomad installs, before Nomad starts, the version the roll has
// reached for this node; it reports whether it installed one. A failure
// is shown, and Nomad starts with the version it has.
func (a *Agent) convergeNomad(ctx context.Context, p plan.Plan) bool {
	target, ok := a.upgradeTarget(p, true, a.nomad.Features().Version)
	if !ok {
		return false
	}
	if err := a.installNomad(ctx, target, nil); err != nil {
		a.warn("upgrade", fmt.Sprintf("cannot install Nomad %s, which the cluster runs; starting Nomad %s: %v", target, a.nomad.Features().Version, err))
		return false
	}
	a.clearWarning("upgrade")
	return true
}

// followUpgrade installs the new version and restarts Nomad on it when
// the roll says it is this node's turn; running is the version Nomad was
// started with, and retryAt spaces failed attempts. It runs on the
// pipeline's goroutine.
func (a *Agent) followUpgrade(ctx context.Context, p plan.Plan, sup *nomadrun.Process, units *systemd.Manager, restart func() error, running *nomadver.Version, retryAt *time.Time) {
	target, ok := a.upgradeTarget(p, false, *running)
	if !ok || a.now().Before(*retryAt) {
		return
	}
	err := a.installNomad(ctx, target, sup)
	if err == nil {
		if _, err = a.writeNomadConfig(p); err == nil {
			switch {
			case units != nil:
				// The unit may change with the version (its type).
				var m *systemd.Manager
				if m, err = a.nomad.StartUnit(ctx, true); err == nil {
					m.Close()
				}
			default:
				err = restartAndWait(ctx, sup, restart)
			}
		}
	}
	if err != nil {
		*retryAt = a.now().Add(upgradeRetryAfter)
		a.warn("upgrade", fmt.Sprintf("upgrading Nomad to %s for the cluster's rolling upgrade; retrying in %s: %v", target, upgradeRetryAfter, err))
		return
	}
	*running = target
	a.clearWarning("upgrade")
	a.log.Info("restarted Nomad on the new version for the rolling upgrade", "version", target.String())
}
