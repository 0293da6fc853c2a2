package casvc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

// ErrCAMismatch is wrapped by the error a client returns when the endpoint
// does not present the pinned CA: it is another cluster's CA holder, or an
// impostor.
var ErrCAMismatch = errors.New("casvc: CA does not match the pinned fingerprint")

// pinError carries a specific message for ErrCAMismatch.
type pinError struct{ msg string }

func (e *pinError) Error() string { return e.msg }
func (e *pinError) Unwrap() error { return ErrCAMismatch }

func pinErrorf(format string, args ...any) error {
	return &pinError{msg: fmt.Sprintf(format, args...)}
}

// defaultTimeout bounds a request whose context has no deadline.
const defaultTimeout = 30 * time.Second

// maxResponseSize bounds the responses a client reads.
const maxResponseSize = 1 << 20

// StatusError is the error for an answer other than 200: the endpoint
// refused the request and said why.
type StatusError struct {
	// Addr is the endpoint's address.
	Addr string
	// Code is the HTTP status code: 400, 401, 403, 429 or 500.
	Code int
	// Message is the endpoint's error message.
	Message string
}

// Error returns e.g. "casvc: 10.0.0.5:4648 answered 403 Forbidden: node c1
// is a client".
func (e *StatusError) Error() string {
	return fmt.Sprintf("casvc: %s answered %d %s: %s", e.Addr, e.Code, http.StatusText(e.Code), e.Message)
}

// Request sends a sealed sign request to the CA endpoint at addr
// (host:port) and returns the issued certificate and the CA bundle, both
// PEM.
//
// The TLS connection is trusted only through caFingerprint (see
// certs.Fingerprint), as a join token pins a CA in k3s: the endpoint must
// present a CA certificate with that fingerprint and a server certificate
// that verifies against it; the host name is not checked. Otherwise the
// error wraps ErrCAMismatch and nothing is sent. The returned certificate
// is checked to be for the request's key and to verify against the pinned
// CA, and the bundle to contain it.
//
// A refusal is a *StatusError. Without a deadline on ctx the request is
// bounded by 30 s. Seal the request anew before retrying: the endpoint
// refuses a nonce it has seen (a request refused by the pin never reached
// it, though, and may be sent elsewhere).
func Request(ctx context.Context, addr, caFingerprint string, req *certs.SignRequest) (certPEM, bundlePEM []byte, err error) {
	iss, err := RequestIssued(ctx, netip.Addr{}, addr, caFingerprint, req)
	return iss.Cert, iss.Bundle, err
}

// Issued is what the CA sent back for a request.
type Issued struct {
	Cert, Bundle []byte // PEM
	// Admission is the proof of admission the CA returned to a node that
	// joined with a client token; nil otherwise.
	Admission []byte
}

// RequestIssued is Request from the local address from (any when it is not
// valid, or not an address of this machine), returning the admission the CA
// sent too. The CA checks that a request comes from the member's address,
// so a node sends it from the address it advertises.
func RequestIssued(ctx context.Context, from netip.Addr, addr, caFingerprint string, req *certs.SignRequest) (Issued, error) {
	certPEM, bundlePEM, admission, err := request(ctx, from, addr, caFingerprint, req)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Cert: certPEM, Bundle: bundlePEM, Admission: admission}, nil
}

func request(ctx context.Context, from netip.Addr, addr, caFingerprint string, req *certs.SignRequest) (certPEM, bundlePEM, admission []byte, err error) {
	if err := checkFingerprint(caFingerprint); err != nil {
		return nil, nil, nil, err
	}
	body, err := req.Encode()
	if err != nil {
		return nil, nil, nil, err
	}
	csr, err := certs.ParseCSR(req.CSR)
	if err != nil {
		return nil, nil, nil, err
	}
	respBody, err := do(ctx, from, addr, caFingerprint, http.MethodPost, SignPath, body)
	if err != nil {
		return nil, nil, nil, err
	}
	var resp signResponse
	if err := json.Unmarshal(respBody, &resp); err != nil {
		return nil, nil, nil, fmt.Errorf("casvc: %s sent a malformed response: %w", addr, err)
	}
	certPEM, bundlePEM = []byte(resp.Certificate), []byte(resp.CABundle)

	pinned, err := pinnedFromBundle(addr, caFingerprint, bundlePEM)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := certs.ParseCertPEM(certPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("casvc: %s sent an unreadable certificate: %w", addr, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pinned)
	// Checked at the time the request was sealed: the caller's clock.
	at := time.Unix(req.Timestamp, 0)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, nil, nil, fmt.Errorf("casvc: the certificate from %s does not verify against the pinned CA: %w", addr, err)
	}
	if eq, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(csr.PublicKey) {
		return nil, nil, nil, fmt.Errorf("casvc: the certificate from %s is not for this node's key", addr)
	}
	return certPEM, bundlePEM, resp.Admission, nil
}

// pinnedFromBundle returns the certificate of bundlePEM whose fingerprint
// is caFingerprint.
func pinnedFromBundle(addr, caFingerprint string, bundlePEM []byte) (*x509.Certificate, error) {
	bundle, err := certs.ParseCertsPEM(bundlePEM)
	if err != nil {
		return nil, fmt.Errorf("casvc: %s sent an unreadable CA bundle: %w", addr, err)
	}
	if i := certs.PinnedIndex(bundle, caFingerprint); i >= 0 {
		return bundle[i], nil
	}
	return nil, pinErrorf("casvc: the CA bundle from %s lacks the pinned CA %s", addr, caFingerprint)
}

// dialFrom returns a dialer that connects from the local address from, or
// from any when from is not valid or not an address of this machine.
func dialFrom(from netip.Addr) func(ctx context.Context, network, addr string) (net.Conn, error) {
	unbound := &net.Dialer{Timeout: 10 * time.Second}
	if !from.IsValid() || from.IsUnspecified() {
		return unbound.DialContext
	}
	bound := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := bound.DialContext(ctx, network, addr)
		if errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) {
			return unbound.DialContext(ctx, network, addr)
		}
		return c, err
	}
}

// RequestKeys sends a sealed request for the agents' gossip keys (req.CSR
// is certs.KeysRequestCSR) to the endpoint at addr, from the local address
// from, and returns the answer's body for the caller to open
// (gossipkeys.Open), which authenticates it. With caFingerprint the CA is
// pinned as for Request; without (a node that knows no plan yet) any
// certificate is taken, and only the answer's own signature says who sent
// it.
func RequestKeys(ctx context.Context, from netip.Addr, addr, caFingerprint string, req *certs.SignRequest) ([]byte, error) {
	if caFingerprint != "" {
		if err := checkFingerprint(caFingerprint); err != nil {
			return nil, err
		}
	}
	body, err := req.Encode()
	if err != nil {
		return nil, err
	}
	return do(ctx, from, addr, caFingerprint, http.MethodPost, KeysPath, body)
}

func checkFingerprint(fp string) error {
	if !strings.HasPrefix(fp, "sha256:") {
		return fmt.Errorf("casvc: CA fingerprint %q does not start with \"sha256:\"", fp)
	}
	return nil
}

// do makes one HTTPS request to addr, from the local address from, with the
// CA pinned (none when caFingerprint is "") and returns the body of a 200
// answer.
func do(ctx context.Context, from netip.Addr, addr, caFingerprint, method, path string, body []byte) ([]byte, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("casvc: CA address %q is not host:port: %w", addr, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}

	var (
		pinMu  sync.Mutex
		pinErr error
	)
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is verified in VerifyConnection against the pinned
		// CA instead of the system roots and a host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if caFingerprint == "" {
				return nil // the answer authenticates itself
			}
			err := verifyPinned(addr, caFingerprint, cs.PeerCertificates)
			pinMu.Lock()
			pinErr = err
			pinMu.Unlock()
			return err
		},
	}
	transport := &http.Transport{
		Proxy:                 nil, // cluster-internal: never through a proxy
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: defaultTimeout,
		DisableKeepAlives:     true,
		DialContext:           dialFrom(from),
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("casvc: the CA endpoint must not redirect")
		},
	}

	u := url.URL{Scheme: "https", Host: addr, Path: path}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	httpReq, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("casvc: %w", err)
	}
	if body != nil {
		httpReq.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(httpReq)
	if err != nil {
		pinMu.Lock()
		perr := pinErr
		pinMu.Unlock()
		if perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("casvc: reaching the CA at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("casvc: reading the answer of %s: %w", addr, err)
	}
	if len(respBody) > maxResponseSize {
		return nil, fmt.Errorf("casvc: the answer of %s is larger than %d bytes", addr, maxResponseSize)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorResponse
		msg := strings.TrimSpace(string(respBody))
		if json.Unmarshal(respBody, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		return nil, &StatusError{Addr: addr, Code: resp.StatusCode, Message: msg}
	}
	return respBody, nil
}

// verifyPinned checks a presented chain: one of the certificates after the
// leaf must be a CA with the pinned fingerprint, and the leaf must verify
// against it as a TLS server certificate.
func verifyPinned(addr, caFingerprint string, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return pinErrorf("casvc: CA at %s presented no certificate", addr)
	}
	leaf := chain[0]
	var (
		pinned    *x509.Certificate
		presented []string
	)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		fp := certs.Fingerprint(c)
		if pinned == nil && strings.EqualFold(fp, caFingerprint) && c.IsCA {
			pinned = c
			continue
		}
		presented = append(presented, fp)
		inter.AddCert(c)
	}
	if pinned == nil {
		return pinErrorf("casvc: CA at %s does not match the pinned fingerprint %s (it presents %s)",
			addr, caFingerprint, orNone(presented))
	}
	roots := x509.NewCertPool()
	roots.AddCert(pinned)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return pinErrorf("casvc: the certificate of %s does not verify against the pinned CA %s: %v", addr, caFingerprint, err)
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no CA certificate"
	}
	return strings.Join(s, ", ")
}
