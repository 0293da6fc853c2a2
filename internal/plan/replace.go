package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Replace computes the successor of the committed plan prev in which each
// server whose ID is in dead is replaced by the best eligible member of live
// that is not already a server, ranked as in Elect (role, zone spread given
// the surviving servers, pool, score, ID). The surviving servers keep their
// places, the replacements take the places of the servers they replace, and
// the epoch is prev's plus one. The CA stays the same; if the CA holder is
// dead, the first surviving server in plan order holds it, the server that
// takes over signing (DESIGN §6).
//
// Only a minority of the servers may be replaced at once: the others must
// stay to agree on the successor. The error is a *NotEnoughError when too
// few members are eligible.
func Replace(prev Plan, dead []string, live []Member) (Plan, error) {
	return replace(prev, dead, live, false)
}

// Recover is Replace for a cluster that lost a majority of its servers for
// good: the servers in dead, all but at least one, are replaced as Replace
// does, and the successor is marked Recovered. Its own servers agree on it,
// since the survivors cannot.
func Recover(prev Plan, dead []string, live []Member) (Plan, error) {
	return replace(prev, dead, live, true)
}

func replace(prev Plan, dead []string, live []Member, recovery bool) (Plan, error) {
	if err := prev.Validate(); err != nil {
		return Plan{}, err
	}
	if err := validateMembers(live); err != nil {
		return Plan{}, err
	}
	isDead := make(map[string]bool, len(dead))
	for _, id := range dead {
		if !prev.IsServer(id) {
			return Plan{}, fmt.Errorf("plan: node %q to replace is not a server of epoch %d", id, prev.Epoch)
		}
		isDead[id] = true
	}
	if len(isDead) == 0 {
		return Plan{}, fmt.Errorf("plan: no server to replace")
	}
	survivors := len(prev.Servers) - len(isDead)
	switch {
	case recovery && survivors == 0:
		return Plan{}, fmt.Errorf("plan: all %d servers to replace; a recovery keeps at least one", len(prev.Servers))
	case recovery && survivors > len(prev.Servers)/2:
		return Plan{}, fmt.Errorf("plan: %d of %d servers survive, a majority: they replace the others without a recovery", survivors, len(prev.Servers))
	case !recovery && survivors <= len(prev.Servers)/2:
		return Plan{}, fmt.Errorf("plan: %d of %d servers to replace; a majority of the servers must survive to agree on a replacement",
			len(isDead), len(prev.Servers))
	}

	inZone := make(map[string]int)
	for _, s := range prev.Servers {
		if !isDead[s.ID] {
			inZone[s.Zone]++
		}
	}
	var eligible []Member
	for _, m := range live {
		if m.Role != RoleClient && !prev.IsServer(m.ID) {
			eligible = append(eligible, m)
		}
	}
	if len(eligible) < len(isDead) {
		return Plan{}, &NotEnoughError{Expect: len(isDead), Eligible: len(eligible), Members: len(live)}
	}
	slices.SortFunc(eligible, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })

	next := prev.Clone()
	next.Epoch = prev.Epoch + 1
	next.Genesis = prev.Lineage()
	next.Signatures = nil // prev's servers sign prev, not its successor
	next.Recovered = recovery
	for i, s := range next.Servers {
		if !isDead[s.ID] {
			continue
		}
		var m Member
		m, eligible = pickBest(eligible, inZone)
		next.Servers[i] = Server{ID: m.ID, Name: m.Name, Address: m.Address, Zone: m.Zone, Key: m.Key, Endorsement: m.Endorsement}
	}
	if isDead[prev.CAHolder] {
		for _, s := range prev.Servers {
			if !isDead[s.ID] {
				next.CAHolder = s.ID
				break
			}
		}
	}
	return next, nil
}

// Readdress computes the successor of the committed plan prev that records
// the servers named by the keys of addrs (node IDs) at the addresses they
// map to: a server whose machine came back on another address (a new DHCP
// lease, a re-created VM with the same disk). Nothing else changes; the
// epoch is prev's plus one.
func Readdress(prev Plan, addrs map[string]string) (Plan, error) {
	if err := prev.Validate(); err != nil {
		return Plan{}, err
	}
	next := prev.Clone()
	next.Epoch = prev.Epoch + 1
	next.Genesis = prev.Lineage()
	next.Signatures = nil
	next.Recovered = false
	moved := 0
	for id, addr := range addrs {
		i := slices.IndexFunc(next.Servers, func(s Server) bool { return s.ID == id })
		switch {
		case i < 0:
			return Plan{}, fmt.Errorf("plan: node %q to readdress is not a server of epoch %d", id, prev.Epoch)
		case !ValidAddress(addr):
			return Plan{}, fmt.Errorf("plan: %q is not an IP address for server %s", addr, next.Servers[i].Name)
		case next.Servers[i].Address != addr:
			next.Servers[i].Address = addr
			moved++
		}
	}
	if moved == 0 {
		return Plan{}, fmt.Errorf("plan: no server to readdress")
	}
	return next, nil
}

// ValidAddress reports whether addr is an IP address in its canonical text
// form, as gossip reports members' addresses, and one that can be dialled
// (not unspecified, no zone): what a plan may record for a server.
func ValidAddress(addr string) bool {
	a, err := netip.ParseAddr(addr)
	return err == nil && a.Zone() == "" && !a.IsUnspecified() && a.String() == addr
}

// Moved returns the IDs of the servers that both prev and next have, each in
// its place, that next records at another address.
func Moved(prev, next Plan) []string {
	var ids []string
	for i, s := range prev.Servers {
		if i < len(next.Servers) && next.Servers[i].ID == s.ID && next.Servers[i].Address != s.Address {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// Replaced returns the IDs of prev's servers that next replaces.
func Replaced(prev, next Plan) []string {
	var ids []string
	for _, s := range prev.Servers {
		if !next.IsServer(s.ID) {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// CheckSuccessor reports why next is not a valid successor of the committed
// plan prev, or nil: next must be valid, have epoch prev.Epoch+1, the same
// region, expect and CA, and differ from prev only in replacing a minority
// of its servers, each in its place, by nodes that were not servers, and in
// the addresses of servers that stay (Readdress); the CA holder stays
// unless it is replaced, and then it is the first surviving server.
func CheckSuccessor(prev, next Plan) error {
	if next.Recovered {
		return fmt.Errorf("plan: epoch %d is a recovery, not a replacement agreed by the surviving servers", next.Epoch)
	}
	return checkSuccessor(prev, next, false)
}

// CheckRecovery reports why next is not a valid recovery of the committed
// plan prev, or nil: as CheckSuccessor, but next is marked Recovered and
// replaces a majority of prev's servers, all but at least one.
func CheckRecovery(prev, next Plan) error {
	if !next.Recovered {
		return fmt.Errorf("plan: epoch %d is not marked as a recovery", next.Epoch)
	}
	return checkSuccessor(prev, next, true)
}

func checkSuccessor(prev, next Plan, recovery bool) error {
	if err := next.Validate(); err != nil {
		return err
	}
	if next.Epoch != prev.Epoch+1 {
		return fmt.Errorf("plan: epoch %d does not follow epoch %d", next.Epoch, prev.Epoch)
	}
	if err := sameCluster(prev, next); err != nil {
		return err
	}
	switch {
	case next.Genesis != prev.Lineage():
		return fmt.Errorf("plan: epoch %d descends from another first plan", next.Epoch)
	case len(next.Servers) != len(prev.Servers):
		return fmt.Errorf("plan: epoch %d has %d servers, epoch %d has %d", next.Epoch, len(next.Servers), prev.Epoch, len(prev.Servers))
	}
	replaced, moved := 0, 0
	firstSurvivor := ""
	for i, s := range prev.Servers {
		n := next.Servers[i]
		readdressed := n.ID == s.ID && n.Address != s.Address
		if readdressed {
			if !ValidAddress(n.Address) {
				return fmt.Errorf("plan: epoch %d records server %s at %q, which is not an IP address", next.Epoch, n.Name, n.Address)
			}
			// Only the address may change.
			n.Address = s.Address
		}
		if n == s {
			if firstSurvivor == "" {
				firstSurvivor = s.ID
			}
			if readdressed {
				moved++
			}
			continue
		}
		if prev.IsServer(n.ID) {
			return fmt.Errorf("plan: epoch %d moves server %s to another place", next.Epoch, n.Name)
		}
		replaced++
	}
	if replaced == 0 && (moved == 0 || recovery) {
		return fmt.Errorf("plan: epoch %d replaces no server", next.Epoch)
	}
	switch {
	case !recovery && replaced > (len(prev.Servers)-1)/2:
		return fmt.Errorf("plan: epoch %d replaces %d of %d servers; at most a minority may be replaced", next.Epoch, replaced, len(prev.Servers))
	case recovery && replaced <= (len(prev.Servers)-1)/2:
		return fmt.Errorf("plan: epoch %d replaces %d of %d servers, a minority, which the survivors agree on without a recovery", next.Epoch, replaced, len(prev.Servers))
	case recovery && replaced == len(prev.Servers):
		return fmt.Errorf("plan: epoch %d replaces every server; a recovery keeps at least one", next.Epoch)
	}
	want := prev.CAHolder
	if !next.IsServer(prev.CAHolder) {
		want = firstSurvivor
	}
	if next.CAHolder != want {
		return fmt.Errorf("plan: epoch %d moves the CA holder to %s", next.Epoch, next.CAHolderName())
	}
	return nil
}

// CheckDescendant reports why next, of an epoch above prev's next one, is
// not a later plan of prev's lineage, or nil: it must be valid, name prev's
// first plan as its genesis, and keep prev's region, expect and CA. A node
// that missed the epochs between them adopts next by this check: the
// epochs of one lineage form one chain, each agreed by a majority of the
// servers before it.
func CheckDescendant(prev, next Plan) error {
	if err := next.Validate(); err != nil {
		return err
	}
	switch {
	case next.Epoch <= prev.Epoch+1:
		return fmt.Errorf("plan: epoch %d does not come after epoch %d", next.Epoch, prev.Epoch+1)
	case prev.Lineage() == "" || next.Genesis != prev.Lineage():
		return fmt.Errorf("plan: epoch %d does not descend from the first plan of epoch %d", next.Epoch, prev.Epoch)
	}
	return sameCluster(prev, next)
}

// sameCluster reports why next, a later plan than prev, is not one of the
// same cluster, or nil: it keeps prev's region, expect and CA.
func sameCluster(prev, next Plan) error {
	switch {
	case next.Region != prev.Region || next.Expect != prev.Expect:
		return fmt.Errorf("plan: epoch %d has region=%s expect=%d, epoch %d has region=%s expect=%d",
			next.Epoch, next.Region, next.Expect, prev.Epoch, prev.Region, prev.Expect)
	case next.CAFingerprint != prev.CAFingerprint || next.CAPort != prev.CAPort:
		return fmt.Errorf("plan: epoch %d changes the cluster CA", next.Epoch)
	}
	return nil
}
