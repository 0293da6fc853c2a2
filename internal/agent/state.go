package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// savedPlan is the on-disk form of the committed plan.
type savedPlan struct {
	Version     int       `json:"version"`
	ClusterID   string    `json:"cluster_id"`
	NodeID      string    `json:"node_id"`
	CommittedAt time.Time `json:"committed_at"`
	Plan        plan.Plan `json:"plan"`
}

// loadPlan reads the committed plan at path; nil when there is none. A
// corrupted or foreign file is an error that says how to recover: the agent
// never silently starts a new election over a plan it cannot read.
func loadPlan(path, clusterID, nodeID string) (*plan.Plan, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: reading state: %w", err)
	}
	recovery := fmt.Sprintf("restore it from %s.bak if that holds the same cluster's plan, or remove it: "+
		"the node then adopts the committed plan from its peers when it rejoins", path)
	var s savedPlan
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("agent: state file %s is corrupted (%v); %s", path, err, recovery)
	}
	if s.Version != 1 {
		return nil, fmt.Errorf("agent: state file %s has version %d, which this version cannot read; %s", path, s.Version, recovery)
	}
	if err := s.Plan.Validate(); err != nil {
		return nil, fmt.Errorf("agent: state file %s is corrupted (%v); %s", path, err, recovery)
	}
	if s.ClusterID != clusterID {
		return nil, fmt.Errorf("agent: state file %s belongs to cluster %s, but the join token is for cluster %s; "+
			"use that cluster's token, or remove %s to move this machine to the new cluster", path, s.ClusterID, clusterID, path)
	}
	if s.NodeID != nodeID {
		return nil, fmt.Errorf("agent: state file %s was written by node %s, but this node's ID is %s; %s", path, s.NodeID, nodeID, recovery)
	}
	return &s.Plan, nil
}

// savePlan writes p atomically, keeping the previous file as path.bak.
func savePlan(path, clusterID, nodeID string, p plan.Plan, now time.Time) error {
	b, err := json.MarshalIndent(savedPlan{Version: 1, ClusterID: clusterID, NodeID: nodeID, CommittedAt: now.UTC(), Plan: p}, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: encoding plan: %w", err)
	}
	if old, err := os.ReadFile(path); err == nil {
		if err := atomicfile.WriteFile(path+".bak", old, 0o600); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}
