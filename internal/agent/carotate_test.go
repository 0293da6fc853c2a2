package agent

import (
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
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
