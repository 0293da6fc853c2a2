// Package status holds what `nomad-bootstrapd status` shows of a node: the
// Status types (the JSON contract of status -json), the node's Phase and its
// transition rules, the agent's control socket and the status read from the
// files a stopped agent left.
package status

import (
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

// Status is what `nomad-bootstrapd status -json` prints: the contract of
// DESIGN §6. Fields that belong to later phases are null until known.
type Status struct {
	Node    NodeStatus     `json:"node"`
	Phase   Phase          `json:"phase"`
	Reason  string         `json:"reason,omitempty"` // why the node waits or is degraded
	Plan    *PlanStatus    `json:"plan"`             // null before commit
	Members []MemberStatus `json:"members"`
	Certs   *CertStatus    `json:"certs"`
	Nomad   *NomadStatus   `json:"nomad"`
	ACL     *ACLStatus     `json:"acl"` // on servers once Nomad runs
	// Snapshots are a server's scheduled snapshots; null elsewhere.
	Snapshots *SnapshotStatus `json:"snapshots,omitempty"`
	// Cluster is the cluster state this node holds (internal/clusterstate);
	// null before the first change.
	Cluster *ClusterStatus `json:"cluster,omitempty"`

	Warnings []string    `json:"warnings,omitempty"`
	Agent    AgentStatus `json:"agent"`
}

// ClusterStatus is the cluster's decided state: its version and the nodes
// it evicted.
type ClusterStatus struct {
	Version uint64          `json:"version"`
	Evicted []EvictedStatus `json:"evicted"`
	// ClientToken is which client tokens admit new nodes.
	ClientToken ClientTokenStatus `json:"client_token"`
	// NomadGossipKey is the generation of Nomad's gossip key.
	NomadGossipKey KeyStatus `json:"nomad_gossip_key"`
	// AgentGossipKey is the generation of the agents' own gossip key.
	AgentGossipKey KeyStatus `json:"agent_gossip_key"`
	// CA is the generation of the cluster CA: 0 is the one the plan pins,
	// each ca rotate adds one; Rotating is the phase (trust, issue) of a
	// rotation under way.
	CA KeyStatus `json:"ca"`
	// NomadUpgrade is the last rolling upgrade of Nomad; null when there
	// was none.
	NomadUpgrade *UpgradeStatus `json:"nomad_upgrade,omitempty"`
}

// UpgradeStatus is where a rolling upgrade of Nomad stands.
type UpgradeStatus struct {
	Version string `json:"version"` // the Nomad version every node is to run
	Stage   string `json:"stage"`   // servers, clients, done or failed
	// Turn names the nodes upgrading now, Step says how far they are
	// (drain, install).
	Turn       []string  `json:"turn,omitempty"`
	Step       string    `json:"step,omitempty"`
	Upgraded   int       `json:"upgraded"`
	Failure    string    `json:"failure,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// KeyStatus is a rotated key's generation: 0 until its first rotation,
// when it is the key the token derives.
type KeyStatus struct {
	Generation uint32    `json:"generation"`
	RotatedAt  time.Time `json:"rotated_at,omitzero"`
	// NextRotation is when this node's schedule rotates it next, if it is
	// the CA holder; zero when no schedule is set or known.
	NextRotation time.Time `json:"next_rotation,omitzero"`
	// Rotating is the phase of a rotation under way (install, use), as
	// this node last learnt it; "" when none is (for Nomad's key, on
	// clients always).
	Rotating string `json:"rotating,omitempty"`
}

// CAMade is when the cluster CA in force was made: when the rotation to it
// was done, or, for the bootstrap's CA, when f, its certificate, begins.
func CAMade(f CertFileStatus, ca KeyStatus) time.Time {
	if !ca.RotatedAt.IsZero() {
		return ca.RotatedAt
	}
	return f.NotBefore
}

// ClientTokenStatus is the generation of the client tokens that admit new
// nodes: 0 until token rotate -client; the previous generation admits
// until PreviousUntil.
type ClientTokenStatus struct {
	Generation    uint32    `json:"generation"`
	RotatedAt     time.Time `json:"rotated_at,omitzero"`
	PreviousUntil time.Time `json:"previous_until,omitzero"`
}

// EvictedStatus is one evicted node.
type EvictedStatus struct {
	Name string    `json:"name"`
	ID   string    `json:"id"`
	At   time.Time `json:"at"`
}

// NodeStatus describes this node.
type NodeStatus struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	Address    string `json:"address"`
	Role       string `json:"role"` // the plan's role once committed, else the preference
	Pool       string `json:"pool"`
	Zone       string `json:"zone"`
	Datacenter string `json:"datacenter"`
	Region     string `json:"region"`
}

// PlanStatus is the committed plan, with node names.
type PlanStatus struct {
	Epoch   uint64   `json:"epoch"`
	Servers []string `json:"servers"`
	// ServerAddresses are the servers' addresses, in the order of
	// Servers.
	ServerAddresses []string `json:"server_addresses,omitempty"`
	CAHolder        string   `json:"ca_holder"`
	Expect          int      `json:"expect"`
	Region          string   `json:"region"`
	// CAFingerprint pins the cluster CA.
	CAFingerprint string `json:"ca_fingerprint"`
}

// MemberStatus is one gossip member as this node sees it.
type MemberStatus struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Address string `json:"address"`
	Status  string `json:"status"` // alive, suspect, dead, left
	Role    string `json:"role"`
	Pool    string `json:"pool"`
	Zone    string `json:"zone"`
}

// CertStatus describes this node's certificates.
type CertStatus struct {
	// NotBefore and NotAfter bound the validity of the first of this
	// node's certificates.
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// Files lists each certificate: the node's own (server or client),
	// the CLI certificate on servers, and the cluster CA.
	Files []CertFileStatus `json:"files,omitempty"`
}

// CertFileStatus describes one certificate file.
type CertFileStatus struct {
	Role      string    `json:"role"` // server, client, cli or ca
	Path      string    `json:"path"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// WarnAt returns when the node's certificate, not renewed by then, deserves
// a warning (certs.WarnAt).
func (c CertStatus) WarnAt() time.Time { return certs.WarnAt(c.NotBefore, c.NotAfter) }

// WarnAt returns when the certificate, not renewed by then, deserves a
// warning (certs.WarnAt).
func (f CertFileStatus) WarnAt() time.Time { return certs.WarnAt(f.NotBefore, f.NotAfter) }

// NomadStatus describes the local Nomad agent and the cluster it sees.
type NomadStatus struct {
	Unit string `json:"unit"` // how Nomad runs and its state
	// Version is the version of the local Nomad agent, as it reports it
	// once it runs (`nomad version` before that).
	Version string   `json:"version"`
	Leader  string   `json:"leader"` // the raft leader's RPC address
	Peers   []string `json:"peers"`  // the raft peers' RPC addresses
	Healthy bool     `json:"healthy"`
	// Servers are the Nomad servers as `nomad server members` lists them.
	Servers []NomadServerStatus `json:"servers,omitempty"`
	// Autopilot is the servers' health as autopilot sees it; known on
	// servers, which hold a token that may read it.
	Autopilot *AutopilotStatus `json:"autopilot,omitempty"`
	// Clients counts the Nomad clients per node pool, as `nomad node
	// status` lists them.
	Clients []PoolClientsStatus `json:"clients,omitempty"`
	// ClientVersions lists the Nomad versions the clients run, oldest
	// first.
	ClientVersions []string `json:"client_versions,omitempty"`
}

// NomadServerStatus is one Nomad server of the cluster.
type NomadServerStatus struct {
	Name    string `json:"name"` // Nomad's member name, <agent name>.<region>
	Address string `json:"address"`
	Status  string `json:"status"` // alive, failed, left
	Leader  bool   `json:"leader"`
	Version string `json:"version,omitempty"` // its Nomad version
}

// AutopilotStatus is Nomad autopilot's view of the servers.
type AutopilotStatus struct {
	Healthy          bool `json:"healthy"`
	FailureTolerance int  `json:"failure_tolerance"`
	Voters           int  `json:"voters"`
}

// PoolClientsStatus counts the Nomad clients of one node pool.
type PoolClientsStatus struct {
	Pool  string `json:"pool"`
	Ready int    `json:"ready"`
	Total int    `json:"total"`
}

// ACLStatus describes Nomad's ACL system as this server set it up. It says
// where the tokens are, never what they are.
type ACLStatus struct {
	State     string `json:"state"` // pending, bootstrapped, bootstrapped elsewhere
	TokensDir string `json:"tokens_dir"`
}

// SnapshotStatus is a server's scheduled snapshots of Nomad's state and
// keyring.
type SnapshotStatus struct {
	Dir      string    `json:"dir"`
	Interval string    `json:"interval"` // snapshot_interval, or "off"
	Retain   int       `json:"retain"`
	Kept     int       `json:"kept"`
	Last     time.Time `json:"last,omitzero"`
	LastFile string    `json:"last_file,omitempty"`
	LastSize int64     `json:"last_size,omitempty"` // bytes of Nomad's state
	Next     time.Time `json:"next,omitzero"`       // zero while none is kept, or when off
}

// AgentStatus describes the nomad-bootstrapd process.
type AgentStatus struct {
	Running bool   `json:"running"`
	Version string `json:"version,omitempty"`
	PID     int    `json:"pid,omitempty"`
	// Metrics is the address of the Prometheus endpoint; empty when off.
	Metrics string `json:"metrics,omitempty"`
}

// Healthy reports whether the node has reached PhaseRunning without warnings.
func (s Status) Healthy() bool {
	return s.Agent.Running && s.Phase == PhaseRunning && len(s.Warnings) == 0
}
