// Package casvc is the network side of the cluster CA: the HTTPS endpoint
// on the CA holder that signs the nodes' certificate requests, and the
// client with which a node reaches it, pinning the CA by fingerprint.
//
// It knows nothing of plans or gossip. The signing policy lives in
// internal/certs (names, key types, lifetimes); who gets which certificate
// is the Authority's decision, which the agent implements from the
// committed plan.
//
// Protocol (HTTPS, TLS 1.2 or later):
//
//	POST /v1/sign   body: certs.SignRequest.Encode (at most 32 KiB)
//	                200: {"certificate": PEM, "ca_bundle": PEM}
//	                400 malformed, 401 not authenticated (MAC, timestamp,
//	                replay), 403 refused by the authority, 429 rate limited,
//	                500 internal; all errors are {"error": "..."}
//	GET  /v1/ca     the CA bundle (PEM); public
//	POST /v1/gossip-keys  body: certs.SignRequest.Encode whose CSR is
//	                certs.KeysRequestCSR; 200: the Keys source's answer
//	                (internal/gossipkeys), other codes as for /v1/sign;
//	                404 where the server has no Keys source
package casvc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/peeraddr"
)

// Endpoint paths.
const (
	// SignPath is where nodes POST their sign requests.
	SignPath = "/v1/sign"
	// CAPath serves the CA bundle.
	CAPath = "/v1/ca"
	// KeysPath is where nodes POST their requests for the agents' gossip
	// keys.
	KeysPath = "/v1/gossip-keys"
)

// Keys answers the authenticated requests for the agents' gossip keys: it
// decides whether the node may have them and returns the answer's body,
// sealed to the node. An error refuses the request (403) and is sent to
// the node.
type Keys interface {
	Keys(req *certs.SignRequest, remote netip.Addr) ([]byte, error)
}

// KeysFunc adapts a function to Keys.
type KeysFunc func(req *certs.SignRequest, remote netip.Addr) ([]byte, error)

// Keys calls f(req, remote).
func (f KeysFunc) Keys(req *certs.SignRequest, remote netip.Addr) ([]byte, error) {
	return f(req, remote)
}

// Authority decides what a node may be certified as. The server calls it
// only for requests that are authenticated by the cluster's token, fresh and
// within the node's rate, possibly from many goroutines at once.
type Authority interface {
	// Authorize returns what to certify for req, which came from remote:
	// the node's role (from the committed plan, whatever role the request
	// asks for), its address (from gossip) and the region. An error
	// refuses the request (403); its text is sent to the node, so it
	// should say why, e.g. "node c1 is a client in plan epoch 3, not a
	// server".
	Authorize(req *certs.SignRequest, remote netip.Addr) (Grant, error)
}

// Grant is an Authority's decision.
type Grant struct {
	// Identity is what the certificate names.
	Identity certs.Identity
	// Admission, when set, goes back to the node with its certificate: the
	// proof that it was admitted, which it shows when it renews
	// (certs.Token.Admit).
	Admission []byte
}

// AuthorityFunc adapts a function to Authority.
type AuthorityFunc func(req *certs.SignRequest, remote netip.Addr) (Grant, error)

// Authorize calls f(req, remote).
func (f AuthorityFunc) Authorize(req *certs.SignRequest, remote netip.Addr) (Grant, error) {
	return f(req, remote)
}

// RateLimit is a token bucket: Burst requests at once, then one every
// Every.
type RateLimit struct {
	// Every is the time to earn one request.
	Every time.Duration
	// Burst is the bucket size.
	Burst int
}

// DefaultRatePerNode allows each node 5 requests a minute with a burst of
// 10: a node needs one or two certificates per renewal, and a retry loop
// cannot keep the CA busy.
var DefaultRatePerNode = RateLimit{Every: 12 * time.Second, Burst: 10}

// Config configures a Server. CA, Verifier and Authority are required.
type Config struct {
	// CA signs the certificates.
	CA *certs.CA
	// ServerCert is the endpoint's own certificate, issued by CA. Its
	// chain is completed with the CA bundle when it holds the leaf only,
	// since clients pin the CA from the presented chain.
	ServerCert tls.Certificate
	// Verifier authenticates requests (MAC, timestamp, replay).
	Verifier *certs.Verifier
	// Authority decides each node's identity.
	Authority Authority
	// Keys answers requests for the agents' gossip keys; without it
	// KeysPath is not served.
	Keys Keys
	// NotSigning, when set, makes SignPath answer 503 with this text: a
	// server that answers for the keys but does not sign (another server
	// holds the CA).
	NotSigning string
	// Lifetime of issued certificates; certs.DefaultLeafLifetime when 0.
	Lifetime time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives refusals (WARN) and issues (INFO); discarded when
	// nil. Request bodies, CSRs and MACs are never logged.
	Logger *slog.Logger
	// RatePerNode limits requests per node ID; DefaultRatePerNode when
	// zero.
	RatePerNode RateLimit
	// RatePerAddr limits requests per source address, before they are
	// authenticated; DefaultRatePerAddr when zero.
	RatePerAddr RateLimit
	// Conns bounds the connections held (DefaultConnLimits for its zero
	// fields).
	Conns ConnLimits
}

// Server is the CA endpoint. Make it with NewServer.
type Server struct {
	cfg     Config
	log     *slog.Logger
	limiter *limiter // per node ID
	byAddr  *limiter // per source address
	logs    sampler  // refusals logged, per source address and reason
	srv     *http.Server
	handler http.Handler

	signed, refused atomic.Uint64
}

// maxHeaderBytes bounds request headers; requests carry almost none.
const maxHeaderBytes = 8 << 10

// NewServer returns a server for cfg. It panics if CA, Verifier or
// Authority is nil, which is a programming error.
func NewServer(cfg Config) *Server {
	if cfg.CA == nil || cfg.Verifier == nil || cfg.Authority == nil {
		panic("casvc: NewServer needs CA, Verifier and Authority")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = certs.DefaultLeafLifetime
	}
	if cfg.RatePerNode.Every <= 0 || cfg.RatePerNode.Burst <= 0 {
		cfg.RatePerNode = DefaultRatePerNode
	}
	if cfg.RatePerAddr.Every <= 0 || cfg.RatePerAddr.Burst <= 0 {
		cfg.RatePerAddr = DefaultRatePerAddr
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		limiter: newLimiter(cfg.RatePerNode),
		byAddr:  newLimiter(cfg.RatePerAddr),
		logs:    sampler{every: time.Minute},
	}
	mux := http.NewServeMux()
	mux.HandleFunc(SignPath, s.handleSign)
	mux.HandleFunc(CAPath, s.handleCA)
	if cfg.Keys != nil {
		mux.HandleFunc(KeysPath, s.handleKeys)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint; use POST "+SignPath+" or GET "+CAPath)
	})
	s.handler = mux
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler returns the HTTP handler of the endpoint, for tests and for
// serving on a listener of the caller's own. It expects TLS in front.
func (s *Server) Handler() http.Handler { return s.handler }

// Stats returns how many requests were answered with a certificate and how
// many were refused, for metrics.
func (s *Server) Stats() (signed, refused uint64) {
	return s.signed.Load(), s.refused.Load()
}

// Serve accepts HTTPS connections on l (TLS 1.2 or later, with
// cfg.ServerCert) until Close or Shutdown, after which it returns nil. It
// fails at once if ServerCert is not a certificate of the CA.
func (s *Server) Serve(l net.Listener) error {
	cert, err := s.serverCert()
	if err != nil {
		return err
	}
	s.srv.TLSConfig = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if err := s.srv.ServeTLS(limitListener(l, s.cfg.Conns), "", ""); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("casvc: serving: %w", err)
	}
	return nil
}

// serverCert checks cfg.ServerCert against the CA and completes its chain.
func (s *Server) serverCert() (tls.Certificate, error) {
	cert := s.cfg.ServerCert
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return tls.Certificate{}, errors.New("casvc: Config.ServerCert holds no certificate and key")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("casvc: Config.ServerCert: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(s.cfg.CA.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: s.cfg.Now(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return tls.Certificate{}, fmt.Errorf("casvc: Config.ServerCert is not a server certificate of the CA %s: %w", s.cfg.CA.Fingerprint(), err)
	}
	if len(cert.Certificate) == 1 {
		chain := [][]byte{cert.Certificate[0], s.cfg.CA.Cert.Raw}
		for _, c := range s.cfg.CA.Chain {
			chain = append(chain, c.Raw)
		}
		cert.Certificate = chain
	}
	cert.Leaf = leaf
	return cert, nil
}

// Close closes the listeners and connections at once.
func (s *Server) Close() error { return s.srv.Close() }

// Shutdown stops accepting connections and waits for requests in flight,
// until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// signResponse is the body of a successful sign request.
type signResponse struct {
	Certificate string `json:"certificate"`
	CABundle    string `json:"ca_bundle"`
	Admission   []byte `json:"admission,omitempty"`
}

// errorResponse is the body of every error.
type errorResponse struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorResponse{Error: msg})
}

// refuseFunc answers a refused request and counts and logs the refusal.
type refuseFunc func(code int, reason error, msg string)

// authenticate reads, decodes, authenticates (MAC, signature, freshness,
// replay) and rate-limits one POST to path. When it reports false it has
// answered the request already.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, path, what string) (*certs.SignRequest, netip.Addr, refuseFunc, bool) {
	var req *certs.SignRequest
	src := peeraddr.Of(r.RemoteAddr)
	refuse := func(code int, reason error, msg string) {
		s.refused.Add(1)
		if ok, suppressed := s.logs.allow(src.String()+" "+reason.Error(), s.cfg.Now()); ok {
			attrs := []any{"remote", r.RemoteAddr, "status", code, "reason", reason.Error()}
			if req != nil {
				attrs = append(attrs, "node", req.NodeName, "node_id", req.NodeID, "role", string(req.Role))
			}
			if suppressed > 0 {
				attrs = append(attrs, "refusals_not_logged", suppressed)
			}
			s.log.Warn("casvc: "+what+" refused", attrs...)
		}
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RatePerNode.Every.Seconds()+0.999)))
		}
		writeError(w, code, msg)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "use POST "+path)
		return nil, src, refuse, false
	}
	if !s.byAddr.allow(src.String(), s.cfg.Now()) {
		err := fmt.Errorf("casvc: %s sent more than %d requests; at most one every %s", src, s.cfg.RatePerAddr.Burst, s.cfg.RatePerAddr.Every)
		refuse(http.StatusTooManyRequests, err, err.Error())
		return nil, src, refuse, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, certs.MaxSignRequestSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = fmt.Errorf("casvc: request body is larger than %d bytes", certs.MaxSignRequestSize)
		} else {
			err = fmt.Errorf("casvc: reading the request: %w", err)
		}
		refuse(http.StatusBadRequest, err, err.Error())
		return nil, src, refuse, false
	}
	if req, err = certs.DecodeSignRequest(body); err != nil {
		refuse(http.StatusBadRequest, err, err.Error())
		return nil, src, refuse, false
	}
	if err := s.cfg.Verifier.Verify(req); err != nil {
		refuse(http.StatusUnauthorized, err, err.Error())
		return nil, src, refuse, false
	}
	if !s.limiter.allow(req.NodeID, s.cfg.Now()) {
		err := fmt.Errorf("casvc: node %q sent more than %d requests; at most one every %s", req.NodeID, s.cfg.RatePerNode.Burst, s.cfg.RatePerNode.Every)
		refuse(http.StatusTooManyRequests, err, err.Error())
		return nil, src, refuse, false
	}
	return req, src, refuse, true
}

// handleKeys authenticates, rate-limits and answers one request for the
// agents' gossip keys.
func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	req, src, refuse, ok := s.authenticate(w, r, KeysPath, "gossip keys request")
	if !ok {
		return
	}
	if !bytes.Equal(req.CSR, certs.KeysRequestCSR) {
		err := errors.New("casvc: a certificate request goes to " + SignPath)
		refuse(http.StatusBadRequest, err, err.Error())
		return
	}
	answer, err := s.cfg.Keys.Keys(req, src)
	if err != nil {
		refuse(http.StatusForbidden, err, err.Error())
		return
	}
	s.log.Info("casvc: gossip keys handed over", "node", req.NodeName, "node_id", req.NodeID, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	w.Write(answer)
}

// handleCA serves the CA bundle.
func (s *Server) handleCA(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "use GET "+CAPath)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(s.cfg.CA.BundlePEM())
}

// handleSign authenticates, rate-limits, authorizes and signs one request.
func (s *Server) handleSign(w http.ResponseWriter, r *http.Request) {
	req, src, refuse, ok := s.authenticate(w, r, SignPath, "certificate request")
	if !ok {
		return
	}
	now := s.cfg.Now()
	if s.cfg.NotSigning != "" {
		err := errors.New(s.cfg.NotSigning)
		refuse(http.StatusServiceUnavailable, err, err.Error())
		return
	}
	if bytes.Equal(req.CSR, certs.KeysRequestCSR) {
		err := errors.New("casvc: a request for the gossip keys goes to " + KeysPath)
		refuse(http.StatusBadRequest, err, err.Error())
		return
	}
	grant, err := s.cfg.Authority.Authorize(req, src)
	if err != nil {
		refuse(http.StatusForbidden, err, err.Error())
		return
	}
	id := grant.Identity
	csr, err := certs.ParseCSR(req.CSR)
	if err != nil {
		refuse(http.StatusBadRequest, err, err.Error())
		return
	}
	der, err := s.cfg.CA.Sign(csr, id, now, s.cfg.Lifetime)
	if err != nil {
		if errors.Is(err, certs.ErrCSRRejected) {
			refuse(http.StatusBadRequest, err, err.Error())
		} else {
			refuse(http.StatusInternalServerError, err, "casvc: the CA could not sign the certificate; see the CA holder's log")
		}
		return
	}
	s.signed.Add(1)
	if s.log.Enabled(r.Context(), slog.LevelInfo) {
		attrs := []any{"node", req.NodeName, "node_id", req.NodeID, "role", string(id.Role), "remote", r.RemoteAddr}
		if c, err := x509.ParseCertificate(der); err == nil {
			attrs = append(attrs, "serial", c.SerialNumber.Text(16), "not_after", c.NotAfter.UTC().Format(time.RFC3339))
		}
		s.log.Info("casvc: certificate issued", attrs...)
	}
	writeJSON(w, http.StatusOK, signResponse{
		Certificate: string(certs.EncodeCertPEM(der)),
		CABundle:    string(s.cfg.CA.BundlePEM()),
		Admission:   grant.Admission,
	})
}
