package caholder

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/casvc"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

// Endpoint is what [Listen] needs to run the signing endpoint on this node.
type Endpoint struct {
	// CA signs the certificates.
	CA *certs.CA
	// Self is this node as the endpoint's own certificate names it; its
	// role is server.
	Self certs.Identity
	// Bind and Port are where the endpoint listens.
	Bind string
	Port int
	// CSRKey authenticates requests (certs.Keys.CSR).
	CSRKey []byte
	// Authority decides each requester's identity, [Authorize] under the
	// committed plan.
	Authority casvc.Authority
	// Keys hands the agents' gossip keys to the nodes that lack them.
	Keys casvc.Keys
	// NotSigning, when set, makes the endpoint answer for the keys only,
	// and certificate requests with this text (casvc.Config.NotSigning).
	NotSigning string
	// Member reports whether an address is an alive member's: its
	// connections are taken however many strangers hold.
	Member func(netip.Addr) bool
	// Lifetime of issued certificates.
	Lifetime time.Duration
	// Now is the clock.
	Now func() time.Time
	// Logger receives the endpoint's log.
	Logger *slog.Logger
}

// Listen starts listening for certificate requests with e and returns the
// endpoint and its listener; the caller serves it (casvc.Server.Serve) and
// closes it. The endpoint's own certificate is a server certificate of
// e.Self, whose key lives in memory only.
func Listen(e Endpoint) (*casvc.Server, net.Listener, error) {
	key, err := certs.NewKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csrDER, err := certs.CreateCSR(key, e.Self.NodeName)
	if err != nil {
		return nil, nil, err
	}
	csr, err := certs.ParseCSR(csrDER)
	if err != nil {
		return nil, nil, err
	}
	self := e.Self
	self.Role = certs.RoleServer
	der, err := e.CA.Sign(csr, self, e.Now(), 0)
	if err != nil {
		return nil, nil, err
	}
	srv := casvc.NewServer(casvc.Config{
		CA:         e.CA,
		ServerCert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		Verifier:   certs.NewVerifier(e.CSRKey, 0, e.Now),
		Authority:  e.Authority,
		Keys:       e.Keys,
		NotSigning: e.NotSigning,
		Conns:      casvc.ConnLimits{Member: e.Member},
		Lifetime:   e.Lifetime,
		Now:        e.Now,
		Logger:     e.Logger,
	})
	l, err := net.Listen("tcp", net.JoinHostPort(e.Bind, strconv.Itoa(e.Port)))
	if err != nil {
		return nil, nil, fmt.Errorf("agent: CA endpoint: %w", err)
	}
	return srv, l, nil
}
