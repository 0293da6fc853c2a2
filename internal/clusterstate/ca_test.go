package clusterstate

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
)

// newCA returns a new cluster CA, as the CA holder makes one.
func newCA(t testing.TB) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA(rand.Reader, cluster, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// testCert returns a small Ed25519 certificate, a CA when isCA, issued by
// parent (self-signed when nil), with pad bytes of organizational unit.
func testCert(t *testing.T, parent *certs.CA, isCA bool, pad int) *certs.CA {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	subject := pkix.Name{CommonName: "test"}
	if pad > 0 {
		subject.OrganizationalUnit = []string{strings.Repeat("u", pad)}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             at.Add(-time.Hour),
		NotAfter:              at.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	issuer, key := tmpl, any(priv)
	if parent != nil {
		issuer, key = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &certs.CA{Cert: cert, Key: priv}
	if parent != nil {
		ca.Chain = append([]*x509.Certificate{parent.Cert}, parent.Chain...)
	}
	return ca
}

// fullBundle returns a bundle of MaxCABundleCerts CA certificates within
// a few bytes of MaxCABundleSize.
func fullBundle(t *testing.T) string {
	t.Helper()
	var head []byte
	for range MaxCABundleCerts - 1 {
		head = append(head, testCert(t, nil, true, 0).BundlePEM()...)
	}
	best := ""
	for pad := 0; ; pad += 16 {
		b := string(head) + string(testCert(t, nil, true, pad).BundlePEM())
		if len(b) > MaxCABundleSize {
			break
		}
		best = b
	}
	if len(best) < MaxCABundleSize-100 {
		t.Fatalf("full bundle of %d bytes only", len(best))
	}
	return best
}

func TestCAValidate(t *testing.T) {
	a, b := string(newCA(t).BundlePEM()), string(newCA(t).BundlePEM())
	root := testCert(t, nil, true, 0)
	intermediate := string(testCert(t, root, true, 0).BundlePEM())
	leaf := string(testCert(t, nil, false, 0).BundlePEM())
	leafChain := testCert(t, nil, true, 0)
	leafChain.Chain = []*x509.Certificate{testCert(t, nil, false, 0).Cert}
	key, err := newCA(t).KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	var nine string
	for range MaxCABundleCerts + 1 {
		nine += string(testCert(t, nil, true, 0).BundlePEM())
	}
	trust := func(bundles ...string) CA {
		return CA{Generation: 1, Phase: CATrust, Bundles: bundles, StartedAt: at}
	}
	done := func(bundles ...string) CA {
		return CA{Generation: 1, Phase: CADone, Bundles: bundles, StartedAt: at, RotatedAt: at.Add(time.Hour)}
	}
	tests := []struct {
		name string
		c    CA
		want string // "" when valid
	}{
		{"zero", CA{}, ""},
		{"empty bundles", CA{Bundles: []string{}}, ""},
		{"trust", trust(a, b), ""},
		{"issue", CA{Generation: 1, Phase: CAIssue, Bundles: []string{a, b}, StartedAt: at}, ""},
		{"done", done(a), ""},
		{"intermediate with its root", trust(intermediate, a), ""},
		{"full bundles", trust(fullBundle(t), fullBundle(t)), ""},
		{"generation 0", CA{Phase: CADone, Bundles: []string{a}, StartedAt: at, RotatedAt: at}, "generation 0"},
		{"unknown phase", CA{Generation: 1, Phase: "switch", Bundles: []string{a, b}, StartedAt: at}, `phase "switch"`},
		{"no phase", CA{Generation: 1, Bundles: []string{a, b}, StartedAt: at}, `phase ""`},
		{"trust with one bundle", trust(a), "1 bundles, not 2"},
		{"trust with three bundles", trust(a, b, intermediate), "3 bundles, not 2"},
		{"done with two bundles", done(a, b), "2 bundles, not 1"},
		{"done without bundles", done(), "0 bundles, not 1"},
		{"done without time", CA{Generation: 1, Phase: CADone, Bundles: []string{a}, StartedAt: at}, "no time it was done"},
		{"trust with a time done", CA{Generation: 1, Phase: CATrust, Bundles: []string{a, b}, StartedAt: at, RotatedAt: at}, "has a time it was done"},
		{"no start", CA{Generation: 1, Phase: CATrust, Bundles: []string{a, b}}, "no time it began"},
		{"same CA twice", trust(a, a), "rotates to the CA it rotates from"},
		{"same CA, another chain", trust(a, a+intermediate), "rotates to the CA it rotates from"},
		{"not a CA", trust(leaf, b), "not a CA certificate"},
		{"chain with a non-CA", trust(string(leafChain.BundlePEM()), b), "certificate 2"},
		{"garbage", trust("garbage", b), "no PEM certificate"},
		{"garbage PEM", trust("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b), "malformed"},
		{"empty bundle", trust(a, ""), "no PEM certificate"},
		{"private key", trust(a+string(key), b), "more than its certificates"},
		{"text around", trust("# new CA\n"+a, b), "more than its certificates"},
		{"no final newline", trust(strings.TrimSuffix(a, "\n"), b), "more than its certificates"},
		{"too large", trust(a, fullBundle(t)+intermediate), "exceed"},
		{"too many certificates", trust(nine, b), fmt.Sprintf("%d certificates exceed %d", MaxCABundleCerts+1, MaxCABundleCerts)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := State{Cluster: cluster, CA: tt.c}.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestWithCA(t *testing.T) {
	c0, c1, c2, c3 := newCA(t), newCA(t), newCA(t), newCA(t)
	p0, p1, p2, p3 := string(c0.BundlePEM()), string(c1.BundlePEM()), string(c2.BundlePEM()), string(c3.BundlePEM())
	trust1 := CA{Generation: 1, Phase: CATrust, Bundles: []string{p1, p0}, StartedAt: at}
	issue1 := CA{Generation: 1, Phase: CAIssue, Bundles: []string{p1, p0}, StartedAt: at}
	done1 := CA{Generation: 1, Phase: CADone, Bundles: []string{p1}, StartedAt: at, RotatedAt: at.Add(time.Hour)}
	trust2 := CA{Generation: 2, Phase: CATrust, Bundles: []string{p2, p1}, StartedAt: at.Add(2 * time.Hour)}

	s := State{Cluster: cluster, Version: 4}
	tests := []struct {
		name    string
		c       CA
		changed bool
		version uint64
		err     string
	}{
		{"zero on zero", CA{}, false, 4, ""},
		{"issue before trust", issue1, false, 4, "starts in phase issue"},
		{"generation 2 first", CA{Generation: 2, Phase: CATrust, Bundles: []string{p2, p0}, StartedAt: at}, false, 4, "does not follow generation 0"},
		{"bad bundle", CA{Generation: 1, Phase: CATrust, Bundles: []string{p1, "garbage"}, StartedAt: at}, false, 4, "no PEM certificate"},
		{"trust", trust1, true, 5, ""},
		{"trust again", trust1, false, 5, ""},
		{"trust again, other time", CA{Generation: 1, Phase: CATrust, Bundles: []string{p1, p0}, StartedAt: at.Add(time.Minute)}, false, 5, ""},
		{"trust with another new CA", CA{Generation: 1, Phase: CATrust, Bundles: []string{p3, p0}, StartedAt: at}, false, 5, "with other CAs"},
		{"issue with another old CA", CA{Generation: 1, Phase: CAIssue, Bundles: []string{p1, p3}, StartedAt: at}, false, 5, "with other CAs"},
		{"done before issue", done1, false, 5, "cannot go from trust to done"},
		{"next generation from the unused CA", trust2, false, 5, "does not start from the CA that signs in generation 1's phase trust"},
		{"issue", issue1, true, 6, ""},
		{"next generation before done", trust2, false, 6, "in phase issue: it must be done"},
		{"trust, late", trust1, false, 6, ""},
		{"done with another CA", CA{Generation: 1, Phase: CADone, Bundles: []string{p0}, StartedAt: at, RotatedAt: at}, false, 6, "with other CAs"},
		{"done", done1, true, 7, ""},
		{"issue, late", issue1, false, 7, ""},
		{"zero, late", CA{}, false, 7, ""},
		{"next generation from another CA", CA{Generation: 2, Phase: CATrust, Bundles: []string{p2, p0}, StartedAt: at}, false, 7, "does not start from the CA that signs"},
		{"next generation in phase issue", CA{Generation: 2, Phase: CAIssue, Bundles: []string{p2, p1}, StartedAt: at}, false, 7, "starts in phase issue"},
		{"generation skipped", CA{Generation: 3, Phase: CATrust, Bundles: []string{p3, p1}, StartedAt: at}, false, 7, "does not follow generation 1"},
		{"back to the old CA", CA{Generation: 2, Phase: CATrust, Bundles: []string{p1, p1}, StartedAt: at}, false, 7, "rotates to the CA it rotates from"},
		{"next generation", trust2, true, 8, ""},
		{"older generation", done1, false, 8, ""},
	}
	for _, tt := range tests {
		next, changed, err := s.WithCA(tt.c)
		if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Fatalf("%s: error %v, want %q", tt.name, err, tt.err)
		}
		if changed != tt.changed || next.Version != tt.version {
			t.Fatalf("%s: changed %v, version %d; want %v, %d", tt.name, changed, next.Version, tt.changed, tt.version)
		}
		if changed && !reflect.DeepEqual(next.CA, tt.c) {
			t.Fatalf("%s: recorded %+v", tt.name, next.CA)
		}
		if !changed && !reflect.DeepEqual(next, s) {
			t.Fatalf("%s: unchanged state differs", tt.name)
		}
		s = next
	}
	if !reflect.DeepEqual(s.CA, trust2) {
		t.Fatalf("CA = %+v, want %+v", s.CA, trust2)
	}
}

func TestWithCAReplacesARotationCutShort(t *testing.T) {
	p0, p1, p2 := string(newCA(t).BundlePEM()), string(newCA(t).BundlePEM()), string(newCA(t).BundlePEM())
	s, _, err := State{Cluster: cluster}.WithCA(CA{Generation: 1, Phase: CATrust, Bundles: []string{p1, p0}, StartedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	// The new CA of generation 1 never signed: generation 2 starts from
	// the CA that still signs, and drops it.
	replaced := CA{Generation: 2, Phase: CATrust, Bundles: []string{p2, p0}, StartedAt: at.Add(time.Hour)}
	next, changed, err := s.WithCA(replaced)
	if err != nil || !changed || next.Version != 2 || next.CA.Signing() != s.CA.Signing() {
		t.Fatalf("replacing a rotation cut short in trust: %v %v version %d", changed, err, next.Version)
	}
	if _, _, err := s.WithCA(CA{Generation: 2, Phase: CATrust, Bundles: []string{p2, p1}, StartedAt: at}); err == nil {
		t.Fatal("the next generation started from a CA that never signed")
	}
	if _, _, err := (State{Cluster: cluster, CA: CA{Generation: 1, Phase: CATrust}}).WithCA(replaced); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Fatalf("starting from an invalid record: %v", err)
	}
}

func TestWithCASharesNothing(t *testing.T) {
	p0, p1 := string(newCA(t).BundlePEM()), string(newCA(t).BundlePEM())
	c := CA{Generation: 1, Phase: CATrust, Bundles: []string{p1, p0}, StartedAt: at}
	s, _, _ := State{Cluster: cluster}.Evict(Eviction{ID: idA, Name: "w1", At: at})
	s, _, err := s.WithCA(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Bundles[0] = "changed"
	if s.CA.Bundles[0] != p1 {
		t.Fatal("the state shares its bundles with the CA it was given")
	}
	next, changed, err := s.WithCA(CA{Generation: 1, Phase: CAIssue, Bundles: []string{p1, p0}, StartedAt: at})
	if err != nil || !changed {
		t.Fatalf("issue: %v %v", changed, err)
	}
	next.CA.Bundles[0], next.Evicted[0].Name = "changed", "changed"
	if s.CA.Bundles[0] != p1 || s.Evicted[0].Name != "w1" {
		t.Fatal("WithCA's result shares a backing array with the state it came from")
	}
	// The other changes copy the bundles too.
	for name, change := range map[string]func(State) State{
		"Evict":                 func(s State) State { n, _, _ := s.Evict(Eviction{ID: idB, Name: "w2", At: at}); return n },
		"RotateClientToken":     func(s State) State { n, _ := s.RotateClientToken(at, time.Hour); return n },
		"RotatedNomadGossipKey": func(s State) State { n, _ := s.RotatedNomadGossipKey(1, at); return n },
		"WithAgentGossipKey": func(s State) State {
			n, _, _ := s.WithAgentGossipKey(AgentKey{Generation: 1, Phase: KeyInstall, StartedAt: at})
			return n
		},
	} {
		n := change(s)
		if n.Version != s.Version+1 {
			t.Fatalf("%s: version %d", name, n.Version)
		}
		n.CA.Bundles[1] = "changed"
		if s.CA.Bundles[1] != p0 {
			t.Fatalf("%s: the result shares its bundles with the state it came from", name)
		}
	}
}

func TestCASigning(t *testing.T) {
	oldCA, newer := newCA(t), newCA(t)
	o, n := string(oldCA.BundlePEM()), string(newer.BundlePEM())
	tests := []struct {
		name         string
		c            CA
		fingerprints []string
		signing      string
		bundle       string
	}{
		{"zero", CA{}, nil, "", ""},
		{"trust", CA{Generation: 1, Phase: CATrust, Bundles: []string{n, o}, StartedAt: at}, []string{newer.Fingerprint(), oldCA.Fingerprint()}, oldCA.Fingerprint(), n + o},
		{"issue", CA{Generation: 1, Phase: CAIssue, Bundles: []string{n, o}, StartedAt: at}, []string{newer.Fingerprint(), oldCA.Fingerprint()}, newer.Fingerprint(), n + o},
		{"done", CA{Generation: 1, Phase: CADone, Bundles: []string{n}, StartedAt: at, RotatedAt: at}, []string{newer.Fingerprint()}, newer.Fingerprint(), n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Fingerprints(); !reflect.DeepEqual(got, tt.fingerprints) {
				t.Errorf("Fingerprints() = %q, want %q", got, tt.fingerprints)
			}
			if got := tt.c.Signing(); got != tt.signing {
				t.Errorf("Signing() = %q, want %q", got, tt.signing)
			}
			got := tt.c.BundlePEM()
			if string(got) != tt.bundle {
				t.Errorf("BundlePEM() = %q, want %q", got, tt.bundle)
			}
			if tt.bundle == "" {
				if got != nil {
					t.Errorf("BundlePEM() = %q, want nil", got)
				}
				return
			}
			// What a node writes to Nomad's ca_file parses, newest first.
			cs, err := certs.ParseCertsPEM(got)
			if err != nil || len(cs) != len(tt.fingerprints) || certs.Fingerprint(cs[0]) != tt.fingerprints[0] {
				t.Errorf("BundlePEM() parses to %d certificates, %v", len(cs), err)
			}
		})
	}
	// An intermediate's bundle: the fingerprint is the intermediate's.
	root := testCert(t, nil, true, 0)
	inter := testCert(t, root, true, 0)
	c := CA{Generation: 2, Phase: CAIssue, Bundles: []string{string(inter.BundlePEM()), o}, StartedAt: at}
	if got := c.Signing(); got != inter.Fingerprint() {
		t.Errorf("Signing() of an intermediate = %q, want %q", got, inter.Fingerprint())
	}
	if fps := (CA{Bundles: []string{"garbage"}}).Fingerprints(); len(fps) != 1 || fps[0] != "" {
		t.Errorf("Fingerprints() of a bundle that does not parse = %q", fps)
	}
}

func TestCASignVerify(t *testing.T) {
	p0, p1 := string(newCA(t).BundlePEM()), string(newCA(t).BundlePEM())
	s, _, _ := State{Cluster: cluster}.Evict(Eviction{ID: idA, Name: "w1", At: at})
	for _, c := range []CA{
		{Generation: 1, Phase: CATrust, Bundles: []string{p1, p0}, StartedAt: at},
		{Generation: 1, Phase: CAIssue, Bundles: []string{p1, p0}, StartedAt: at},
		{Generation: 1, Phase: CADone, Bundles: []string{p1}, StartedAt: at, RotatedAt: at.Add(time.Hour)},
	} {
		var err error
		if s, _, err = s.WithCA(c); err != nil {
			t.Fatal(err)
		}
		sg, err := Sign(s, idS, key(7), endorsement())
		if err != nil {
			t.Fatal(err)
		}
		wire, err := Decode(sg.Encode())
		if err != nil {
			t.Fatal(err)
		}
		got, err := wire.Verify(cluster, endorsedOnly(key(7)))
		if err != nil || !reflect.DeepEqual(got, s) {
			t.Fatalf("%s: verified %+v, %v; want %+v", c.Phase, got, err, s)
		}
	}

	// A signed state whose CA record is invalid is refused on both ends.
	bad := s
	bad.CA.Bundles = []string{p1, p0}
	if _, err := Sign(bad, idS, key(7), endorsement()); err == nil || !strings.Contains(err.Error(), "2 bundles") {
		t.Fatalf("Sign of an invalid CA record: %v", err)
	}
	body, err := json.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	sg := Signed{State: body, By: idS, Key: key(7).Public().(ed25519.PublicKey), Endorsement: endorsement(), Sig: ed25519.Sign(key(7), message(body))}
	if _, err := sg.Verify(cluster, endorsedOnly(key(7))); err == nil || !strings.Contains(err.Error(), "2 bundles") {
		t.Fatalf("Verify of an invalid CA record: %v", err)
	}
}

func TestCAJSON(t *testing.T) {
	b, err := json.Marshal(State{Cluster: cluster, Version: 1, CA: CA{Bundles: []string{}}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(`"ca"`)) {
		t.Fatalf("a state without a CA record marshals a ca key: %s", b)
	}
	p0, p1 := string(newCA(t).BundlePEM()), string(newCA(t).BundlePEM())
	s, _, err := State{Cluster: cluster}.WithCA(CA{Generation: 1, Phase: CATrust, Bundles: []string{p1, p0}, StartedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	b, err = json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw["ca"], &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"generation", "phase", "bundles", "started_at"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("the CA record has no %q: %s", k, raw["ca"])
		}
	}
	if _, ok := fields["rotated_at"]; ok {
		t.Errorf("a CA record not done has a rotated_at: %s", raw["ca"])
	}
}

// TestCAFullStateFits: the most evictions and the largest CA bundles sign
// within MaxSignedSize.
func TestCAFullStateFits(t *testing.T) {
	s := State{Cluster: cluster, Version: 1 << 62}
	late := time.Date(2026, 12, 7, 10, 0, 0, 999999999, time.FixedZone("", 5*3600+30*60))
	for i := range MaxEvicted {
		var err error
		e := Eviction{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Name: strings.Repeat("n", gossip.MaxNameLen), Key: b64(key(byte(i))), At: late}
		if s, _, err = s.Evict(e); err != nil {
			t.Fatal(err)
		}
	}
	s.ClientToken = ClientToken{Generation: 1<<32 - 1, RotatedAt: late, PreviousUntil: late}
	s.NomadGossipKey = KeyGeneration{Generation: 1<<32 - 1, RotatedAt: late}
	s.AgentGossipKey = AgentKey{Generation: 1<<32 - 1, Phase: KeyInstall, StartedAt: late, RotatedAt: late}
	s.CA = CA{Generation: 1<<32 - 1, Phase: CAIssue, Bundles: []string{fullBundle(t), fullBundle(t)}, StartedAt: late}
	s.NomadUpgrade = NomadUpgrade{Version: "1000.1000.1000-beta.1000", Stage: UpgradeClients, Batch: MaxUpgradeBatch, DrainDeadline: 1<<63 - 1, NodeTimeout: 1<<63 - 1,
		Step: TurnDrain, TurnAt: late, Upgraded: 1<<31 - 1, StartedAt: late, FinishedAt: late}
	for i := range MaxUpgradeBatch {
		s.NomadUpgrade.Turn = append(s.NomadUpgrade.Turn, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
	}
	if err := s.NomadUpgrade.validate(); err != nil {
		t.Fatal(err)
	}
	sg, err := Sign(s, idS, key(9), endorsement())
	if err != nil {
		t.Fatal(err)
	}
	n := len(sg.Encode())
	if n > MaxSignedSize {
		t.Fatalf("a full state signs to %d bytes, more than MaxSignedSize %d", n, MaxSignedSize)
	}
	t.Logf("a full state signs to %d bytes of %d", n, MaxSignedSize)
	if _, err := Decode(sg.Encode()); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseState feeds the decoder of a state's JSON, which a node runs on
// every state whose signature verified and on the Variable read from
// Nomad: it never panics, and what it accepts is valid and round-trips.
func FuzzParseState(f *testing.F) {
	old, next := certs.EncodeCertPEM(newCA(f).Cert.Raw), certs.EncodeCertPEM(newCA(f).Cert.Raw)
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []State{
		{Cluster: cluster, Version: 1},
		{Cluster: cluster, Version: 2, CA: CA{Generation: 1, Phase: CATrust, Bundles: []string{string(next), string(old)}, StartedAt: at}},
		{Cluster: cluster, Version: 3, CA: CA{Generation: 1, Phase: CADone, Bundles: []string{string(next)}, StartedAt: at, RotatedAt: at}},
	} {
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseState(b)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed an invalid state: %v", err)
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseState(again); err != nil {
			t.Fatalf("a parsed state does not parse again: %v", err)
		}
	})
}
