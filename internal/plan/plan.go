// Package plan elects, as a pure and deterministic function of the member set
// and the cluster settings, which nodes become Nomad servers and which one
// holds the cluster CA. Every node computes and checks the same plan.
package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Role is a node's role preference, or its role in a committed plan.
type Role string

// Roles.
const (
	RoleAuto   Role = "auto"
	RoleServer Role = "server"
	RoleClient Role = "client"
)

// ParseRole parses "auto", "server" or "client"; "" means auto.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case "", RoleAuto:
		return RoleAuto, nil
	case RoleServer, RoleClient:
		return Role(s), nil
	}
	return "", fmt.Errorf("plan: unknown role %q (want auto, server or client)", s)
}

// Member is what the election knows of one live node.
type Member struct {
	ID         string // stable node ID (UUID text form)
	Name       string // unique node name
	Address    string // IP address
	Role       Role   // preference: auto, server or client
	Pool       string // Nomad node pool
	Zone       string // failure zone; "" is a zone of its own
	Datacenter string
	CPUCores   int
	MemoryMB   int
	// Key is the member's identity public key (standard base64), recorded
	// in the plan when it is elected; "" when it announces none.
	Key string
	// Endorsement is the cluster key's signature of the member's ID and Key
	// (standard base64), which shows it holds the server token; "" for
	// none.
	Endorsement string
}

// Settings are the cluster-wide settings every node must agree on.
type Settings struct {
	Expect int    // number of servers: 1, 3 or 5
	Region string // Nomad region
}

// Server is one elected server.
type Server struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Address string `json:"address"`
	Zone    string `json:"zone,omitempty"`
	// Key is the server's identity public key, standard base64 of 32
	// bytes; "" in plans of nodes that announce no key.
	Key string `json:"key,omitempty"`
	// Endorsement is the cluster key's signature of ID and Key, standard
	// base64 of 64 bytes: only a holder of the server token can make it.
	Endorsement string `json:"endorsement,omitempty"`
}

// Plan is the outcome of an election. A committed plan has Epoch >= 1.
type Plan struct {
	Epoch    uint64   `json:"epoch"`
	Region   string   `json:"region"`
	Expect   int      `json:"expect"`
	Servers  []Server `json:"servers"`   // in rank order
	CAHolder string   `json:"ca_holder"` // node ID; one of Servers
	// CAFingerprint pins the cluster CA ("sha256:<hex>" of its certificate):
	// nodes trust the CA endpoint only if it presents this CA.
	CAFingerprint string `json:"ca_fingerprint"`
	// CAPort is the port of the CA holder's certificate endpoint.
	CAPort int `json:"ca_port"`
	// Genesis is the hash of the first plan this one descends from; empty
	// in the first plan itself.
	Genesis string `json:"genesis,omitempty"`
	// Recovered marks a successor that replaces a majority of the servers,
	// which an operator confirmed are lost for good (recover -confirm on a
	// surviving server, CheckRecovery): the survivors cannot agree on it,
	// so its own servers do.
	Recovered bool `json:"recovered,omitempty"`
	// Signatures are the acceptances of the plan's servers: each signs the
	// plan's hash with its identity key (AcceptanceMessage). They are not
	// part of the decision: Hash and Equal leave them out.
	Signatures []Signature `json:"signatures,omitempty"`
}

// Signature is one server's acceptance of a plan.
type Signature struct {
	Server string `json:"server"` // the server's ID
	Sig    string `json:"sig"`    // standard base64 of its Ed25519 signature
}

// MaxExpect is the largest number of servers a cluster may ask for.
const MaxExpect = 5

// ValidateExpect accepts 1, 3 and 5.
//
// One server is for a single-server test cluster; three or five are for
// production. An even number of servers tolerates no more failures than the
// odd number below it and risks split votes, so it is refused, as is anything
// above five, which only slows consensus down.
func ValidateExpect(n int) error {
	switch {
	case n < 1:
		return fmt.Errorf("plan: expect %d is not a positive number of servers; "+
			"use 1 for a single-server test cluster, or 3 or 5 for production", n)
	case n%2 == 0:
		var use string
		switch {
		case n == 2:
			use = "use 3 (or 1 for a single-server test cluster)"
		case n < MaxExpect:
			use = "use 3 or 5"
		default:
			use = "use 5"
		}
		return fmt.Errorf("plan: expect %d is even; %s: an even number of servers "+
			"tolerates no more failures than the odd number below it and risks split votes", n, use)
	case n > MaxExpect:
		return fmt.Errorf("plan: expect %d is more than %d; more servers slow consensus "+
			"without adding useful fault tolerance; use 3 or 5 for production", n, MaxExpect)
	}
	return nil
}

// NotEnoughError is returned by Elect when fewer members are eligible to be
// servers than the settings expect. Callers can find it with errors.As to
// show why no plan exists yet.
type NotEnoughError struct {
	Expect   int // servers wanted (Settings.Expect)
	Eligible int // members whose role is not client
	Members  int // all members
}

// Error describes what the election is waiting for.
func (e *NotEnoughError) Error() string {
	nodes := "nodes"
	if e.Expect == 1 {
		nodes = "node"
	}
	clients := e.Members - e.Eligible
	have := "have"
	if clients == 1 {
		have = "has"
	}
	return fmt.Sprintf("plan: waiting for %d server-eligible %s, have %d (%d members; %d %s role=client)",
		e.Expect, nodes, e.Eligible, e.Members, clients, have)
}

// Score ranks a member's capacity for running a server; higher is better.
// It is CPUCores*4096 + MemoryMB, so one core weighs as much as 4 GiB of
// memory. Negative figures count as zero.
func Score(m Member) int64 {
	return int64(max(m.CPUCores, 0))*4096 + int64(max(m.MemoryMB, 0))
}

// Elect chooses Settings.Expect servers and a CA holder among members.
//
// The result depends only on the set of members, not on their order, and the
// caller's slice is not modified. Servers are picked one at a time; each pick
// is the remaining member, not of role client, that ranks first by:
//
//  1. role server before role auto;
//  2. fewer servers already chosen in its zone ("" is a zone like any other);
//  3. pool other than "batch" before pool "batch";
//  4. higher Score;
//  5. lower ID.
//
// An empty member role counts as auto. The first server chosen holds the CA.
// The plan's Epoch is 0; the caller sets it on commit. If too few members are
// eligible, the error is a *NotEnoughError.
func Elect(members []Member, s Settings) (Plan, error) {
	if err := ValidateExpect(s.Expect); err != nil {
		return Plan{}, err
	}
	if s.Region == "" {
		return Plan{}, fmt.Errorf("plan: region is empty")
	}
	if err := validateMembers(members); err != nil {
		return Plan{}, err
	}

	var eligible []Member
	for _, m := range members {
		if m.Role != RoleClient {
			eligible = append(eligible, m)
		}
	}
	if len(eligible) < s.Expect {
		return Plan{}, &NotEnoughError{Expect: s.Expect, Eligible: len(eligible), Members: len(members)}
	}

	// Sort by ID so the scan below sees the same order whatever the input
	// order; the ranking is total anyway since IDs are unique.
	slices.SortFunc(eligible, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })

	p := Plan{Region: s.Region, Expect: s.Expect, Servers: make([]Server, 0, s.Expect)}
	inZone := make(map[string]int)
	for range s.Expect {
		var m Member
		m, eligible = pickBest(eligible, inZone)
		p.Servers = append(p.Servers, Server{ID: m.ID, Name: m.Name, Address: m.Address, Zone: m.Zone, Key: m.Key, Endorsement: m.Endorsement})
	}
	p.CAHolder = p.Servers[0].ID
	return p, nil
}

// rank compares a and b as candidates for the next server given the number
// of servers already chosen per zone: negative if a ranks first.
func rank(a, b Member, inZone map[string]int) int {
	if c := cmpBool(a.Role == RoleServer, b.Role == RoleServer); c != 0 {
		return c
	}
	if c := cmp.Compare(inZone[a.Zone], inZone[b.Zone]); c != 0 {
		return c
	}
	if c := cmpBool(a.Pool != batchPool, b.Pool != batchPool); c != 0 {
		return c
	}
	if c := cmp.Compare(Score(b), Score(a)); c != 0 { // higher score first
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// batchPool is the Nomad node pool kept for throughput jobs; servers avoid it.
const batchPool = "batch"

// cmpBool orders true before false.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// validateMembers checks that IDs and names are non-empty and unique and that
// roles are known; an empty role counts as auto.
func validateMembers(members []Member) error {
	ids := make(map[string]bool, len(members))
	names := make(map[string]bool, len(members))
	for _, m := range members {
		switch {
		case m.ID == "":
			return fmt.Errorf("plan: member %q has an empty ID", m.Name)
		case m.Name == "":
			return fmt.Errorf("plan: member %q has an empty name", m.ID)
		case ids[m.ID]:
			return fmt.Errorf("plan: duplicate member ID %q", m.ID)
		case names[m.Name]:
			return fmt.Errorf("plan: duplicate member name %q", m.Name)
		}
		switch m.Role {
		case "", RoleAuto, RoleServer, RoleClient: // "" means auto, as in ParseRole
		default:
			return fmt.Errorf("plan: member %q has unknown role %q (want auto, server or client)", m.Name, m.Role)
		}
		ids[m.ID] = true
		names[m.Name] = true
	}
	return nil
}

// pickBest takes the best-ranked member out of eligible (not empty),
// counting it in its zone, and returns it with the members left.
func pickBest(eligible []Member, inZone map[string]int) (Member, []Member) {
	best := 0
	for i := 1; i < len(eligible); i++ {
		if rank(eligible[i], eligible[best], inZone) < 0 {
			best = i
		}
	}
	m := eligible[best]
	inZone[m.Zone]++
	return m, slices.Delete(eligible, best, best+1)
}
