// Package eviction carries out the cluster's evictions on Nomad: the Nomad
// node of an evicted node is marked ineligible and drained at once, and
// purged once Nomad reports it down. Nomad nodes are found by the node ID
// their client meta carries (nomadrun.NodeIDMeta), never by name alone,
// since a machine reinstalled under the same name is a new node.
//
// Every step is idempotent, so each server may run Apply at any time.
package eviction

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/api"
)

// DrainDeadline is how long an evicted node's allocations get to move
// before Nomad stops them.
const DrainDeadline = 5 * time.Minute

// What Apply did, or found, for an evicted node.
const (
	NotFound = "no Nomad node"
	Draining = "ineligible, draining"
	Drained  = "ineligible, drained"
	Purged   = "purged"
)

// Node is what Apply needs to know of a Nomad node.
type Node struct {
	ID       string
	Name     string
	Status   string // ready, down, disconnected, initializing
	Eligible bool
	Draining bool
}

// Evicted is an evicted node: its ID and the name it had.
type Evicted struct{ ID, Name string }

// Nodes is the part of Nomad's node API Apply uses; NomadNodes implements
// it.
type Nodes interface {
	// List returns every Nomad node.
	List(ctx context.Context) ([]Node, error)
	// NodeID returns the node ID in the client meta of the Nomad node
	// with this (Nomad) ID, or "".
	NodeID(ctx context.Context, id string) (string, error)
	// Ineligible marks a node ineligible for new allocations.
	Ineligible(ctx context.Context, id string) error
	// Drain starts draining a node with DrainDeadline.
	Drain(ctx context.Context, id string) error
	// Purge removes a node from Nomad's state.
	Purge(ctx context.Context, id string) error
}

// Apply carries out these evictions (the cluster state's) on Nomad and
// returns, by node ID, what it did or found. A Nomad node is taken for an
// evicted node's when it has the evicted node's name and its client meta
// holds the evicted node's ID; an eviction without a name finds none.
func Apply(ctx context.Context, nodes Nodes, evicted []Evicted) (map[string]string, error) {
	out := make(map[string]string, len(evicted))
	byName := make(map[string]string, len(evicted))
	for _, e := range evicted {
		out[e.ID] = NotFound
		if e.Name != "" {
			byName[e.Name] = e.ID
		}
	}
	if len(byName) == 0 {
		return out, nil
	}
	list, err := nodes.List(ctx)
	if err != nil {
		return out, fmt.Errorf("eviction: listing Nomad's nodes: %w", err)
	}
	var errs []error
	for _, n := range list {
		id, ok := byName[n.Name]
		if !ok {
			continue
		}
		if got, err := nodes.NodeID(ctx, n.ID); err != nil {
			errs = append(errs, fmt.Errorf("eviction: reading Nomad node %s (%s): %w", n.Name, n.ID, err))
			continue
		} else if got != id {
			continue // another machine of the same name
		}
		what, err := apply(ctx, nodes, n)
		out[id] = what
		if err != nil {
			errs = append(errs, fmt.Errorf("eviction: Nomad node %s (%s): %w", n.Name, n.ID, err))
		}
	}
	if len(errs) > 0 {
		return out, errs[0]
	}
	return out, nil
}

// apply takes one Nomad node of an evicted node one step further.
func apply(ctx context.Context, nodes Nodes, n Node) (string, error) {
	if n.Status == api.NodeStatusDown {
		if err := nodes.Purge(ctx, n.ID); err != nil {
			return Drained, err
		}
		return Purged, nil
	}
	if n.Eligible {
		if err := nodes.Ineligible(ctx, n.ID); err != nil {
			return NotFound, err
		}
	}
	if !n.Draining {
		if err := nodes.Drain(ctx, n.ID); err != nil {
			return Draining, err
		}
	}
	return Draining, nil
}

// NomadNodes returns the Nodes of the Nomad API client c, authenticated
// with the ACL token whose secret ID is token; metaKey is the client meta
// key that holds the node ID.
func NomadNodes(c *api.Client, token, metaKey string) Nodes {
	return nomadNodes{c: c, token: token, metaKey: metaKey}
}

type nomadNodes struct {
	c       *api.Client
	token   string
	metaKey string
}

func (n nomadNodes) query(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{AuthToken: n.token}).WithContext(ctx)
}

func (n nomadNodes) write(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{AuthToken: n.token}).WithContext(ctx)
}

func (n nomadNodes) List(ctx context.Context) ([]Node, error) {
	stubs, _, err := n.c.Nodes().List(n.query(ctx))
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(stubs))
	for _, s := range stubs {
		out = append(out, Node{
			ID: s.ID, Name: s.Name, Status: s.Status,
			Eligible: s.SchedulingEligibility == api.NodeSchedulingEligible, Draining: s.Drain,
		})
	}
	return out, nil
}

func (n nomadNodes) NodeID(ctx context.Context, id string) (string, error) {
	full, _, err := n.c.Nodes().Info(id, n.query(ctx))
	if err != nil {
		return "", err
	}
	return full.Meta[n.metaKey], nil
}

func (n nomadNodes) Ineligible(ctx context.Context, id string) error {
	_, err := n.c.Nodes().ToggleEligibility(id, false, n.write(ctx))
	return err
}

func (n nomadNodes) Drain(ctx context.Context, id string) error {
	_, err := n.c.Nodes().UpdateDrainOpts(id, &api.DrainOptions{
		DrainSpec:    &api.DrainSpec{Deadline: DrainDeadline},
		MarkEligible: false,
		Meta:         map[string]string{"message": "evicted by nomad-bootstrapd"},
	}, n.write(ctx))
	return err
}

func (n nomadNodes) Purge(ctx context.Context, id string) error {
	_, _, err := n.c.Nodes().Purge(id, n.query(ctx))
	return err
}
