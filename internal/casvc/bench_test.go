package casvc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

// BenchmarkCertify500 measures the time for 500 nodes, each with its key
// and CSR made beforehand, to get their certificates from one CA endpoint
// over HTTPS on loopback, 32 requests in flight: the work of the CA holder
// right after a 500-node plan is committed.
func BenchmarkCertify500(b *testing.B) {
	const nodes, inflight = 500, 32
	tok, _ := certs.NewToken(rand.Reader)
	ca, err := certs.NewCA(rand.Reader, tok.ClusterIDString(), time.Now(), 0)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := certs.NewKey(rand.Reader)
	csrDER, _ := certs.CreateCSR(key, "ca")
	csr, _ := certs.ParseCSR(csrDER)
	der, err := ca.Sign(csr, certs.Identity{NodeName: "ca", Region: "global", Address: "127.0.0.1", Role: certs.RoleServer}, time.Now(), 0)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(Config{
		CA:         ca,
		ServerCert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		Verifier:   certs.NewVerifier(tok.CSRKey(), 0, time.Now),
		// The 500 nodes share one address here, not in a cluster.
		Conns:       ConnLimits{PerAddr: 1 << 20, Total: 1 << 20},
		RatePerAddr: RateLimit{Every: time.Microsecond, Burst: 1 << 20},
		Authority: AuthorityFunc(func(r *certs.SignRequest, _ netip.Addr) (Grant, error) {
			return Grant{Identity: certs.Identity{NodeID: r.NodeID, NodeName: r.NodeName, Region: "global", Address: "10.1.2.3", Role: certs.RoleClient}}, nil
		}),
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	identity := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	csrs := make([][]byte, nodes)
	for i := range csrs {
		k, _ := certs.NewKey(rand.Reader)
		csrs[i], _ = certs.CreateCSR(k, fmt.Sprintf("n%d", i))
	}
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		start := time.Now()
		sem := make(chan struct{}, inflight)
		var wg sync.WaitGroup
		errs := make(chan error, nodes)
		for i := range nodes {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				req := &certs.SignRequest{NodeID: fmt.Sprintf("id-%d-%d", i, start.UnixNano()), NodeName: fmt.Sprintf("n%d", i), Role: certs.RoleClient, CSR: csrs[i]}
				if err := req.Seal(tok.CSRKey(), identity, time.Now(), rand.Reader); err != nil {
					errs <- err
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, _, err := Request(ctx, l.Addr().String(), ca.Fingerprint(), req); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		total += time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	b.ReportMetric((total / time.Duration(b.N)).Seconds(), "s/500-nodes")
}
