package casvc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

// clock is a settable clock shared by the verifier, the server and the
// nodes of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// plan is the test's stand-in for the committed plan: node ID -> role and
// address.
var plan = map[string]certs.Identity{
	"id-s1": {NodeID: "id-s1", NodeName: "s1", Region: "global", Address: "10.0.0.1", Role: certs.RoleServer},
	"id-c1": {NodeID: "id-c1", NodeName: "c1", Region: "global", Address: "10.0.0.7", Role: certs.RoleClient},
	"id-c2": {NodeID: "id-c2", NodeName: "c2", Region: "global", Address: "fd00::8", Role: certs.RoleClient},
	"id-c3": {NodeID: "id-c3", NodeName: "c3", Region: "global", Address: "10.0.0.9", Role: certs.RoleClient},
	"id-xx": {NodeID: "id-xx", NodeName: "xx", Region: "not a label", Address: "10.0.0.10", Role: certs.RoleClient},
}

// planAuthority certifies nodes of the plan with their planned role; a
// server may also have the cli role.
func planAuthority(req *certs.SignRequest, _ netip.Addr) (Grant, error) {
	id, ok := plan[req.NodeID]
	if !ok {
		return Grant{}, fmt.Errorf("node %q is not in the committed plan", req.NodeID)
	}
	switch {
	case req.Role == id.Role:
	case req.Role == certs.RoleCLI && id.Role == certs.RoleServer:
		id.Role = certs.RoleCLI
	default:
		return Grant{}, fmt.Errorf("node %s is a %s in the plan, not a %s", id.NodeName, id.Role, req.Role)
	}
	return Grant{Identity: id}, nil
}

// testIdentity is the identity key the tests' requests are signed with.
var testIdentity = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

type env struct {
	tok   certs.Token
	ca    *certs.CA
	srv   *Server
	addr  string
	clock *clock
	logs  *syncBuffer
}

// newEnv starts a CA endpoint on 127.0.0.1 with a fresh CA and token.
func newEnv(t *testing.T, rate RateLimit) *env {
	t.Helper()
	tok, err := certs.NewToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	ca, err := certs.NewCA(rand.Reader, tok.ClusterIDString(), clk.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{tok: tok, ca: ca, clock: clk, logs: &syncBuffer{}}
	e.srv = NewServer(Config{
		CA:          ca,
		ServerCert:  serverCert(t, ca, clk.Now()),
		Verifier:    certs.NewVerifier(tok.CSRKey(), 0, clk.Now),
		Authority:   AuthorityFunc(planAuthority),
		Now:         clk.Now,
		Logger:      slog.New(slog.NewJSONHandler(e.logs, nil)),
		RatePerNode: rate,
	})
	e.addr = e.serve(t, e.srv)
	return e
}

// serve runs srv on a fresh loopback listener until the test ends.
func (e *env) serve(t *testing.T, srv *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return l.Addr().String()
}

// serverCert issues the endpoint's own certificate from ca.
func serverCert(t *testing.T, ca *certs.CA, now time.Time) tls.Certificate {
	t.Helper()
	key, err := certs.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := sign(t, ca, key, certs.Identity{NodeName: "s1", Region: "global", Address: "127.0.0.1", Role: certs.RoleServer}, now)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func sign(t *testing.T, ca *certs.CA, key crypto.Signer, id certs.Identity, now time.Time) []byte {
	t.Helper()
	csrDER, err := certs.CreateCSR(key, "endpoint")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := certs.ParseCSR(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.Sign(csr, id, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// request returns a sealed request of node nodeID for role, with its key.
func (e *env) request(t *testing.T, nodeID string, role certs.Role, csrTmpl *x509.CertificateRequest) (*certs.SignRequest, crypto.Signer) {
	t.Helper()
	key, err := certs.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if csrTmpl == nil {
		csrTmpl = &x509.CertificateRequest{Subject: pkix.Name{CommonName: string(role)}}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, csrTmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(nodeID, "id-")
	r := &certs.SignRequest{NodeID: nodeID, NodeName: name, Role: role, CSR: csr}
	if err := r.Seal(e.tok.CSRKey(), testIdentity, e.clock.Now(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	return r, key
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ipStrings(ips []net.IP) []string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	return s
}

func TestRequestRoles(t *testing.T) {
	e := newEnv(t, RateLimit{})
	tests := []struct {
		nodeID  string
		role    certs.Role
		wantDNS []string
		wantIPs []string
		usage   x509.ExtKeyUsage
	}{
		{"id-s1", certs.RoleServer, []string{"server.global.nomad", "localhost"}, []string{"127.0.0.1", "10.0.0.1"}, x509.ExtKeyUsageServerAuth},
		{"id-c1", certs.RoleClient, []string{"client.global.nomad", "localhost"}, []string{"127.0.0.1", "10.0.0.7"}, x509.ExtKeyUsageServerAuth},
		{"id-c2", certs.RoleClient, []string{"client.global.nomad", "localhost"}, []string{"127.0.0.1", "fd00::8"}, x509.ExtKeyUsageClientAuth},
		{"id-s1", certs.RoleCLI, []string{"cli.global.nomad", "localhost"}, []string{"127.0.0.1"}, x509.ExtKeyUsageClientAuth},
	}
	for _, tt := range tests {
		t.Run(string(tt.role)+"/"+tt.nodeID, func(t *testing.T) {
			req, key := e.request(t, tt.nodeID, tt.role, nil)
			certPEM, bundlePEM, err := Request(ctx(t), e.addr, e.ca.Fingerprint(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bundlePEM, e.ca.BundlePEM()) {
				t.Error("bundle differs from the CA's")
			}
			c, err := certs.ParseCertPEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantDNS, c.DNSNames); diff != "" {
				t.Errorf("DNS names (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantIPs, ipStrings(c.IPAddresses)); diff != "" {
				t.Errorf("IPs (-want +got):\n%s", diff)
			}
			if !key.Public().(*ecdsa.PublicKey).Equal(c.PublicKey) {
				t.Error("certificate is not for the node's key")
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(bundlePEM)
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: tt.wantDNS[0], KeyUsages: []x509.ExtKeyUsage{tt.usage}}); err != nil {
				t.Errorf("certificate does not verify: %v", err)
			}
		})
	}
	if signed, refused := e.srv.Stats(); signed != 4 || refused != 0 {
		t.Errorf("Stats() = %d, %d; want 4, 0", signed, refused)
	}
	if logs := e.logs.String(); strings.Count(logs, `"msg":"casvc: certificate issued"`) != 4 {
		t.Errorf("want 4 issue log lines:\n%s", logs)
	}

	bundle, err := fetchCA(ctx(t), e.addr, e.ca.Fingerprint())
	if err != nil || !bytes.Equal(bundle, e.ca.BundlePEM()) {
		t.Errorf("fetchCA = %v; want the bundle", err)
	}
}

// TestClientCannotGetServerNames: a client's CSR asking for the server's
// names and another address gets the client's names only.
func TestClientCannotGetServerNames(t *testing.T) {
	e := newEnv(t, RateLimit{})
	req, _ := e.request(t, "id-c1", certs.RoleClient, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "server.global.nomad"},
		DNSNames:    []string{"server.global.nomad"},
		IPAddresses: []net.IP{net.ParseIP("10.9.9.9")},
	})
	certPEM, _, err := Request(ctx(t), e.addr, e.ca.Fingerprint(), req)
	if err != nil {
		t.Fatal(err)
	}
	c, err := certs.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	got := append([]string{c.Subject.CommonName}, append(c.DNSNames, ipStrings(c.IPAddresses)...)...)
	want := []string{"client.global.nomad", "client.global.nomad", "localhost", "127.0.0.1", "10.0.0.7"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, RateLimit{})
	other, err := certs.NewToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	replayed, _ := e.request(t, "id-c1", certs.RoleClient, nil)
	if _, _, err := Request(ctx(t), e.addr, e.ca.Fingerprint(), replayed); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		req      func(t *testing.T) *certs.SignRequest
		wantCode int
		wantMsg  string
	}{
		{"other cluster's token", func(t *testing.T) *certs.SignRequest {
			r, _ := e.request(t, "id-c1", certs.RoleClient, nil)
			if err := r.Seal(other.CSRKey(), testIdentity, e.clock.Now(), rand.Reader); err != nil {
				t.Fatal(err)
			}
			return r
		}, 401, "certs: request is not authenticated by this cluster's token"},
		{"replay", func(t *testing.T) *certs.SignRequest { return replayed }, 401, "certs: request nonce was already used"},
		{"stale", func(t *testing.T) *certs.SignRequest {
			r, _ := e.request(t, "id-c1", certs.RoleClient, nil)
			if err := r.Seal(e.tok.CSRKey(), testIdentity, e.clock.Now().Add(-10*time.Minute), rand.Reader); err != nil {
				t.Fatal(err)
			}
			return r
		}, 401, "certs: request timestamp is outside the allowed clock skew"},
		{"client asks for server", func(t *testing.T) *certs.SignRequest {
			r, _ := e.request(t, "id-c1", certs.RoleServer, nil)
			return r
		}, 403, "node c1 is a client in the plan, not a server"},
		{"client asks for cli", func(t *testing.T) *certs.SignRequest {
			r, _ := e.request(t, "id-c3", certs.RoleCLI, nil)
			return r
		}, 403, "node c3 is a client in the plan, not a cli"},
		{"unknown node", func(t *testing.T) *certs.SignRequest {
			r, _ := e.request(t, "id-zz", certs.RoleClient, nil)
			return r
		}, 403, `node "id-zz" is not in the committed plan`},
		{"weak key", func(t *testing.T) *certs.SignRequest {
			key, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
			if err != nil {
				t.Fatal(err)
			}
			r := &certs.SignRequest{NodeID: "id-c1", NodeName: "c1", Role: certs.RoleClient, CSR: csr}
			if err := r.Seal(e.tok.CSRKey(), testIdentity, e.clock.Now(), rand.Reader); err != nil {
				t.Fatal(err)
			}
			return r
		}, 400, "certs: CSR key ECDSA P-224 is not allowed"},
		{"bad identity from the authority", func(t *testing.T) *certs.SignRequest {
			r, _ := e.request(t, "id-xx", certs.RoleClient, nil)
			return r
		}, 500, "casvc: the CA could not sign the certificate; see the CA holder's log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req(t)
			certPEM, _, err := Request(ctx(t), e.addr, e.ca.Fingerprint(), req)
			if certPEM != nil {
				t.Error("a certificate came back with the error")
			}
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("Request error = %v, want a *StatusError", err)
			}
			if se.Code != tt.wantCode || !strings.HasPrefix(se.Message, tt.wantMsg) {
				t.Errorf("got %d %q, want %d %q", se.Code, se.Message, tt.wantCode, tt.wantMsg)
			}
			if want := fmt.Sprintf("casvc: %s answered %d %s: ", e.addr, tt.wantCode, http.StatusText(tt.wantCode)); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error text %q does not start with %q", err, want)
			}
		})
	}
	signed, refused := e.srv.Stats()
	if signed != 1 || refused != uint64(len(tests)) {
		t.Errorf("Stats() = %d, %d; want 1, %d", signed, refused, len(tests))
	}

	// Refusals are logged at WARN with the node and the reason, and the
	// log carries no CSR or MAC.
	logs := e.logs.String()
	if n := strings.Count(logs, `"level":"WARN","msg":"casvc: certificate request refused"`); n != len(tests) {
		t.Errorf("%d refusal log lines, want %d:\n%s", n, len(tests), logs)
	}
	for _, want := range []string{`"node":"c1"`, `"status":403`, `"reason":"node c1 is a client in the plan, not a server"`, `"reason":"certs: region \"not a label\" is not a valid DNS label`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	for _, secret := range [][]byte{replayed.CSR, replayed.MAC, replayed.CSR[:24], replayed.MAC[:12]} {
		for _, enc := range []string{base64.StdEncoding.EncodeToString(secret), fmt.Sprintf("%x", secret)} {
			if strings.Contains(logs, enc[:16]) {
				t.Errorf("logs contain request bytes %s", enc[:16])
			}
		}
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, RateLimit{Every: time.Minute, Burst: 3})
	send := func(nodeID string) error {
		req, _ := e.request(t, nodeID, certs.RoleClient, nil)
		_, _, err := Request(ctx(t), e.addr, e.ca.Fingerprint(), req)
		return err
	}
	for i := range 3 {
		if err := send("id-c1"); err != nil {
			t.Fatalf("request %d within the burst: %v", i+1, err)
		}
	}
	err := send("id-c1")
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusTooManyRequests {
		t.Fatalf("request after the burst: %v, want 429", err)
	}
	if !strings.Contains(se.Message, "at most one every 1m0s") {
		t.Errorf("429 message %q", se.Message)
	}
	// Another node has its own bucket.
	if err := send("id-c2"); err != nil {
		t.Errorf("other node limited: %v", err)
	}
	// One period later one more request passes, and only one.
	e.clock.Advance(time.Minute)
	if err := send("id-c1"); err != nil {
		t.Errorf("request after refill: %v", err)
	}
	if err := send("id-c1"); !errors.As(err, &se) || se.Code != http.StatusTooManyRequests {
		t.Errorf("second request after refill: %v, want 429", err)
	}

	// Retry-After is set on a 429.
	req, _ := e.request(t, "id-c1", certs.RoleClient, nil)
	body, _ := req.Encode()
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, SignPath, bytes.NewReader(body)))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "60" {
		t.Errorf("got %d with Retry-After %q, want 429 and 60", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestLimiterPrunes(t *testing.T) {
	l := newLimiter(RateLimit{Every: time.Second, Burst: 2})
	t0 := time.Unix(1_800_000_000, 0)
	for i := range maxBuckets {
		l.allow(fmt.Sprint(i), t0)
	}
	if !l.allow("late", t0.Add(10*time.Second)) {
		t.Fatal("new node refused")
	}
	if n := len(l.buckets); n != 1 {
		t.Errorf("%d buckets after pruning, want 1", n)
	}
}

func TestWrongFingerprint(t *testing.T) {
	e := newEnv(t, RateLimit{})
	otherCA, err := certs.NewCA(rand.Reader, "other", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := e.request(t, "id-c1", certs.RoleClient, nil)
	_, _, err = Request(ctx(t), e.addr, otherCA.Fingerprint(), req)
	if !errors.Is(err, ErrCAMismatch) {
		t.Fatalf("Request with another CA pinned: %v, want ErrCAMismatch", err)
	}
	want := fmt.Sprintf("casvc: CA at %s does not match the pinned fingerprint %s (it presents %s)", e.addr, otherCA.Fingerprint(), e.ca.Fingerprint())
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	if _, err := fetchCA(ctx(t), e.addr, otherCA.Fingerprint()); !errors.Is(err, ErrCAMismatch) {
		t.Errorf("fetchCA with another CA pinned: %v", err)
	}
	if signed, refused := e.srv.Stats(); signed+refused != 0 {
		t.Errorf("the server saw a request: Stats() = %d, %d", signed, refused)
	}
	// The request was not spent: it still works with the right pin.
	if _, _, err := Request(ctx(t), e.addr, e.ca.Fingerprint(), req); err != nil {
		t.Errorf("the same request with the right pin: %v", err)
	}
}

// TestImpostorPresentsPinnedCA: an endpoint that presents the pinned CA
// certificate (public) next to a certificate of another CA is refused.
func TestImpostorPresentsPinnedCA(t *testing.T) {
	e := newEnv(t, RateLimit{})
	otherCA, err := certs.NewCA(rand.Reader, "other", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fake := serverCert(t, otherCA, time.Now())
	fake.Certificate = append(fake.Certificate, e.ca.Cert.Raw)

	// Serve refuses to run with a certificate that is not the CA's.
	bad := NewServer(Config{CA: e.ca, ServerCert: fake, Verifier: certs.NewVerifier(e.tok.CSRKey(), 0, nil), Authority: AuthorityFunc(planAuthority)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := bad.Serve(l); err == nil || !strings.Contains(err.Error(), "is not a server certificate of the CA") {
		t.Errorf("Serve with a foreign certificate: %v", err)
	}

	// A hand-made impostor.
	var hits int
	var mu sync.Mutex
	imp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
	}))
	imp.TLS = &tls.Config{Certificates: []tls.Certificate{fake}}
	imp.StartTLS()
	defer imp.Close()
	addr := strings.TrimPrefix(imp.URL, "https://")

	req, _ := e.request(t, "id-c1", certs.RoleClient, nil)
	_, _, err = Request(ctx(t), addr, e.ca.Fingerprint(), req)
	if !errors.Is(err, ErrCAMismatch) || !strings.Contains(err.Error(), "does not verify against the pinned CA") {
		t.Errorf("Request to an impostor: %v, want a verification failure", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the request reached the impostor %d times", hits)
	}
}

func TestHandlerErrors(t *testing.T) {
	e := newEnv(t, RateLimit{})
	valid, _ := e.request(t, "id-c1", certs.RoleClient, nil)
	validBody, _ := valid.Encode()
	tests := []struct {
		name, method, path string
		body               []byte
		wantCode           int
		wantErr            string
	}{
		{"not json", "POST", SignPath, []byte("hello"), 400, "certs: sign request is not valid JSON of the expected shape: syntax error at byte 1"},
		{"empty", "POST", SignPath, nil, 400, "certs: sign request is not valid JSON of the expected shape: unexpected end of input"},
		{"unknown field", "POST", SignPath, append([]byte(`{"admin":true,`), validBody[1:]...), 400, `certs: sign request is not valid JSON of the expected shape: json: unknown field "admin"`},
		{"too large", "POST", SignPath, bytes.Repeat([]byte(" "), certs.MaxSignRequestSize+1), 400, "casvc: request body is larger than 32768 bytes"},
		{"GET sign", "GET", SignPath, nil, 405, "use POST /v1/sign"},
		{"POST ca", "POST", CAPath, nil, 405, "use GET /v1/ca"},
		{"unknown path", "GET", "/v1/other", nil, 404, "no such endpoint; use POST /v1/sign or GET /v1/ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			e.srv.Handler().ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, bytes.NewReader(tt.body)))
			if rec.Code != tt.wantCode {
				t.Errorf("status %d, want %d", rec.Code, tt.wantCode)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			want := fmt.Sprintf("{%q:%q}\n", "error", tt.wantErr)
			if got := rec.Body.String(); got != want {
				t.Errorf("body:\n got %s\nwant %s", got, want)
			}
		})
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", CAPath, nil))
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), e.ca.BundlePEM()) {
		t.Errorf("GET /v1/ca: %d", rec.Code)
	}
}

func TestRequestArguments(t *testing.T) {
	e := newEnv(t, RateLimit{})
	req, _ := e.request(t, "id-c1", certs.RoleClient, nil)
	if _, _, err := Request(ctx(t), "127.0.0.1", e.ca.Fingerprint(), req); err == nil || !strings.Contains(err.Error(), "is not host:port") {
		t.Errorf("address without port: %v", err)
	}
	if _, _, err := Request(ctx(t), e.addr, "abc", req); err == nil || !strings.Contains(err.Error(), `does not start with "sha256:"`) {
		t.Errorf("bad fingerprint: %v", err)
	}
	if _, _, err := Request(ctx(t), e.addr, e.ca.Fingerprint(), &certs.SignRequest{}); err == nil {
		t.Error("unsealed request sent")
	}
	// A closed port fails fast with a clear error.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	if _, _, err := Request(ctx(t), closed, e.ca.Fingerprint(), req); err == nil || !strings.Contains(err.Error(), "casvc: reaching the CA at "+closed) {
		t.Errorf("closed port: %v", err)
	}
	// A cancelled context stops the request.
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := Request(c, e.addr, e.ca.Fingerprint(), req); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// fetchCA returns the CA bundle served at addr, with the connection and
// the bundle checked against caFingerprint as in Request.
func fetchCA(ctx context.Context, addr, caFingerprint string) (bundlePEM []byte, err error) {
	bundlePEM, err = do(ctx, netip.Addr{}, addr, caFingerprint, http.MethodGet, CAPath, nil)
	if err != nil {
		return nil, err
	}
	if _, err := pinnedFromBundle(addr, caFingerprint, bundlePEM); err != nil {
		return nil, err
	}
	return bundlePEM, nil
}

// TestKeys checks the route for the agents' gossip keys: authenticated like
// a sign request, pinned or not, refused by the Keys source with its
// reason, and neither route taking the other's requests.
func TestKeys(t *testing.T) {
	e := newEnv(t, RateLimit{})
	var asked []string
	srv := NewServer(Config{
		CA:         e.ca,
		ServerCert: serverCert(t, e.ca, e.clock.Now()),
		Verifier:   certs.NewVerifier(e.tok.CSRKey(), 0, e.clock.Now),
		Authority:  AuthorityFunc(planAuthority),
		Keys: KeysFunc(func(req *certs.SignRequest, _ netip.Addr) ([]byte, error) {
			asked = append(asked, req.NodeID)
			if req.NodeID == "id-evicted" {
				return nil, errors.New("node evicted was evicted from the cluster")
			}
			return []byte(`{"sealed":"for ` + req.NodeName + `"}`), nil
		}),
		Now: e.clock.Now,
	})
	addr := e.serve(t, srv)
	keysReq := func(nodeID string) *certs.SignRequest {
		r := &certs.SignRequest{NodeID: nodeID, NodeName: strings.TrimPrefix(nodeID, "id-"), Role: certs.RoleClient, CSR: certs.KeysRequestCSR}
		if err := r.Seal(e.tok.CSRKey(), testIdentity, e.clock.Now(), rand.Reader); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, fp := range []string{e.ca.Fingerprint(), ""} {
		got, err := RequestKeys(ctx(t), netip.Addr{}, addr, fp, keysReq("id-c1"))
		if err != nil || string(got) != `{"sealed":"for c1"}` {
			t.Errorf("RequestKeys(pin %q) = %s, %v", fp, got, err)
		}
	}
	if _, err := RequestKeys(ctx(t), netip.Addr{}, addr, "sha256:"+strings.Repeat("0", 64), keysReq("id-c1")); !errors.Is(err, ErrCAMismatch) {
		t.Errorf("RequestKeys with another pin: %v, want ErrCAMismatch", err)
	}
	var se *StatusError
	if _, err := RequestKeys(ctx(t), netip.Addr{}, addr, "", keysReq("id-evicted")); !errors.As(err, &se) || se.Code != 403 || !strings.Contains(se.Message, "was evicted") {
		t.Errorf("refused RequestKeys: %v", err)
	}
	replayed := keysReq("id-c2")
	if _, err := RequestKeys(ctx(t), netip.Addr{}, addr, "", replayed); err != nil {
		t.Fatal(err)
	}
	if _, err := RequestKeys(ctx(t), netip.Addr{}, addr, "", replayed); !errors.As(err, &se) || se.Code != 401 {
		t.Errorf("replayed RequestKeys: %v, want 401", err)
	}
	other, err := certs.NewToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := &certs.SignRequest{NodeID: "id-c3", NodeName: "c3", Role: certs.RoleClient, CSR: certs.KeysRequestCSR}
	if err := forged.Seal(other.CSRKey(), testIdentity, e.clock.Now(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, err := RequestKeys(ctx(t), netip.Addr{}, addr, "", forged); !errors.As(err, &se) || se.Code != 401 {
		t.Errorf("RequestKeys with another cluster's token: %v, want 401", err)
	}
	signReq, _ := e.request(t, "id-c4", certs.RoleClient, nil)
	if _, err := RequestKeys(ctx(t), netip.Addr{}, addr, "", signReq); !errors.As(err, &se) || se.Code != 400 || !strings.Contains(se.Message, SignPath) {
		t.Errorf("a certificate request on the keys route: %v, want 400", err)
	}
	body, _ := keysReq("id-c5").Encode()
	if _, err := do(ctx(t), netip.Addr{}, addr, e.ca.Fingerprint(), "POST", SignPath, body); !errors.As(err, &se) || se.Code != 400 || !strings.Contains(se.Message, KeysPath) {
		t.Errorf("a keys request on the sign route: %v, want 400", err)
	}
	if want := []string{"id-c1", "id-c1", "id-evicted", "id-c2"}; !slices.Equal(asked, want) {
		t.Errorf("the Keys source was asked for %v, want %v", asked, want)
	}
	if _, err := RequestKeys(ctx(t), netip.Addr{}, e.addr, "", keysReq("id-c6")); !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("RequestKeys of a server without Keys: %v, want 404", err)
	}
}
