package clusterstate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/nomad/api"
)

// VarPath is the Nomad Variable (namespace default) the servers keep the
// state in.
const VarPath = "nomad-bootstrapd/cluster"

// varItem is the Variable's one item: the state's JSON.
const varItem = "state"

// casAttempts bounds Update's check-and-set retries.
const casAttempts = 5

// ErrConflict is wrapped by Vars.Write when the Variable changed since it
// was read.
var ErrConflict = errors.New("clusterstate: the state changed since it was read")

// Vars is the part of Nomad's Variables API the store needs; NomadVars
// implements it.
type Vars interface {
	// Read returns the Variable's items and modify index; nil items and 0
	// when it does not exist.
	Read(ctx context.Context, path string) (items map[string]string, index uint64, err error)
	// Write replaces the Variable's items if its modify index is still
	// index (0: it must not exist), else fails wrapping ErrConflict.
	Write(ctx context.Context, path string, items map[string]string, index uint64) error
}

// Load returns the state kept in Nomad and its modify index: the empty
// state of cluster, version 0, when none is kept yet.
func Load(ctx context.Context, v Vars, cluster string) (State, uint64, error) {
	items, index, err := v.Read(ctx, VarPath)
	if err != nil {
		return State{}, 0, fmt.Errorf("clusterstate: reading Nomad Variable %s: %w", VarPath, err)
	}
	if items == nil {
		return State{Cluster: cluster}, 0, nil
	}
	s, err := parseState([]byte(items[varItem]))
	if err != nil {
		return State{}, 0, fmt.Errorf("clusterstate: Nomad Variable %s: %w", VarPath, err)
	}
	if s.Cluster != cluster {
		return State{}, 0, fmt.Errorf("clusterstate: Nomad Variable %s holds the state of another cluster", VarPath)
	}
	return s, index, nil
}

// Update applies change to the state kept in Nomad and writes the result
// with check-and-set, reading again and retrying when another server wrote
// in between. change returns false to leave the state as it is. Update
// returns the state in Nomad afterwards and whether it wrote.
func Update(ctx context.Context, v Vars, cluster string, change func(State) (State, bool, error)) (State, bool, error) {
	for range casAttempts {
		cur, index, err := Load(ctx, v, cluster)
		if err != nil {
			return State{}, false, err
		}
		next, changed, err := change(cur)
		if err != nil || !changed {
			return cur, false, err
		}
		next.Format = Format
		if next.Version <= cur.Version {
			return State{}, false, fmt.Errorf("clusterstate: a change must raise the version (%d, was %d)", next.Version, cur.Version)
		}
		if err := next.Validate(); err != nil {
			return State{}, false, err
		}
		body, err := jsonState(next)
		if err != nil {
			return State{}, false, err
		}
		err = v.Write(ctx, VarPath, map[string]string{varItem: body}, index)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return State{}, false, fmt.Errorf("clusterstate: writing Nomad Variable %s: %w", VarPath, err)
		}
		return next, true, nil
	}
	return State{}, false, fmt.Errorf("clusterstate: Nomad Variable %s changed %d times while being updated; try again", VarPath, casAttempts)
}

// NomadVars returns the Vars of the Nomad API client c, authenticated with
// the ACL token whose secret ID is token.
func NomadVars(c *api.Client, token string) Vars { return nomadVars{c: c, token: token} }

type nomadVars struct {
	c     *api.Client
	token string
}

// attempts bounds the calls of a Variable that a server answers with an
// error of its own (500): Nomad answers so while a server's connection to
// the leader is being replaced ("rpc error: EOF"; a reload of the
// leader's TLS closes them), which passes within a second.
const attempts = 3

// retryWait is the pause before another call.
const retryWait = 500 * time.Millisecond

// retry calls f until it returns anything but a 500, at most attempts
// times. A write is safe to repeat: it is made with check-and-set, so one
// that went through before its answer was lost fails as a conflict, and
// Update reads again.
func retry(ctx context.Context, f func() error) error {
	var err error
	for i := range attempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(retryWait):
			}
		}
		err = f()
		var ue api.UnexpectedResponseError
		if !errors.As(err, &ue) || ue.StatusCode() != http.StatusInternalServerError {
			return err
		}
	}
	return err
}

func (n nomadVars) Read(ctx context.Context, path string) (map[string]string, uint64, error) {
	q := (&api.QueryOptions{AuthToken: n.token, Namespace: api.DefaultNamespace}).WithContext(ctx)
	var v *api.Variable
	err := retry(ctx, func() (err error) {
		v, _, err = n.c.Variables().Peek(path, q)
		return err
	})
	if err != nil || v == nil {
		return nil, 0, err
	}
	return v.Items, v.ModifyIndex, nil
}

func (n nomadVars) Write(ctx context.Context, path string, items map[string]string, index uint64) error {
	w := (&api.WriteOptions{AuthToken: n.token, Namespace: api.DefaultNamespace}).WithContext(ctx)
	err := retry(ctx, func() error {
		_, _, err := n.c.Variables().CheckedUpdate(&api.Variable{Namespace: api.DefaultNamespace, Path: path, Items: items, ModifyIndex: index}, w)
		return err
	})
	var conflict api.ErrCASConflict
	if errors.As(err, &conflict) {
		return fmt.Errorf("%w: %v", ErrConflict, err)
	}
	return err
}
