package agent

import "time"

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

	Warnings []string    `json:"warnings,omitempty"`
	Agent    AgentStatus `json:"agent"`
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
	Epoch    uint64   `json:"epoch"`
	Servers  []string `json:"servers"`
	CAHolder string   `json:"ca_holder"`
	Expect   int      `json:"expect"`
	Region   string   `json:"region"`
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

// CertStatus describes this node's certificate.
type CertStatus struct {
	NotAfter time.Time `json:"not_after"`
}

// NomadStatus describes the local Nomad agent and the cluster it sees.
type NomadStatus struct {
	Unit    string   `json:"unit"`
	Leader  string   `json:"leader"`
	Peers   []string `json:"peers"`
	Healthy bool     `json:"healthy"`
}

// ACLStatus describes Nomad's ACL system as this server set it up. It says
// where the tokens are, never what they are.
type ACLStatus struct {
	State     string `json:"state"` // pending, bootstrapped, bootstrapped elsewhere
	TokensDir string `json:"tokens_dir"`
}

// AgentStatus describes the nomad-bootstrapd process.
type AgentStatus struct {
	Running bool   `json:"running"`
	Version string `json:"version"`
	PID     int    `json:"pid,omitempty"`
}

// Healthy reports whether the node has reached PhaseRunning without warnings.
func (s Status) Healthy() bool {
	return s.Agent.Running && s.Phase == PhaseRunning && len(s.Warnings) == 0
}
