package caholder

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

func testPlan() plan.Plan {
	return plan.Plan{Epoch: 2, Region: "global", Expect: 3, CAHolder: "a", CAPort: 4651, Servers: []plan.Server{
		{ID: "a", Name: "n1", Address: "127.0.0.2", Key: keyB64("a")}, {ID: "b", Name: "n2", Address: "127.0.0.3", Key: keyB64("b")},
		{ID: "c", Name: "n3", Address: "127.0.0.4", Key: keyB64("c")},
	}}
}

// identityOf returns the fixed identity key of a test node.
func identityOf(id string) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte(id[:1]), ed25519.SeedSize))
}

func pubOf(id string) []byte { return identityOf(id).Public().(ed25519.PublicKey) }

func keyB64(id string) string { return base64.StdEncoding.EncodeToString(pubOf(id)) }

func TestAuthorize(t *testing.T) {
	p := testPlan()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var tok certs.Token
	tok.Secret[0] = 1
	other := tok
	other.Secret[0] = 2
	member := func(name, id, addr string, st gossip.State) gossip.Member {
		return gossip.Member{Name: name, Address: addr, Port: 4650, State: st, Meta: gossip.Meta{ID: id, Identity: pubOf(id)}}
	}
	members := []gossip.Member{
		member("n1", "a", "127.0.0.2", gossip.StateAlive),
		member("n2", "b", "127.0.0.3", gossip.StateAlive),
		member("w1", "w", "127.0.0.9", gossip.StateAlive),
		member("k1", "k", "127.0.0.10", gossip.StateAlive), // a client-token node
		member("gone", "g", "127.0.0.8", gossip.StateDead),
		member("e1", "e", "127.0.0.11", gossip.StateAlive), // evicted
		member("e2", "e2", "127.0.0.12", gossip.StateAlive),
		{Name: "bad", Address: "127.0.0.7", State: gossip.StateAlive, MetaErr: errors.New("meta did not decode")},
	}
	holders := map[string]bool{"a": true, "b": true, "c": true, "w": true}
	evicted := map[string]bool{"e": true}
	tr := Trust{Server: tok, Eligible: func(m gossip.Meta) bool { return holders[m.ID] }, Now: now,
		Evicted: func(id string, key []byte) bool { return evicted[id] || bytes.Equal(key, pubOf("e")) }}
	req := func(id, name string, role certs.Role) certs.SignRequest {
		return certs.SignRequest{NodeID: id, NodeName: name, Role: role, Identity: pubOf(id)}
	}
	with := func(r certs.SignRequest, f func(*certs.SignRequest)) certs.SignRequest { f(&r); return r }
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		name    string
		plan    *plan.Plan
		req     certs.SignRequest
		from    netip.Addr
		nat     bool
		want    certs.Identity
		admit   bool // the grant carries a new admission
		rotated bool // the client token was rotated once, its grace over
		wantErr string
	}{
		{name: "a client certificate for a client", plan: &p, req: req("w", "w1", certs.RoleClient), from: ip("127.0.0.9"),
			want: certs.Identity{NodeID: "w", NodeName: "w1", Region: "global", Address: "127.0.0.9", Role: certs.RoleClient}},
		{name: "a server certificate for a server", plan: &p, req: req("b", "n2", certs.RoleServer), from: ip("127.0.0.3"),
			want: certs.Identity{NodeID: "b", NodeName: "n2", Region: "global", Address: "127.0.0.3", Role: certs.RoleServer}},
		{name: "a CLI certificate for a server", plan: &p, req: req("a", "n1", certs.RoleCLI), from: ip("127.0.0.2"),
			want: certs.Identity{NodeID: "a", NodeName: "n1", Region: "global", Address: "127.0.0.2", Role: certs.RoleCLI}},
		{name: "a client certificate for a server", plan: &p, req: req("b", "n2", certs.RoleClient), from: ip("127.0.0.3"),
			want: certs.Identity{NodeID: "b", NodeName: "n2", Region: "global", Address: "127.0.0.3", Role: certs.RoleClient}},
		{name: "an IPv4-mapped source", plan: &p, req: req("w", "w1", certs.RoleClient), from: ip("::ffff:127.0.0.9"),
			want: certs.Identity{NodeID: "w", NodeName: "w1", Region: "global", Address: "127.0.0.9", Role: certs.RoleClient}},
		{name: "behind NAT", plan: &p, req: req("w", "w1", certs.RoleClient), from: ip("192.0.2.1"), nat: true,
			want: certs.Identity{NodeID: "w", NodeName: "w1", Region: "global", Address: "127.0.0.9", Role: certs.RoleClient}},
		{name: "a client-token node with its token", plan: &p, from: ip("127.0.0.10"),
			req:  with(req("k", "k1", certs.RoleClient), func(r *certs.SignRequest) { r.Admission = tok.Client(now.Add(time.Hour)).Admission() }),
			want: certs.Identity{NodeID: "k", NodeName: "k1", Region: "global", Address: "127.0.0.10", Role: certs.RoleClient}, admit: true},
		{name: "a client-token node with its earlier admission", plan: &p, from: ip("127.0.0.10"),
			req:  with(req("k", "k1", certs.RoleClient), func(r *certs.SignRequest) { r.Admission = tok.Admit("k", pubOf("k")) }),
			want: certs.Identity{NodeID: "k", NodeName: "k1", Region: "global", Address: "127.0.0.10", Role: certs.RoleClient}, admit: true},
		{name: "no plan yet", req: req("w", "w1", certs.RoleClient), from: ip("127.0.0.9"), wantErr: "no plan is committed yet"},
		{name: "a client asks for a server certificate", plan: &p, req: req("w", "w1", certs.RoleServer), from: ip("127.0.0.9"),
			wantErr: "is a client in plan epoch 2"},
		{name: "a client asks for a CLI certificate", plan: &p, req: req("w", "w1", certs.RoleCLI), from: ip("127.0.0.9"),
			wantErr: "is a client in plan epoch 2"},
		{name: "a client names a server's ID", plan: &p, req: req("b", "w1", certs.RoleServer), from: ip("127.0.0.9"),
			wantErr: "not an alive member"},
		{name: "a client names a server", plan: &p, req: req("w", "n2", certs.RoleServer), from: ip("127.0.0.9"),
			wantErr: "not an alive member"},
		{name: "a client names a server with its own key", plan: &p, from: ip("127.0.0.9"),
			req:     with(req("b", "n2", certs.RoleServer), func(r *certs.SignRequest) { r.Identity = pubOf("w") }),
			wantErr: "node n2 announces another identity key than the one that signed the request"},
		{name: "a server's request from another address", plan: &p, req: req("b", "n2", certs.RoleServer), from: ip("127.0.0.9"),
			wantErr: "the request comes from 127.0.0.9, not from node n2's address 127.0.0.3"},
		{name: "a server whose key the plan does not record", plan: func() *plan.Plan { q := p.Clone(); q.Servers[1].Key = keyB64("w"); return &q }(),
			req: req("b", "n2", certs.RoleServer), from: ip("127.0.0.3"), wantErr: "node n2 signs with another identity key than plan epoch 2 records for it"},
		{name: "a server that lost the server token", plan: &p, req: req("b", "n2", certs.RoleServer), from: ip("127.0.0.3"),
			wantErr: "node n2 does not hold the server token"},
		{name: "a client-token node without an admission", plan: &p, req: req("k", "k1", certs.RoleClient), from: ip("127.0.0.10"),
			wantErr: "node k1: certs: the node shows neither a valid client token nor an earlier admission"},
		{name: "a client-token node with an expired token", plan: &p, from: ip("127.0.0.10"),
			req:     with(req("k", "k1", certs.RoleClient), func(r *certs.SignRequest) { r.Admission = tok.Client(now.Add(-time.Hour)).Admission() }),
			wantErr: "the client token has expired"},
		{name: "a client-token node with another cluster's token", plan: &p, from: ip("127.0.0.10"),
			req:     with(req("k", "k1", certs.RoleClient), func(r *certs.SignRequest) { r.Admission = other.Client(time.Time{}).Admission() }),
			wantErr: "neither a valid client token nor an earlier admission"},
		{name: "a client-token node with another node's admission", plan: &p, from: ip("127.0.0.10"),
			req:     with(req("k", "k1", certs.RoleClient), func(r *certs.SignRequest) { r.Admission = tok.Admit("w", pubOf("w")) }),
			wantErr: "neither a valid client token nor an earlier admission"},
		{name: "a client-token node asks for a server certificate", plan: &p, req: req("k", "k1", certs.RoleServer), from: ip("127.0.0.10"),
			wantErr: "is a client in plan epoch 2"},
		{name: "a dead member", plan: &p, req: req("g", "gone", certs.RoleClient), from: ip("127.0.0.8"), wantErr: "not an alive member"},
		{name: "a member whose meta did not decode", plan: &p, req: req("x", "bad", certs.RoleClient), from: ip("127.0.0.7"),
			wantErr: "not an alive member"},
		{name: "a stranger", plan: &p, req: req("x", "x1", certs.RoleClient), from: ip("127.0.0.9"), wantErr: "not an alive member"},
		{name: "an evicted node", plan: &p, req: req("e", "e1", certs.RoleClient), from: ip("127.0.0.11"),
			wantErr: "node e1 (e) was evicted from the cluster"},
		{name: "an evicted node's key under a new ID", plan: &p, from: ip("127.0.0.12"),
			req: with(req("e2", "e2", certs.RoleClient), func(r *certs.SignRequest) { r.Identity = pubOf("e") }), wantErr: "was evicted from the cluster"},
		{name: "a client-token node with a rotated token", plan: &p, from: ip("127.0.0.10"), rotated: true,
			req:     with(req("k", "k1", certs.RoleClient), func(r *certs.SignRequest) { r.Admission = tok.Client(time.Time{}).Admission() }),
			wantErr: "replaced by `nomad-bootstrapd token rotate -client`"},
		{name: "a client-token node with the new token", plan: &p, from: ip("127.0.0.10"), rotated: true,
			req:  with(req("k", "k1", certs.RoleClient), func(r *certs.SignRequest) { r.Admission = tok.ClientOf(1, time.Time{}).Admission() }),
			want: certs.Identity{NodeID: "k", NodeName: "k1", Region: "global", Address: "127.0.0.10", Role: certs.RoleClient}, admit: true},
		{name: "a client-token node admitted before the rotation", plan: &p, from: ip("127.0.0.10"), rotated: true,
			req:  with(req("k", "k1", certs.RoleClient), func(r *certs.SignRequest) { r.Admission = tok.Admit("k", pubOf("k")) }),
			want: certs.Identity{NodeID: "k", NodeName: "k1", Region: "global", Address: "127.0.0.10", Role: certs.RoleClient}, admit: true},
		{name: "an unknown role", plan: &p, req: req("w", "w1", "root"), from: ip("127.0.0.9"), wantErr: `unknown role "root"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "a server that lost the server token" {
				holders["b"] = false
				defer func() { holders["b"] = true }()
			}
			trust := tr
			trust.BehindNAT = tt.nat
			if tt.rotated {
				trust.Clients = certs.ClientPolicy{Generation: 1, PreviousUntil: now}
			}
			got, err := Authorize(tt.plan, members, &tt.req, tt.from, trust)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Authorize = %+v, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Identity != tt.want {
				t.Fatalf("Authorize = %+v, %v; want %+v", got, err, tt.want)
			}
			if (got.Admission != nil) != tt.admit {
				t.Fatalf("admission %x; want one: %v", got.Admission, tt.admit)
			}
			if tt.admit && tok.CheckAdmission(got.Admission, tt.req.NodeID, tt.req.Identity, now.Add(1000*time.Hour)) != nil {
				t.Error("the new admission does not admit the node later")
			}
		})
	}
}

func TestTakesOver(t *testing.T) {
	p := testPlan()
	tests := []struct {
		name  string
		self  string
		alive []string
		want  bool
	}{
		{name: "the next server, all alive", self: "b", alive: []string{"n2", "n3"}, want: true},
		{name: "the one after it, while it lives", self: "c", alive: []string{"n2", "n3"}, want: false},
		{name: "the one after it, once it is gone too", self: "c", alive: []string{"n3"}, want: true},
		{name: "the CA holder itself", self: "a", alive: []string{"n1", "n2", "n3"}, want: false},
		{name: "a client", self: "w", alive: []string{"n3"}, want: false},
		{name: "the next server, seen as not alive by itself", self: "b", alive: nil, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alive := map[string]bool{}
			for _, n := range tt.alive {
				alive[n] = true
			}
			if got := TakesOver(p, tt.self, alive); got != tt.want {
				t.Errorf("TakesOver(%s) = %v, want %v", tt.self, got, tt.want)
			}
		})
	}
}

func TestCandidates(t *testing.T) {
	p := testPlan()
	p.CAHolder = "c"
	var got []string
	for _, s := range Candidates(p) {
		got = append(got, s.ID)
	}
	if want := []string{"c", "a", "b"}; !slices.Equal(got, want) {
		t.Errorf("Candidates = %q, want %q", got, want)
	}
	if ids := p.Servers; ids[0].ID != "a" || ids[2].ID != "c" {
		t.Errorf("Candidates changed the plan's servers: %+v", ids)
	}
}

func TestAuthorizeKeys(t *testing.T) {
	p := testPlan()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var tok certs.Token
	tok.Secret[0] = 1
	members := []gossip.Member{
		{Name: "n1", Address: "127.0.0.2", State: gossip.StateAlive, Meta: gossip.Meta{ID: "a", Identity: pubOf("a")}},
		{Name: "w1", Address: "127.0.0.9", State: gossip.StateAlive, Meta: gossip.Meta{ID: "w", Identity: pubOf("w")}},
		{Name: "k1", Address: "127.0.0.10", State: gossip.StateAlive, Meta: gossip.Meta{ID: "k", Identity: pubOf("k")}},
	}
	holders := map[string]bool{"a": true, "b": true, "c": true, "w": true}
	endorsement := bytes.Repeat([]byte{0xee}, 64) // stands for the server token's
	tr := Trust{Server: tok, Now: now,
		Eligible: func(m gossip.Meta) bool {
			return holders[m.ID] && (m.Endorsement == nil || bytes.Equal(m.Endorsement, endorsement))
		},
		Evicted: func(id string, key []byte) bool { return id == "e" || bytes.Equal(key, pubOf("e")) }}
	req := func(id, name string, role certs.Role, adm []byte) *certs.SignRequest {
		return &certs.SignRequest{NodeID: id, NodeName: name, Role: role, Identity: pubOf(id), Admission: adm}
	}
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		name    string
		req     *certs.SignRequest
		from    netip.Addr
		wantErr string
	}{
		{"an alive server", req("a", "n1", certs.RoleServer, nil), ip("127.0.0.2"), ""},
		{"an alive client", req("w", "w1", certs.RoleClient, nil), ip("127.0.0.9"), ""},
		{"an alive member from another address", req("w", "w1", certs.RoleClient, nil), ip("127.0.0.77"), "not from node w1's address"},
		{"an alive client-token node without admission", req("k", "k1", certs.RoleClient, nil), ip("127.0.0.10"), "neither a valid client token"},
		{"an alive client-token node admitted", req("k", "k1", certs.RoleClient, tok.Admit("k", pubOf("k"))), ip("127.0.0.10"), ""},
		{"a server of the plan that was away", req("b", "n2", certs.RoleServer, nil), ip("127.0.0.3"), ""},
		{"a server of the plan with another key", with(req("b", "n2", certs.RoleServer, nil), func(r *certs.SignRequest) { r.Identity = pubOf("x") }), ip("127.0.0.3"), "another identity key"},
		{"a server-token node away, endorsed", req("s", "s1", certs.RoleClient, endorsement), ip("127.0.0.30"), ""},
		{"a node away with a made-up endorsement", req("s", "s1", certs.RoleClient, bytes.Repeat([]byte{1}, 64)), ip("127.0.0.30"), "not admitted"},
		{"a client-token node away, admitted", req("j", "j1", certs.RoleClient, tok.Admit("j", pubOf("j"))), ip("127.0.0.31"), ""},
		{"a new client-token node with its token", req("n", "new1", certs.RoleClient, tok.Client(now.Add(time.Hour)).Admission()), ip("127.0.0.32"), ""},
		{"a new node with an expired token", req("n", "new1", certs.RoleClient, tok.Client(now.Add(-time.Hour)).Admission()), ip("127.0.0.32"), "expired"},
		{"another node's admission", req("j", "j1", certs.RoleClient, tok.Admit("k", pubOf("k"))), ip("127.0.0.31"), "not this node's"},
		{"a stranger", req("x", "x1", certs.RoleClient, nil), ip("127.0.0.33"), "not a member and not admitted"},
		{"an evicted node, admitted", req("e", "e1", certs.RoleClient, tok.Admit("e", pubOf("e"))), ip("127.0.0.34"), "was evicted"},
	}
	holders["s"] = true
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := AuthorizeKeys(&p, members, tt.req, tt.from, tr)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("AuthorizeKeys = %v; want %q", err, tt.wantErr)
			}
		})
	}
	if err := AuthorizeKeys(nil, members, req("a", "n1", certs.RoleServer, nil), ip("127.0.0.2"), tr); err == nil {
		t.Error("AuthorizeKeys without a plan succeeded")
	}
}

func with(r *certs.SignRequest, f func(*certs.SignRequest)) *certs.SignRequest { f(r); return r }
