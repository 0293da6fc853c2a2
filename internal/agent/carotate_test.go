package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

func TestCARotationDue(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := &x509.Certificate{NotBefore: start, NotAfter: start.Add(1000 * time.Hour)}
	for _, tt := range []struct {
		percent int
		want    time.Time
	}{
		{0, time.Time{}},
		{50, start.Add(500 * time.Hour)},
		{80, start.Add(800 * time.Hour)},
		{99, start.Add(990 * time.Hour)},
	} {
		if got := caRotationDue(cert, tt.percent); !got.Equal(tt.want) {
			t.Errorf("caRotationDue(%d%%) = %v; want %v", tt.percent, got, tt.want)
		}
	}
}

// What a node announces of a CA rotation follows its bundle on disk and
// the CAs that issued its certificates.
func TestCAGenerations(t *testing.T) {
	now := time.Now()
	newCA := func() *certs.CA {
		ca, err := certs.NewCA(rand.Reader, "cluster", now, 0)
		if err != nil {
			t.Fatal(err)
		}
		return ca
	}
	leaf := func(ca *certs.CA) *x509.Certificate {
		key, err := certs.NewKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := certs.CreateCSR(key, "node1")
		if err != nil {
			t.Fatal(err)
		}
		csr, err := certs.ParseCSR(der)
		if err != nil {
			t.Fatal(err)
		}
		id := certs.Identity{NodeID: "8f0c4f38-3f0e-4c7e-9d55-0d1f8f2b7a10", NodeName: "node1", Region: "global", Address: "127.0.0.1", Role: certs.RoleClient}
		cert, err := ca.Sign(csr, id, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(cert)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old, next, stranger := newCA(), newCA(), newCA()
	both := []string{string(next.BundlePEM()), string(old.BundlePEM())}
	trust := clusterstate.CA{Generation: 1, Phase: clusterstate.CATrust, Bundles: both}
	issue := clusterstate.CA{Generation: 1, Phase: clusterstate.CAIssue, Bundles: both}
	done := clusterstate.CA{Generation: 1, Phase: clusterstate.CADone, Bundles: both[:1]}
	tests := []struct {
		name                   string
		rec                    clusterstate.CA
		disk                   [][]byte
		leaves                 []*x509.Certificate
		newest, oldest, issued uint32
	}{
		{"never rotated", clusterstate.CA{}, [][]byte{old.BundlePEM()}, []*x509.Certificate{leaf(old)}, 0, 0, 0},
		{"trust, the bundle not followed yet", trust, [][]byte{old.BundlePEM()}, []*x509.Certificate{leaf(old)}, 0, 0, 0},
		{"trust, both trusted", trust, [][]byte{next.BundlePEM(), old.BundlePEM()}, []*x509.Certificate{leaf(old)}, 1, 0, 0},
		{"issue, one certificate renewed", issue, [][]byte{next.BundlePEM(), old.BundlePEM()}, []*x509.Certificate{leaf(next), leaf(old)}, 1, 0, 0},
		{"issue, every certificate renewed", issue, [][]byte{next.BundlePEM(), old.BundlePEM()}, []*x509.Certificate{leaf(next), leaf(next)}, 1, 0, 1},
		{"done", done, [][]byte{next.BundlePEM()}, []*x509.Certificate{leaf(next)}, 1, 1, 1},
		{"done, a certificate of a CA rotated out", done, [][]byte{next.BundlePEM()}, []*x509.Certificate{leaf(old)}, 1, 1, 0},
		{"a certificate of a stranger's CA", issue, [][]byte{next.BundlePEM(), old.BundlePEM()}, []*x509.Certificate{leaf(stranger)}, 1, 0, 0},
		{"no certificates yet", done, [][]byte{next.BundlePEM()}, nil, 1, 1, 0},
		{"no bundle", done, nil, []*x509.Certificate{leaf(next)}, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ca.pem")
			var b []byte
			for _, d := range tt.disk {
				b = append(b, d...)
			}
			if tt.disk != nil {
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			n, o, i := caGenerations(tt.rec, path, tt.leaves)
			if n != tt.newest || o != tt.oldest || i != tt.issued {
				t.Errorf("caGenerations = newest %d, oldest %d, issued %d; want %d, %d, %d", n, o, i, tt.newest, tt.oldest, tt.issued)
			}
		})
	}
}

// Only a server of the node's plan, with the key the plan records, changes
// the CAs a node trusts; a server-token holder that is not one does not.
func TestCAChangeSigner(t *testing.T) {
	key := func() ed25519.PublicKey {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	serverKey, spareKey := key(), key()
	const serverID, spareID = "8f0c4f38-3f0e-4c7e-9d55-0d1f8f2b7a10", "1b2c3d4e-3f0e-4c7e-9d55-0d1f8f2b7a10"
	p := &plan.Plan{Epoch: 2, Servers: []plan.Server{{ID: serverID, Name: "node1", Key: base64.StdEncoding.EncodeToString(serverKey)}}}
	held := clusterstate.CA{}
	trust := clusterstate.CA{Generation: 1, Phase: clusterstate.CATrust, Bundles: []string{"new", "old"}}
	issue := clusterstate.CA{Generation: 1, Phase: clusterstate.CAIssue, Bundles: []string{"new", "old"}}
	tests := []struct {
		name       string
		p          *plan.Plan
		held, next clusterstate.CA
		by         string
		key        ed25519.PublicKey
		ok         bool
	}{
		{"no change, by anyone", p, trust, trust, spareID, spareKey, true},
		{"a rotation begun by a server of the plan", p, held, trust, serverID, serverKey, true},
		{"a rotation begun by a server-token holder outside the plan", p, held, trust, spareID, spareKey, false},
		{"a step taken by a server-token holder outside the plan", p, trust, issue, spareID, spareKey, false},
		{"a server's ID with another key", p, held, trust, serverID, spareKey, false},
		{"a node without a plan yet", nil, held, trust, spareID, spareKey, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := caChangeSigner(tt.p, tt.held, tt.next, clusterstate.Signed{By: tt.by, Key: tt.key})
			if (err == nil) != tt.ok {
				t.Errorf("caChangeSigner = %v; want ok %v", err, tt.ok)
			}
		})
	}
}
