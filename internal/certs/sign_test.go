package certs

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	serverID = Identity{NodeID: "id-s1", NodeName: "s1", Region: "global", Address: "10.0.0.5", Role: RoleServer}
	clientID = Identity{NodeID: "id-c1", NodeName: "c1", Region: "global", Address: "10.0.0.7", Role: RoleClient}
	cliID    = Identity{NodeID: "id-s1", NodeName: "s1", Region: "global", Address: "10.0.0.5", Role: RoleCLI}
)

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verifyLeaf verifies leaf with crypto/x509 against bundlePEM as the trust
// store, for dnsName and usage.
func verifyLeaf(t testing.TB, leaf *x509.Certificate, bundlePEM []byte, dnsName string, usage x509.ExtKeyUsage) {
	t.Helper()
	if err := verifyLeafErr(leaf, bundlePEM, dnsName, usage); err != nil {
		t.Errorf("verifying %q for %s with usage %v: %v", leaf.Subject.CommonName, dnsName, usage, err)
	}
}

func verifyLeafErr(leaf *x509.Certificate, bundlePEM []byte, dnsName string, usage x509.ExtKeyUsage) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundlePEM) {
		return errors.New("bad bundle")
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: dnsName, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func ipStrings(ips []net.IP) []string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	return s
}

// TestSignNames checks every role's certificate exactly and verifies it
// with crypto/x509 and openssl.
func TestSignNames(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{"ca.pem": ca.BundlePEM()})
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}

	tests := []struct {
		name    string
		id      Identity
		wantDNS []string
		wantIPs []string
		wantEKU []x509.ExtKeyUsage
	}{
		{"server ipv4", serverID, []string{"server.global.nomad", "localhost"}, []string{"127.0.0.1", "10.0.0.5"}, both},
		{"server ipv6", Identity{NodeName: "s2", Region: "eu-west", Address: "2001:db8::5", Role: RoleServer},
			[]string{"server.eu-west.nomad", "localhost"}, []string{"127.0.0.1", "2001:db8::5"}, both},
		{"client ipv4", clientID, []string{"client.global.nomad", "localhost"}, []string{"127.0.0.1", "10.0.0.7"}, both},
		{"client ipv6", Identity{NodeName: "c2", Region: "global", Address: "fd00::7", Role: RoleClient},
			[]string{"client.global.nomad", "localhost"}, []string{"127.0.0.1", "fd00::7"}, both},
		{"client on loopback", Identity{NodeName: "c3", Region: "global", Address: "127.0.0.1", Role: RoleClient},
			[]string{"client.global.nomad", "localhost"}, []string{"127.0.0.1"}, both},
		{"cli", cliID, []string{"cli.global.nomad", "localhost"}, []string{"127.0.0.1"}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{"cli ipv6 node", Identity{NodeName: "s3", Region: "global", Address: "2001:db8::9", Role: RoleCLI},
			[]string{"cli.global.nomad", "localhost"}, []string{"127.0.0.1"}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := ca.Sign(mustCSR(t, testKey(t, "p256"), nil), tt.id, now, 0)
			if err != nil {
				t.Fatal(err)
			}
			c := mustParseCert(t, der)
			type shape struct {
				CN                  string
				DNS, IPs            []string
				URIs, Emails        []string
				EKU                 []x509.ExtKeyUsage
				KeyUsage            x509.KeyUsage
				IsCA, BCValid       bool
				NotBefore, NotAfter time.Time
			}
			got := shape{c.Subject.CommonName, c.DNSNames, ipStrings(c.IPAddresses), nil, c.EmailAddresses,
				c.ExtKeyUsage, c.KeyUsage, c.IsCA, c.BasicConstraintsValid, c.NotBefore, c.NotAfter}
			for _, u := range c.URIs {
				got.URIs = append(got.URIs, u.String())
			}
			want := shape{tt.wantDNS[0], tt.wantDNS, tt.wantIPs, nil, nil, tt.wantEKU, x509.KeyUsageDigitalSignature,
				false, true, now.Add(-5 * time.Minute).Truncate(time.Second).UTC(), now.Add(DefaultLeafLifetime).Truncate(time.Second).UTC()}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("certificate (-want +got):\n%s", diff)
			}
			if len(c.AuthorityKeyId) == 0 || string(c.AuthorityKeyId) != string(ca.Cert.SubjectKeyId) {
				t.Errorf("AuthorityKeyId = %x, want the CA's %x", c.AuthorityKeyId, ca.Cert.SubjectKeyId)
			}
			if n := c.SerialNumber.BitLen(); n > 128 || n < 64 {
				t.Errorf("serial has %d bits, want a random 128-bit number", n)
			}

			// crypto/x509, for the role's name and each usage.
			for _, usage := range tt.wantEKU {
				verifyLeaf(t, c, ca.BundlePEM(), tt.wantDNS[0], usage)
			}
			if tt.id.Role == RoleCLI {
				if err := verifyLeafErr(c, ca.BundlePEM(), tt.wantDNS[0], x509.ExtKeyUsageServerAuth); err == nil {
					t.Error("a cli certificate verifies for server authentication")
				}
			}

			// openssl, with the purposes and names Nomad checks.
			name := strings.ReplaceAll(tt.name, " ", "-") + ".pem"
			writeFiles(t, dir, map[string][]byte{name: EncodeCertPEM(der)})
			args := [][]string{
				{"verify", "-CAfile", "ca.pem", name},
				{"verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "-verify_hostname", tt.wantDNS[0], name},
			}
			if tt.id.Role != RoleCLI {
				args = append(args,
					[]string{"verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "-verify_hostname", tt.wantDNS[0], name},
					[]string{"verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "-verify_ip", tt.wantIPs[len(tt.wantIPs)-1], name})
			} else if out, err := openssl(t, dir, "verify", "-CAfile", "ca.pem", "-purpose", "sslserver", name); err == nil {
				t.Errorf("openssl accepts a cli certificate as a TLS server:\n%s", out)
			}
			for _, a := range args {
				if out, err := openssl(t, dir, a...); err != nil {
					t.Errorf("openssl %s: %v\n%s", strings.Join(a, " "), err, out)
				}
			}
		})
	}
}

// TestSignIgnoresRequestedNames: a client asking for a server's names, a
// CA certificate and other identities gets a plain client certificate.
func TestSignIgnoresRequestedNames(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	spiffe, _ := url.Parse("spiffe://global/server")
	caTrue, err := asn1.Marshal(struct {
		IsCA       bool `asn1:"optional"`
		MaxPathLen int  `asn1:"optional,default:-1"`
	}{IsCA: true, MaxPathLen: 5})
	if err != nil {
		t.Fatal(err)
	}
	csr := mustCSR(t, testKey(t, "p256"), &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "server.global.nomad", Organization: []string{"evil"}},
		DNSNames:       []string{"server.global.nomad", "nomad.example.com", "*.global.nomad"},
		IPAddresses:    []net.IP{net.ParseIP("10.9.9.9")},
		URIs:           []*url.URL{spiffe},
		EmailAddresses: []string{"root@example.com"},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: caTrue},
		},
	})
	der, err := ca.Sign(csr, clientID, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := mustParseCert(t, der)
	type names struct {
		CN, Org      []string
		DNS, IPs     []string
		URIs, Emails int
		IsCA         bool
	}
	got := names{[]string{c.Subject.CommonName}, c.Subject.Organization, c.DNSNames, ipStrings(c.IPAddresses), len(c.URIs), len(c.EmailAddresses), c.IsCA}
	want := names{[]string{"client.global.nomad"}, nil, []string{"client.global.nomad", "localhost"}, []string{"127.0.0.1", "10.0.0.7"}, 0, 0, false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("issued names (-want +got):\n%s", diff)
	}
	if err := verifyLeafErr(c, ca.BundlePEM(), "server.global.nomad", x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("client certificate verifies as server.global.nomad")
	}
	verifyLeaf(t, c, ca.BundlePEM(), "client.global.nomad", x509.ExtKeyUsageClientAuth)
}

func TestSignKeyPolicy(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	tests := []struct {
		kind    string
		wantErr string // empty: allowed
	}{
		{"p256", ""},
		{"p384", ""},
		{"p521", ""},
		{"ed25519", ""},
		{"rsa2048", ""},
		{"p224", "certs: CSR key ECDSA P-224 is not allowed; allowed keys are ECDSA P-256, P-384 or P-521, Ed25519, and RSA of 2048 to 8192 bits"},
		{"rsa1024", "certs: CSR key RSA 1024 bits is not allowed; allowed keys are ECDSA P-256, P-384 or P-521, Ed25519, and RSA of 2048 to 8192 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			key := testKey(t, tt.kind)
			der, err := ca.Sign(mustCSR(t, key, nil), serverID, now, 0)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrCSRRejected) {
					t.Errorf("Sign error = %v, want %q wrapping ErrCSRRejected", err, tt.wantErr)
				}
				if der != nil {
					t.Error("Sign returned a certificate with its error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := mustParseCert(t, der)
			want := x509.KeyUsageDigitalSignature
			if _, ok := key.(*rsa.PrivateKey); ok {
				want |= x509.KeyUsageKeyEncipherment
			}
			if c.KeyUsage != want {
				t.Errorf("KeyUsage = %v, want %v", c.KeyUsage, want)
			}
			if !publicKeysEqual(c.PublicKey, key.Public()) {
				t.Error("certificate is not for the CSR's key")
			}
			verifyLeaf(t, c, ca.BundlePEM(), "server.global.nomad", x509.ExtKeyUsageServerAuth)
		})
	}
}

func TestSignRefusals(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	good, err := CreateCSR(testKey(t, "p256"), "node")
	if err != nil {
		t.Fatal(err)
	}
	broken := append([]byte{}, good...)
	broken[len(broken)-1] ^= 0x01 // the last byte of the signature
	brokenCSR, err := ParseCSR(broken)
	if err != nil {
		t.Fatalf("the CSR with a flipped signature byte should still parse: %v", err)
	}
	goodCSR, _ := ParseCSR(good)

	tests := []struct {
		name       string
		csr        *x509.CertificateRequest
		id         Identity
		wantErr    string
		wantReject bool
	}{
		{"broken signature", brokenCSR, serverID, "certs: CSR signature is invalid", true},
		{"no CSR", nil, serverID, "certs: no CSR given", true},
		{"unknown role", goodCSR, Identity{Region: "global", Address: "10.0.0.1", Role: "admin"}, `certs: unknown role "admin"; want server, client or cli`, false},
		{"bad region", goodCSR, Identity{Region: "glo.bal", Address: "10.0.0.1", Role: RoleServer}, `certs: region "glo.bal" is not a valid DNS label`, false},
		{"hostname address", goodCSR, Identity{NodeName: "n", Region: "global", Address: "node1.example", Role: RoleClient}, `certs: address "node1.example" of node "n" is not an IP address`, false},
		{"empty address", goodCSR, Identity{NodeName: "n", Region: "global", Role: RoleServer}, `certs: address "" of node "n" is not an IP address`, false},
		{"CA expired", goodCSR, serverID, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := now
			if tt.name == "CA expired" {
				at = now.Add(DefaultCALifetime + time.Hour)
			}
			der, err := ca.Sign(tt.csr, tt.id, at, 0)
			if err == nil {
				t.Fatal("Sign succeeded")
			}
			if der != nil {
				t.Error("Sign returned a certificate with its error")
			}
			if !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("Sign error = %q, want %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrCSRRejected) != tt.wantReject {
				t.Errorf("errors.Is(err, ErrCSRRejected) = %v, want %v", !tt.wantReject, tt.wantReject)
			}
		})
	}
	if _, err := ca.Sign(goodCSR, serverID, now, -time.Hour); err == nil {
		t.Error("Sign accepted a negative lifetime")
	}
}

func TestSignLifetime(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ca, err := NewCA(rand.Reader, testClusterID, now, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	csr := mustCSR(t, testKey(t, "p256"), nil)
	tests := []struct {
		name         string
		at           time.Time
		lifetime     time.Duration
		wantNotAfter time.Time
	}{
		{"short", now, time.Hour, now.Add(time.Hour)},
		{"default", now, 0, now.Add(DefaultLeafLifetime)},
		{"default capped by the CA", ca.Cert.NotAfter.Add(-time.Hour), 0, ca.Cert.NotAfter},
		{"explicit capped by the CA", now.Add(20 * 24 * time.Hour), 15 * 24 * time.Hour, ca.Cert.NotAfter},
		{"just fits", now, 30*24*time.Hour - time.Second, now.Add(30*24*time.Hour - time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := ca.Sign(csr, serverID, tt.at, tt.lifetime)
			if err != nil {
				t.Fatal(err)
			}
			c := mustParseCert(t, der)
			if !c.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("NotAfter = %s, want %s", c.NotAfter, tt.wantNotAfter)
			}
			if want := tt.at.Add(-5 * time.Minute); !c.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %s, want %s", c.NotBefore, want)
			}
		})
	}
}

// TestRenewal uses a certificate valid for exactly 4 s from t0 and an
// injected clock.
func TestRenewal(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	ca := newTestCA(t, t0)
	der, err := ca.sign(mustCSR(t, testKey(t, "p256"), nil), clientID, t0, t0.Add(4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c := mustParseCert(t, der)
	if got, want := RenewAt(c), t0.Add(2*time.Second); !got.Equal(want) {
		t.Errorf("RenewAt = %s, want %s", got, want)
	}
	tests := []struct {
		after time.Duration
		want  bool
	}{
		{0, false},
		{time.Second, false},
		{1999 * time.Millisecond, false},
		{2 * time.Second, true},
		{2100 * time.Millisecond, true},
		{10 * time.Second, true}, // expired
	}
	for _, tt := range tests {
		if got := NeedsRenewal(c, t0.Add(tt.after)); got != tt.want {
			t.Errorf("NeedsRenewal at t0+%s = %v, want %v", tt.after, got, tt.want)
		}
	}

	// A default certificate from Sign renews after about 12 hours, half of
	// its 24 hours and the five minutes it is backdated.
	der, err = ca.Sign(mustCSR(t, testKey(t, "p256"), nil), clientID, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	c = mustParseCert(t, der)
	if got, want := c.NotAfter.Sub(t0), 24*time.Hour; got != want {
		t.Errorf("default certificate lasts %s after issue, want %s", got, want)
	}
	if got, want := RenewAt(c).Sub(t0), 12*time.Hour-5*time.Minute/2; got != want {
		t.Errorf("default certificate renews %s after issue, want %s", got, want)
	}
}

func TestWarnAt(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name     string
		validity time.Duration
		left     time.Duration // before expiry, when WarnAt is
	}{
		{"default leaf", DefaultLeafLifetime, 8 * time.Hour},
		{"default leaf backdated", DefaultLeafLifetime + 5*time.Minute, 8*time.Hour + 5*time.Minute/3},
		{"hour", time.Hour, 20 * time.Minute},
		{"week", 7 * day, 7 * day / 3},
		{"90 days", 90 * day, 30 * day},
		{"CA", DefaultCALifetime, 30 * day},
		{"unknown start", time.Duration(1<<63 - 1), 30 * day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			notAfter := t0.Add(day)
			notBefore := notAfter.Add(-tt.validity)
			if tt.validity == time.Duration(1<<63-1) {
				notBefore = time.Time{}
			}
			got := WarnAt(notBefore, notAfter)
			if left := notAfter.Sub(got); left != tt.left {
				t.Errorf("WarnAt is %s before expiry, want %s", left, tt.left)
			}
			if tt.validity <= 90*day && !got.After(RenewAt(&x509.Certificate{NotBefore: notBefore, NotAfter: notAfter})) {
				t.Errorf("WarnAt %s is not after the renewal time", got)
			}
		})
	}
}

// TestSignConcurrent signs from many goroutines (run with -race).
func TestSignConcurrent(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	csr := mustCSR(t, testKey(t, "p256"), nil)
	var (
		mu      sync.Mutex
		serials = map[string]bool{}
		wg      sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for range 10 {
				id := clientID
				id.NodeName = "c" + string(rune('a'+g))
				der, err := ca.Sign(csr, id, now, 0)
				if err != nil {
					t.Error(err)
					return
				}
				c, err := x509.ParseCertificate(der)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				serials[c.SerialNumber.String()] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(serials) != 80 {
		t.Errorf("%d distinct serials for 80 certificates", len(serials))
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name    string
		id      Identity
		wantDNS []string
		wantIPs []string
		wantErr string
	}{
		{"server", serverID, []string{"server.global.nomad", "localhost"}, []string{"127.0.0.1", "10.0.0.5"}, ""},
		{"client v6", Identity{Region: "dc1", Address: "2001:DB8::1", Role: RoleClient}, []string{"client.dc1.nomad", "localhost"}, []string{"127.0.0.1", "2001:db8::1"}, ""},
		{"v4-mapped v6 is v4", Identity{Region: "global", Address: "::ffff:10.1.2.3", Role: RoleServer}, []string{"server.global.nomad", "localhost"}, []string{"127.0.0.1", "10.1.2.3"}, ""},
		{"loopback deduplicated", Identity{Region: "global", Address: "127.0.0.1", Role: RoleServer}, []string{"server.global.nomad", "localhost"}, []string{"127.0.0.1"}, ""},
		{"mapped loopback deduplicated", Identity{Region: "global", Address: "::ffff:127.0.0.1", Role: RoleServer}, []string{"server.global.nomad", "localhost"}, []string{"127.0.0.1"}, ""},
		{"cli ignores address", Identity{Region: "global", Address: "not an ip", Role: RoleCLI}, []string{"cli.global.nomad", "localhost"}, []string{"127.0.0.1"}, ""},
		{"63-char region", Identity{Region: strings.Repeat("a", 63), Address: "10.0.0.1", Role: RoleServer}, []string{"server." + strings.Repeat("a", 63) + ".nomad", "localhost"}, []string{"127.0.0.1", "10.0.0.1"}, ""},
		{"empty region", Identity{Address: "10.0.0.1", Role: RoleServer}, nil, nil, `certs: region "" is not a valid DNS label`},
		{"64-char region", Identity{Region: strings.Repeat("a", 64), Address: "10.0.0.1", Role: RoleServer}, nil, nil, "is not a valid DNS label"},
		{"leading hyphen", Identity{Region: "-eu", Address: "10.0.0.1", Role: RoleServer}, nil, nil, "is not a valid DNS label"},
		{"underscore", Identity{Region: "eu_west", Address: "10.0.0.1", Role: RoleServer}, nil, nil, "is not a valid DNS label"},
		{"zone", Identity{NodeName: "n", Region: "global", Address: "fe80::1%eth0", Role: RoleServer}, nil, nil, `certs: address "fe80::1%eth0" of node "n" is not an IP address`},
		{"cidr", Identity{NodeName: "n", Region: "global", Address: "10.0.0.0/8", Role: RoleServer}, nil, nil, "is not an IP address"},
		{"unspecified", Identity{NodeName: "n", Region: "global", Address: "0.0.0.0", Role: RoleServer}, nil, nil, "is unspecified"},
		{"empty role", Identity{Region: "global", Address: "10.0.0.1"}, nil, nil, `certs: unknown role ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dns, ips, err := Names(tt.id)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Names error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantDNS, dns); diff != "" {
				t.Errorf("DNS names (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantIPs, ipStrings(ips)); diff != "" {
				t.Errorf("IPs (-want +got):\n%s", diff)
			}
			for _, ip := range ips {
				if ip.To4() != nil && len(ip) != net.IPv4len {
					t.Errorf("IPv4 %s is %d bytes long", ip, len(ip))
				}
			}
		})
	}
}

// BenchmarkSign measures signing an ECDSA P-256 CSR with the P-256 CA, the
// CA holder's work per certificate.
func BenchmarkSign(b *testing.B) {
	now := time.Now()
	ca := newTestCA(b, now)
	csr := mustCSR(b, testKey(b, "p256"), nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.Sign(csr, clientID, now, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkSignRequest measures the whole CA-side path of one request:
// decode, verify, parse the CSR and sign.
func BenchmarkSignRequest(b *testing.B) {
	now := time.Now()
	ca := newTestCA(b, now)
	key := make([]byte, 32)
	csrDER, err := CreateCSR(testKey(b, "p256"), "c1")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	v := NewVerifier(key, 0, func() time.Time { return now })
	for b.Loop() {
		b.StopTimer()
		req := &SignRequest{NodeID: "id-c1", NodeName: "c1", Role: RoleClient, CSR: csrDER}
		if err := req.Seal(key, testIdentity(b, 3), now, rand.Reader); err != nil {
			b.Fatal(err)
		}
		enc, err := req.Encode()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		got, err := DecodeSignRequest(enc)
		if err != nil {
			b.Fatal(err)
		}
		if err := v.Verify(got); err != nil {
			b.Fatal(err)
		}
		csr, err := ParseCSR(got.CSR)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ca.Sign(csr, clientID, now, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}
