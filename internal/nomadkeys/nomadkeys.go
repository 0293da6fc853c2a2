// Package nomadkeys rolls Nomad's gossip encryption key (the servers' serf
// keyring, server.encrypt) over without restarting a server, through
// Nomad's own keyring API: the new key is installed on every server, then
// made the one they encrypt with, then the old one is removed — as
// `nomad operator gossip keyring` does by hand.
//
// The keys are kept in a Nomad Variable of this tool's that only the
// management token reads, written with check-and-set; it records how far a
// rotation got, so that one cut short (an agent stopped, a server down) is
// taken up where it stopped, and a server that was down or is new is given
// the current keys before its Nomad starts (WriteFile) or while it runs
// (Heal). Generation 0 is the key every server derives from the server
// token, which the Variable does not hold.
package nomadkeys

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
)

// VarPath is the Nomad Variable (namespace default) that holds the keys.
const VarPath = "nomad-bootstrapd/keys"

// varItem is the Variable's item that holds Keys as JSON.
const varItem = "nomad_gossip"

// Phase is how far the rotation to a generation got.
type Phase string

// The phases of a rotation, in order.
const (
	// PhaseInstall: the new key is being installed beside the old one,
	// which the servers still encrypt with.
	PhaseInstall Phase = "install"
	// PhaseUse: every server holds the new key; they are switched to it,
	// and the old one is then removed.
	PhaseUse Phase = "use"
	// PhaseDone: the servers hold the new key only.
	PhaseDone Phase = "done"
)

// Keys is what the Variable holds.
type Keys struct {
	// Generation is raised by one with every rotation.
	Generation uint32 `json:"generation"`
	// Key is the key of Generation (standard base64 of 32 bytes); "" for
	// generation 0, the key derived from the server token.
	Key string `json:"key,omitempty"`
	// Previous is the key of the generation before, which the servers no
	// longer hold once the rotation is done; "" for generation 0.
	Previous string `json:"previous,omitempty"`
	// Phase is how far the rotation to Generation got.
	Phase Phase `json:"phase"`
	// RotatedAt is when Generation was started; for generation 0, when
	// the keys were first recorded.
	RotatedAt time.Time `json:"rotated_at"`
}

// Ring returns the keys a Nomad server should hold, the one it encrypts
// with first (Nomad's keyring file), where initial is generation 0's key.
func (k Keys) Ring(initial string) []string {
	cur, prev := k.key(initial), k.previous(initial)
	switch k.Phase {
	case PhaseInstall:
		return []string{prev, cur}
	case PhaseUse:
		return []string{cur, prev}
	default:
		return []string{cur}
	}
}

func (k Keys) key(initial string) string {
	if k.Key == "" {
		return initial
	}
	return k.Key
}

func (k Keys) previous(initial string) string {
	if k.Previous == "" {
		return initial
	}
	return k.Previous
}

// validate checks keys read from the Variable.
func (k Keys) validate() error {
	switch k.Phase {
	case PhaseInstall, PhaseUse, PhaseDone:
	default:
		return fmt.Errorf("nomadkeys: unknown phase %q", k.Phase)
	}
	if k.Generation == 0 && (k.Key != "" || k.Previous != "") {
		return errors.New("nomadkeys: generation 0 holds no key")
	}
	if k.Generation > 0 {
		if err := checkKey(k.Key); err != nil {
			return err
		}
	}
	if k.Previous != "" {
		if err := checkKey(k.Previous); err != nil {
			return err
		}
	}
	return nil
}

// checkKey checks that s is a gossip key Nomad takes: standard base64 of
// 32 bytes (AES-256).
func checkKey(s string) error {
	if b, err := base64.StdEncoding.Strict().DecodeString(s); err != nil || len(b) != 32 {
		return errors.New("nomadkeys: a key is not standard base64 of 32 bytes")
	}
	return nil
}

// NewKey returns a random key in the form Nomad takes.
func NewKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Load returns the keys the Variable holds, its modify index, and whether
// it exists; when it does not, generation 0, done, with a zero RotatedAt.
func Load(ctx context.Context, v clusterstate.Vars) (Keys, uint64, bool, error) {
	items, index, err := v.Read(ctx, VarPath)
	if err != nil {
		return Keys{}, 0, false, fmt.Errorf("nomadkeys: reading Nomad Variable %s: %w", VarPath, err)
	}
	if items == nil {
		return Keys{Phase: PhaseDone}, 0, false, nil
	}
	var k Keys
	if err := json.Unmarshal([]byte(items[varItem]), &k); err != nil {
		return Keys{}, 0, false, fmt.Errorf("nomadkeys: Nomad Variable %s is malformed: %w", VarPath, err)
	}
	if err := k.validate(); err != nil {
		return Keys{}, 0, false, fmt.Errorf("nomadkeys: Nomad Variable %s: %w", VarPath, err)
	}
	return k, index, true, nil
}

// ErrBusy is wrapped by the error of a write that found the Variable
// changed since it was read: another server is rotating the key.
var ErrBusy = errors.New("nomadkeys: another server changed Nomad's gossip keys at the same time; try again")

// store writes k with check-and-set on index and returns the new index.
func store(ctx context.Context, v clusterstate.Vars, k Keys, index uint64) (uint64, error) {
	if err := k.validate(); err != nil {
		return 0, err
	}
	b, err := json.Marshal(k)
	if err != nil {
		return 0, err
	}
	err = v.Write(ctx, VarPath, map[string]string{varItem: string(b)}, index)
	if errors.Is(err, clusterstate.ErrConflict) {
		return 0, ErrBusy
	}
	if err != nil {
		return 0, fmt.Errorf("nomadkeys: writing Nomad Variable %s: %w", VarPath, err)
	}
	_, index, _, err = Load(ctx, v)
	return index, err
}

// Record writes generation 0, done, at now, when the Variable does not
// exist yet, so that the first scheduled rotation counts from then. It
// returns the keys the Variable holds.
func Record(ctx context.Context, v clusterstate.Vars, now time.Time) (Keys, error) {
	k, index, ok, err := Load(ctx, v)
	if err != nil || ok {
		return k, err
	}
	k = Keys{Phase: PhaseDone, RotatedAt: now.UTC()}
	if _, err := store(ctx, v, k, index); err != nil && !errors.Is(err, ErrBusy) {
		return Keys{}, err
	}
	k, _, _, err = Load(ctx, v)
	return k, err
}

// Action is what a server's periodic check does about the keys.
type Action int

// The actions of Due.
const (
	// Wait: nothing is due.
	Wait Action = iota
	// Resume: finish the rotation that was cut short.
	Resume
	// Rotate: start the next rotation.
	Rotate
)

// StuckAfter is how long a rotation may stay unfinished before a server
// other than the CA holder takes it up.
const StuckAfter = 10 * time.Minute

// Due says what the periodic check of a server does with keys k at now:
// the CA holder finishes a rotation cut short at once, another server once
// it is StuckAfter old; the CA holder starts one when every (0: never) has
// passed since the last, and at once when the Variable is behind the
// generation the cluster state records.
func Due(k Keys, now time.Time, every time.Duration, caHolder bool, recorded uint32) Action {
	switch {
	case k.Generation < recorded:
		if caHolder {
			return Rotate // Rotation.After
		}
		return Wait
	case k.Phase != PhaseDone && (caHolder || now.Sub(k.RotatedAt) > StuckAfter):
		return Resume
	case caHolder && every > 0 && k.Phase == PhaseDone && !k.RotatedAt.IsZero() && now.Sub(k.RotatedAt) >= every:
		return Rotate
	}
	return Wait
}

// Keyring is the part of Nomad's agent API (api.Agent) a rotation needs,
// authenticated with a token that may write the agent (the management
// token). Each call reaches every Nomad server the local one gossips with.
type Keyring interface {
	ListKeys() (*api.KeyringResponse, error)
	InstallKey(key string) (*api.KeyringResponse, error)
	UseKey(key string) (*api.KeyringResponse, error)
	RemoveKey(key string) (*api.KeyringResponse, error)
}

// Rotation rolls the key over.
type Rotation struct {
	Vars    clusterstate.Vars
	Keyring Keyring
	// Initial is generation 0's key, derived from the server token.
	Initial string
	// Now is the clock.
	Now func() time.Time
	// After is the generation the cluster state records: a Variable that
	// is behind it (deleted, or restored from an older snapshot) no longer
	// names the key the servers use, and Run starts the generation after
	// it instead of taking up what the Variable says.
	After uint32
	// Poll is how often the servers' keyrings are listed while waiting
	// for every server to hold a key; Wait bounds that wait.
	Poll, Wait time.Duration
}

// Run finishes a rotation that was cut short, or else starts the next
// generation (see After), and takes it to done: when it returns without error every
// Nomad server that answered holds the new key only. It returns the keys
// as the Variable then holds them.
func (r Rotation) Run(ctx context.Context) (Keys, error) {
	k, index, _, err := Load(ctx, r.Vars)
	if err != nil {
		return Keys{}, err
	}
	if behind := k.Generation < r.After; k.Phase == PhaseDone || behind {
		gen := max(k.Generation, r.After)
		if gen == ^uint32(0) {
			return Keys{}, errors.New("nomadkeys: the key cannot be rotated any more")
		}
		prev := k.Key
		if behind {
			// Nomad lost the keys it uses: the new key replaces whatever
			// the servers hold (finish removes every other key).
			prev = ""
		}
		k = Keys{Generation: gen + 1, Key: NewKey(), Previous: prev, Phase: PhaseInstall, RotatedAt: r.Now().UTC()}
		if index, err = store(ctx, r.Vars, k, index); err != nil {
			return Keys{}, err
		}
	}
	return r.finish(ctx, k, index)
}

// Resume finishes a rotation that was cut short, and does nothing
// otherwise.
func (r Rotation) Resume(ctx context.Context) (Keys, error) {
	k, index, _, err := Load(ctx, r.Vars)
	if err != nil || k.Phase == PhaseDone {
		return k, err
	}
	return r.finish(ctx, k, index)
}

// finish takes the rotation to k.Generation from k.Phase to done.
func (r Rotation) finish(ctx context.Context, k Keys, index uint64) (Keys, error) {
	cur := k.key(r.Initial)
	var err error
	if k.Phase == PhaseInstall {
		if _, err := call(r.Keyring.InstallKey, cur, "installing"); err != nil {
			return Keys{}, err
		}
		if err := r.waitAll(ctx, func(resp *api.KeyringResponse) bool { return resp.Keys[cur] == resp.NumNodes }); err != nil {
			return Keys{}, fmt.Errorf("nomadkeys: the new key did not reach every Nomad server: %w", err)
		}
		k.Phase = PhaseUse
		if index, err = store(ctx, r.Vars, k, index); err != nil {
			return Keys{}, err
		}
	}
	if k.Phase == PhaseUse {
		if _, err := call(r.Keyring.UseKey, cur, "switching to"); err != nil {
			return Keys{}, err
		}
		if err := removeOthers(r.Keyring, cur); err != nil {
			return Keys{}, err
		}
		if err := r.waitAll(ctx, func(resp *api.KeyringResponse) bool { return resp.Keys[cur] == resp.NumNodes && len(resp.Keys) == 1 }); err != nil {
			return Keys{}, fmt.Errorf("nomadkeys: the old key is not gone from every Nomad server: %w", err)
		}
		k.Phase = PhaseDone
		if _, err = store(ctx, r.Vars, k, index); err != nil {
			return Keys{}, err
		}
	}
	return k, nil
}

// call runs one keyring operation and turns the failures of the servers
// it reached into its error.
func call(op func(string) (*api.KeyringResponse, error), key, what string) (*api.KeyringResponse, error) {
	resp, err := op(key)
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "nodes reported success") {
			// Serf counts a server it has not yet given up on.
			hint = " — a Nomad server did not answer: bring it back, or wait until `nomad server members` shows it failed"
		}
		return nil, fmt.Errorf("nomadkeys: %s the key on Nomad's servers: %w%s%s", what, err, messages(resp), hint)
	}
	return resp, nil
}

// messages formats the servers' own errors of a keyring response.
func messages(resp *api.KeyringResponse) string {
	if resp == nil || len(resp.Messages) == 0 {
		return ""
	}
	names := make([]string, 0, len(resp.Messages))
	for n := range resp.Messages {
		names = append(names, n)
	}
	slices.Sort(names)
	s := " ("
	for i, n := range names {
		if i > 0 {
			s += "; "
		}
		s += n + ": " + resp.Messages[n]
	}
	return s + ")"
}

// waitAll lists the servers' keyrings every r.Poll until ok holds, for at
// most r.Wait.
func (r Rotation) waitAll(ctx context.Context, ok func(*api.KeyringResponse) bool) error {
	ctx, cancel := context.WithTimeout(ctx, r.Wait)
	defer cancel()
	for {
		resp, err := r.Keyring.ListKeys()
		if err == nil && resp.NumNodes > 0 && ok(resp) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%d servers answered; keys held: %s", resp.NumNodes, counts(resp))
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(r.Poll):
		}
	}
}

// counts describes how many servers hold each key, keys redacted to a
// short fingerprint.
func counts(resp *api.KeyringResponse) string {
	var parts []string
	for key, n := range resp.Keys {
		parts = append(parts, fmt.Sprintf("%s on %d", Fingerprint(key), n))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "none"
	}
	return fmt.Sprint(parts)
}
