package plan

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

func validFingerprint(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	return ok && validHash(h)
}

// ValidKey reports whether k is an identity public key as plans record it:
// standard base64, with padding, of 32 bytes.
func ValidKey(k string) bool { return validBase64(k, 32) }

// validBase64 reports whether s is standard base64, with padding, of n
// bytes.
func validBase64(s string, n int) bool {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == n
}

// validHash reports whether h is 64 lower-case hex digits, as Hash returns.
func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// Validate checks the structure of a committed plan, such as one received
// from the network: Epoch >= 1, a non-empty region, a valid Expect with that
// many servers, server IDs and names non-empty and unique, and a CA holder
// that is one of the servers, a CA fingerprint and a CA port.
func (p Plan) Validate() error {
	if p.Epoch < 1 {
		return fmt.Errorf("plan: epoch %d is not committed (want >= 1)", p.Epoch)
	}
	if p.Region == "" {
		return fmt.Errorf("plan: region is empty")
	}
	switch {
	case p.Epoch == 1 && p.Genesis != "":
		return fmt.Errorf("plan: a first plan names a genesis")
	case p.Genesis != "" && !validHash(p.Genesis):
		return fmt.Errorf("plan: genesis %q is not a plan hash", p.Genesis)
	}
	if !validFingerprint(p.CAFingerprint) {
		return fmt.Errorf("plan: CA fingerprint %q is not sha256:<64 hex digits>", p.CAFingerprint)
	}
	if p.CAPort < 1 || p.CAPort > 65535 {
		return fmt.Errorf("plan: CA port %d is out of range 1-65535", p.CAPort)
	}
	if err := ValidateExpect(p.Expect); err != nil {
		return err
	}
	if len(p.Servers) != p.Expect {
		return fmt.Errorf("plan: %d servers listed, expect is %d", len(p.Servers), p.Expect)
	}
	ids := make(map[string]bool, len(p.Servers))
	names := make(map[string]bool, len(p.Servers))
	for i, s := range p.Servers {
		switch {
		case s.ID == "":
			return fmt.Errorf("plan: server %d (%q) has an empty ID", i, s.Name)
		case s.Name == "":
			return fmt.Errorf("plan: server %d (%q) has an empty name", i, s.ID)
		case ids[s.ID]:
			return fmt.Errorf("plan: duplicate server ID %q", s.ID)
		case names[s.Name]:
			return fmt.Errorf("plan: duplicate server name %q", s.Name)
		case s.Key != "" && !ValidKey(s.Key):
			return fmt.Errorf("plan: server %q has an identity key that is not standard base64 of 32 bytes", s.Name)
		case s.Endorsement != "" && !validBase64(s.Endorsement, 64):
			return fmt.Errorf("plan: server %q has an endorsement that is not standard base64 of 64 bytes", s.Name)
		}
		ids[s.ID] = true
		names[s.Name] = true
	}
	if !ids[p.CAHolder] {
		return fmt.Errorf("plan: CA holder %q is not one of the servers", p.CAHolder)
	}
	signed := make(map[string]bool, len(p.Signatures))
	for _, sig := range p.Signatures {
		switch {
		case !ids[sig.Server]:
			return fmt.Errorf("plan: a signature names %q, which is not one of the servers", sig.Server)
		case signed[sig.Server]:
			return fmt.Errorf("plan: server %q signed twice", sig.Server)
		case !validBase64(sig.Sig, 64):
			return fmt.Errorf("plan: the signature of server %q is not standard base64 of 64 bytes", sig.Server)
		}
		signed[sig.Server] = true
	}
	return nil
}

// Lineage returns the hash of the first plan p descends from, p's own for a
// first plan; "" for a later plan that does not name it.
func (p Plan) Lineage() string {
	if p.Epoch == 1 {
		return p.Hash()
	}
	return p.Genesis
}

// Hash returns the hex SHA-256 of the plan's canonical JSON encoding, its
// signatures left out. Two plans are the same decision if and only if their
// hashes are equal; a nil and an empty server list hash alike.
func (p Plan) Hash() string {
	if p.Servers == nil {
		p.Servers = []Server{}
	}
	p.Signatures = nil
	b, err := json.Marshal(p)
	if err != nil {
		// A Plan holds only strings and integers; encoding cannot fail.
		panic("plan: encoding plan: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// IsServer reports whether the node with the given ID is one of the servers.
func (p Plan) IsServer(id string) bool {
	return slices.ContainsFunc(p.Servers, func(s Server) bool { return s.ID == id })
}

// ServerNames returns the servers' names in rank order.
func (p Plan) ServerNames() []string {
	names := make([]string, len(p.Servers))
	for i, s := range p.Servers {
		names[i] = s.Name
	}
	return names
}

// CAHolderName returns the name of the server holding the CA, or "" if the
// CA holder is not one of the servers.
func (p Plan) CAHolderName() string {
	for _, s := range p.Servers {
		if s.ID == p.CAHolder {
			return s.Name
		}
	}
	return ""
}

// Equal reports whether p and q are the same decision: same epoch, region,
// expect, CA holder and servers in the same order. A nil and an empty server
// list are equal.
func (p Plan) Equal(q Plan) bool {
	return p.Epoch == q.Epoch &&
		p.Region == q.Region &&
		p.Expect == q.Expect &&
		p.CAHolder == q.CAHolder &&
		p.CAFingerprint == q.CAFingerprint &&
		p.CAPort == q.CAPort &&
		p.Recovered == q.Recovered &&
		slices.Equal(p.Servers, q.Servers)
}

// Clone returns a copy of p that shares no memory with it.
func (p Plan) Clone() Plan {
	p.Servers = slices.Clone(p.Servers)
	p.Signatures = slices.Clone(p.Signatures)
	return p
}
