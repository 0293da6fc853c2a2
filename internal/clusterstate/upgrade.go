package clusterstate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"
)

// Stages of a rolling Nomad upgrade.
const (
	// UpgradeServers: the servers are upgraded, one at a time, the
	// leader last.
	UpgradeServers = "servers"
	// UpgradeClients: every server runs the new version; the clients are
	// upgraded pool by pool, in batches, each drained first.
	UpgradeClients = "clients"
	// UpgradeDone: every node runs the new version.
	UpgradeDone = "done"
	// UpgradeFailed: a node did not come back healthy on the new
	// version; the roll stopped there, Failure says why.
	UpgradeFailed = "failed"
)

// Steps of a node's turn in a rolling upgrade.
const (
	// TurnDrain: the clients of the turn are being drained.
	TurnDrain = "drain"
	// TurnInstall: the nodes of the turn install the new version and
	// restart Nomad.
	TurnInstall = "install"
)

// Bounds of an upgrade record, so that it fits a gossip message beside
// the rest of the state.
const (
	// MaxUpgradeBatch is the most nodes one turn upgrades at once.
	MaxUpgradeBatch = 8
	// maxFailure is the longest failure message kept, in bytes of
	// printable ASCII (Failed replaces anything else).
	maxFailure = 256
)

// NomadUpgrade is a rolling upgrade of Nomad across the cluster: the
// version every node is to run, and how far the roll got. The server
// whose Nomad leads drives it; every node reads its own turn from it.
type NomadUpgrade struct {
	// Version is the Nomad version every node is to run ("1.6.3").
	Version string `json:"version"`
	// Stage is UpgradeServers, UpgradeClients, UpgradeDone or
	// UpgradeFailed.
	Stage string `json:"stage"`
	// Batch is how many clients of one pool are upgraded at once.
	Batch int `json:"batch"`
	// DrainDeadline is how long a client's drain may take before Nomad
	// stops its remaining allocations.
	DrainDeadline time.Duration `json:"drain_deadline"`
	// NodeTimeout is how long the nodes of a turn have to run the new
	// version healthy once told to install it.
	NodeTimeout time.Duration `json:"node_timeout"`
	// Turn are the IDs of the nodes being upgraded now, in ID order: one
	// server, or a batch of clients of one pool.
	Turn []string `json:"turn,omitempty"`
	// Step is TurnDrain or TurnInstall while Turn is not empty.
	Step string `json:"step,omitempty"`
	// TurnAt is when the turn's step began.
	TurnAt time.Time `json:"turn_at,omitzero"`
	// Upgraded counts the nodes the roll upgraded so far.
	Upgraded int `json:"upgraded"`
	// Failure says why the roll stopped, in stage UpgradeFailed.
	Failure string `json:"failure,omitempty"`
	// StartedAt is when the roll began; FinishedAt when it was done or
	// failed (zero before).
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Active reports whether the roll is under way: neither done nor failed.
func (u NomadUpgrade) Active() bool {
	return u.Stage == UpgradeServers || u.Stage == UpgradeClients
}

// Target returns the version the roll installs.
func (u NomadUpgrade) Target() (nomadver.Version, error) {
	return nomadver.Parse(u.Version)
}

// InTurn reports whether node id is in the roll's current turn.
func (u NomadUpgrade) InTurn(id string) bool {
	_, ok := slices.BinarySearch(u.Turn, id)
	return ok
}

func (u NomadUpgrade) validate() error {
	if u.Version == "" && u.Stage == "" {
		return nil // no upgrade ever
	}
	v, err := nomadver.Parse(u.Version)
	switch {
	case err != nil || v.String() != u.Version:
		return fmt.Errorf("clusterstate: Nomad upgrade version %q is not a version such as 1.6.3", u.Version)
	case !slices.Contains([]string{UpgradeServers, UpgradeClients, UpgradeDone, UpgradeFailed}, u.Stage):
		return fmt.Errorf("clusterstate: Nomad upgrade stage %q is not servers, clients, done or failed", u.Stage)
	case u.Batch < 1 || u.Batch > MaxUpgradeBatch:
		return fmt.Errorf("clusterstate: Nomad upgrade batch %d is not within 1 and %d", u.Batch, MaxUpgradeBatch)
	case u.DrainDeadline < 0:
		return errors.New("clusterstate: Nomad upgrade drain deadline is negative")
	case u.NodeTimeout <= 0:
		return errors.New("clusterstate: Nomad upgrade node timeout is not positive")
	case len(u.Turn) > MaxUpgradeBatch:
		return fmt.Errorf("clusterstate: Nomad upgrade turn of %d nodes exceeds %d", len(u.Turn), MaxUpgradeBatch)
	case len(u.Turn) > 0 && !u.Active():
		return errors.New("clusterstate: a Nomad upgrade that is over has a turn")
	case len(u.Turn) > 0 && u.Step != TurnDrain && u.Step != TurnInstall:
		return fmt.Errorf("clusterstate: Nomad upgrade step %q is not drain or install", u.Step)
	case len(u.Turn) == 0 && u.Step != "":
		return errors.New("clusterstate: Nomad upgrade step without a turn")
	case u.Upgraded < 0:
		return errors.New("clusterstate: Nomad upgrade counts fewer than no nodes")
	case len(u.Failure) > maxFailure || strings.IndexFunc(u.Failure, notPrintable) >= 0:
		return fmt.Errorf("clusterstate: Nomad upgrade failure is not printable ASCII of at most %d bytes", maxFailure)
	case (u.Stage == UpgradeFailed) != (u.Failure != ""):
		return errors.New("clusterstate: a failed Nomad upgrade, and only one, says why")
	case u.StartedAt.IsZero():
		return errors.New("clusterstate: Nomad upgrade has no start time")
	}
	for i, id := range u.Turn {
		if p, err := uuid.Parse(id); err != nil || p.String() != id {
			return fmt.Errorf("clusterstate: Nomad upgrade turn: node ID %q is not a canonical UUID", id)
		}
		if i > 0 && u.Turn[i-1] >= id {
			return errors.New("clusterstate: Nomad upgrade turn is not in ID order, or repeats a node")
		}
	}
	return nil
}

func notPrintable(r rune) bool { return r < ' ' || r > '~' }

// Failed returns u stopped by why, at at; why is kept as printable ASCII
// of at most maxFailure bytes.
func (u NomadUpgrade) Failed(why string, at time.Time) NomadUpgrade {
	why = strings.Map(func(r rune) rune {
		if notPrintable(r) {
			return '?'
		}
		return r
	}, why)
	if len(why) > maxFailure {
		why = why[:maxFailure-3] + "..."
	}
	u.Stage, u.Failure, u.Turn, u.Step, u.TurnAt, u.FinishedAt = UpgradeFailed, why, nil, "", time.Time{}, at.UTC()
	return u
}

// StartNomadUpgrade returns s recording a new roll u, with its version
// raised, and true; or s and false when s records that roll under way
// already. A roll to another version while one is under way is refused.
func (s State) StartNomadUpgrade(u NomadUpgrade) (State, bool, error) {
	if cur := s.NomadUpgrade; cur.Active() {
		if cur.Version == u.Version {
			return s, false, nil
		}
		return s, false, fmt.Errorf("clusterstate: an upgrade to Nomad %s is under way; wait until it is done (upgrade status) before starting another", cur.Version)
	}
	if u.Stage != UpgradeServers || len(u.Turn) != 0 || u.Upgraded != 0 {
		return s, false, errors.New("clusterstate: a new Nomad upgrade starts with the servers, with no turn")
	}
	return s.WithNomadUpgrade(u)
}

// WithNomadUpgrade returns s recording u, with its version raised, and
// true; or s and false when s records u already.
func (s State) WithNomadUpgrade(u NomadUpgrade) (State, bool, error) {
	if err := u.validate(); err != nil {
		return s, false, err
	}
	if u.Same(s.NomadUpgrade) {
		return s, false, nil
	}
	next := s.clone()
	next.NomadUpgrade = u
	next.NomadUpgrade.Turn = slices.Clone(u.Turn)
	next.Version++
	return next, true, nil
}

// Same reports whether u and o record the same roll at the same step.
func (u NomadUpgrade) Same(o NomadUpgrade) bool {
	return u.Version == o.Version && u.Stage == o.Stage && u.Batch == o.Batch && u.DrainDeadline == o.DrainDeadline && u.NodeTimeout == o.NodeTimeout &&
		slices.Equal(u.Turn, o.Turn) && u.Step == o.Step && u.TurnAt.Equal(o.TurnAt) && u.Upgraded == o.Upgraded &&
		u.Failure == o.Failure && u.StartedAt.Equal(o.StartedAt) && u.FinishedAt.Equal(o.FinishedAt)
}
