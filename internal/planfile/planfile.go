// Package planfile holds the on-disk form of the committed plan and of the
// node's vote in the agreement protocol: the one reader and writer of the
// plan and vote files the agent keeps under its state directory.
package planfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// version is the version of File this package writes and reads.
const version = 1

// File is the on-disk form of the committed plan.
type File struct {
	Version     int       `json:"version"`
	ClusterID   string    `json:"cluster_id"`
	NodeID      string    `json:"node_id"`
	CommittedAt time.Time `json:"committed_at"`
	Plan        plan.Plan `json:"plan"`
}

// Read reads the plan file at path without checking it against a join
// token or a node ID; nil when there is none. A corrupted file, or one of
// another version, is an error that says how to recover.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("planfile: reading state: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("planfile: state file %s is corrupted (%v); %s", path, err, recovery(path))
	}
	if f.Version != version {
		return nil, fmt.Errorf("planfile: state file %s has version %d, which this version cannot read; %s", path, f.Version, recovery(path))
	}
	if err := f.Plan.Validate(); err != nil {
		return nil, fmt.Errorf("planfile: state file %s is corrupted (%v); %s", path, err, recovery(path))
	}
	return &f, nil
}

// Load reads the committed plan at path; nil when there is none. A
// corrupted or foreign file is an error that says how to recover: the agent
// never silently starts a new election over a plan it cannot read.
func Load(path, clusterID, nodeID string) (*plan.Plan, error) {
	f, err := Read(path)
	if f == nil || err != nil {
		return nil, err
	}
	if f.ClusterID != clusterID {
		return nil, fmt.Errorf("planfile: state file %s belongs to cluster %s, but the join token is for cluster %s; "+
			"use that cluster's token, or remove %s to move this machine to the new cluster", path, f.ClusterID, clusterID, path)
	}
	if f.NodeID != nodeID {
		return nil, fmt.Errorf("planfile: state file %s was written by node %s, but this node's ID is %s; %s", path, f.NodeID, nodeID, recovery(path))
	}
	return &f.Plan, nil
}

// recovery says how to recover from a plan file at path that cannot be
// used.
func recovery(path string) string {
	return fmt.Sprintf("restore it from %s.bak if that holds the same cluster's plan, or remove it: "+
		"the node then adopts the committed plan from its peers when it rejoins", path)
}

// Save writes p atomically, keeping the previous file as path.bak.
func Save(path, clusterID, nodeID string, p plan.Plan, now time.Time) error {
	b, err := json.MarshalIndent(File{Version: version, ClusterID: clusterID, NodeID: nodeID, CommittedAt: now.UTC(), Plan: p}, "", "  ")
	if err != nil {
		return fmt.Errorf("planfile: encoding plan: %w", err)
	}
	if old, err := os.ReadFile(path); err == nil {
		if err := atomicfile.WriteFile(path+".bak", old, 0o600); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}
