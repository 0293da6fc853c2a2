package agent

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/caholder"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/casvc"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// certRoles returns the certificates this node needs under p: a server
// certificate (and the operator's CLI certificate) on servers, a client
// certificate on clients.
func (a *Agent) certRoles(p plan.Plan) []certs.Role { return status.CertRoles(p, a.id) }

// certify makes sure every certificate this node needs exists, chains to the
// CA that signs and is not due for renewal. It reports whether it changed any
// file and the earliest renewal time.
//
// Once the CA was rotated, the bundle is the one the cluster state holds:
// both CAs while a rotation is under way, then the new one alone; and from
// the moment the new CA signs, a certificate from the old one is renewed.
func (a *Agent) certify(ctx context.Context, p plan.Plan) (changed bool, renewAt time.Time, err error) {
	files := certs.TLSFiles{Dir: a.paths.NomadTLSDir()}
	rec := a.caRecord()
	if rec.Generation > 0 {
		if changed, err = files.WriteCA(rec.BundlePEM()); err != nil {
			return false, time.Time{}, err
		}
		if changed {
			a.log.Info("the CA bundle follows the CA rotation", "generation", rec.Generation, "phase", rec.Phase)
		}
	}
	pool, err := a.pinnedPool(files, p)
	if err != nil {
		return false, time.Time{}, err
	}
	var leaves []*x509.Certificate
	defer func() {
		if err == nil {
			a.announceCA(caGenerations(rec, files.CAPath(), leaves))
		}
	}()
	for _, role := range a.certRoles(p) {
		key, err := files.LoadKey(role)
		if errors.Is(err, fs.ErrNotExist) {
			k, kerr := certs.NewKey(rand.Reader)
			if kerr != nil {
				return changed, time.Time{}, kerr
			}
			pemKey, kerr := certs.MarshalKeyPEM(k)
			if kerr != nil {
				return changed, time.Time{}, kerr
			}
			if _, kerr := files.WriteKey(role, pemKey); kerr != nil {
				return changed, time.Time{}, kerr
			}
			key, err = k, nil
		}
		if err != nil {
			return changed, time.Time{}, fmt.Errorf("agent: %s key: %w", role, err)
		}
		cert, err := files.LoadCert(role)
		if err == nil && a.certUsable(cert, key, issuedBy(pool, rec), p, role) {
			renewAt = earliest(renewAt, certs.RenewAt(cert))
			leaves = append(leaves, cert)
			continue
		}
		certPEM, bundlePEM, err := a.requestCert(ctx, p, role, key)
		if err != nil {
			return changed, time.Time{}, fmt.Errorf("agent: %s certificate: %w", role, err)
		}
		if rec.Generation == 0 {
			if _, err := files.WriteCA(bundlePEM); err != nil {
				return changed, time.Time{}, err
			}
			if pool, err = a.pinnedPool(files, p); err != nil {
				return changed, time.Time{}, err
			}
		}
		if _, err := files.WriteCert(role, certPEM); err != nil {
			return changed, time.Time{}, err
		}
		cert, err = certs.ParseCertPEM(certPEM)
		if err != nil {
			return changed, time.Time{}, err
		}
		changed = true
		leaves = append(leaves, cert)
		renewAt = earliest(renewAt, certs.RenewAt(cert))
		a.log.Info("certificate issued", "role", role, "not_after", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return changed, renewAt, nil
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// issuedBy returns the pool a certificate must verify against to be kept:
// pool, or, from the moment a rotation's new CA signs, the new CA alone.
func issuedBy(pool *x509.CertPool, rec clusterstate.CA) *x509.CertPool {
	if rec.Generation == 0 || rec.Phase == clusterstate.CATrust {
		return pool
	}
	cas, err := certs.ParseCertsPEM([]byte(rec.Bundles[0]))
	if err != nil {
		return x509.NewCertPool() // renewed: Validate let no such bundle in
	}
	newest := x509.NewCertPool()
	for _, c := range cas {
		newest.AddCert(c)
	}
	return newest
}

// pinnedPool returns the CA bundle on disk as a pool when it holds the CA
// that signs (the plan's, or the one a rotation made); an empty pool
// otherwise.
func (a *Agent) pinnedPool(files certs.TLSFiles, p plan.Plan) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	b, err := os.ReadFile(files.CAPath())
	if errors.Is(err, fs.ErrNotExist) {
		return pool, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	cas, err := certs.ParseCertsPEM(b)
	if err != nil {
		return pool, nil // replaced by the next issue
	}
	if certs.PinnedIndex(cas, a.caSigning(p)) < 0 {
		return pool, nil
	}
	for _, c := range cas {
		pool.AddCert(c)
	}
	return pool, nil
}

// certUsable reports whether cert can be kept: it belongs to key, chains to
// the pinned CA for its role's names and is not due for renewal.
func (a *Agent) certUsable(cert *x509.Certificate, key crypto.Signer, pool *x509.CertPool, p plan.Plan, role certs.Role) bool {
	type pub interface{ Equal(crypto.PublicKey) bool }
	if k, ok := key.Public().(pub); !ok || !k.Equal(cert.PublicKey) {
		return false
	}
	if certs.NeedsRenewal(cert, a.now()) {
		return false
	}
	dns, ips, err := certs.Names(a.identity(p, role))
	if err != nil || !slices.Equal(cert.DNSNames, dns) || len(cert.IPAddresses) != len(ips) {
		return false
	}
	for i := range ips {
		if !cert.IPAddresses[i].Equal(ips[i]) {
			return false
		}
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: a.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

func (a *Agent) identity(p plan.Plan, role certs.Role) certs.Identity {
	return certs.Identity{NodeID: a.id, NodeName: a.name, Region: p.Region, Address: a.advertise, Role: role}
}

// requestCert obtains a certificate for key: signed locally on the CA
// holder, through the CA holder's endpoint, pinned to the plan's CA,
// everywhere else.
func (a *Agent) requestCert(ctx context.Context, p plan.Plan, role certs.Role, key crypto.Signer) (certPEM, bundlePEM []byte, err error) {
	csrDER, err := certs.CreateCSR(key, a.name)
	if err != nil {
		return nil, nil, err
	}
	if p.CAHolder == a.id {
		a.mu.Lock()
		ca := a.ca
		a.mu.Unlock()
		if ca == nil {
			return nil, nil, errors.New("the CA is not loaded")
		}
		csr, err := certs.ParseCSR(csrDER)
		if err != nil {
			return nil, nil, err
		}
		der, err := ca.Sign(csr, a.identity(p, role), a.now(), a.cfg.CertLifetime)
		if err != nil {
			return nil, nil, err
		}
		return certs.EncodeCertPEM(der), ca.BundlePEM(), nil
	}
	// The CA holder first; when it is down, the servers that may have taken
	// over, in the plan's order. Each one must present the pinned CA.
	alive := a.aliveNames()
	var errs []error
	for _, s := range caholder.Candidates(p) {
		if !alive[s.Name] {
			continue
		}
		req := &certs.SignRequest{NodeID: a.id, NodeName: a.name, Role: role, CSR: csrDER, Admission: a.admission()}
		if err := req.Seal(a.keys.CSR, a.idKey, a.now(), rand.Reader); err != nil {
			return nil, nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, a.tm.CARequest)
		iss, err := casvc.RequestIssued(rctx, a.sourceAddr(), net.JoinHostPort(s.Address, strconv.Itoa(p.CAPort)), a.caSigning(p), req)
		cancel()
		if err == nil {
			a.keepAdmission(iss.Admission)
			return iss.Cert, iss.Bundle, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
		var se *casvc.StatusError
		if errors.As(err, &se) && se.Code != http.StatusServiceUnavailable {
			break // the CA answered and refused: another server would too
		}
	}
	if len(errs) == 0 {
		return nil, nil, fmt.Errorf("the CA holder %s is not alive and no other server is", p.CAHolderName())
	}
	return nil, nil, errors.Join(errs...)
}

// admission returns what this node's certificate requests show to be
// admitted: nothing for a server-token holder; for a client-token holder
// the admission the CA returned with an earlier certificate, which keeps
// working once the token expires, else the token's own expiry and tag.
func (a *Agent) admission() []byte {
	if a.cred.IsServer() {
		return nil
	}
	if b, err := os.ReadFile(a.paths.AdmissionFile()); err == nil && len(b) == ed25519.SignatureSize {
		return b
	}
	return a.cred.Client.Admission()
}

// keepAdmission stores an admission the CA returned (0600), for renewals.
func (a *Agent) keepAdmission(adm []byte) {
	if len(adm) != ed25519.SignatureSize || a.cred.IsServer() {
		return
	}
	if _, err := atomicfile.WriteFileIfChanged(a.paths.AdmissionFile(), adm, 0o600); err != nil {
		a.log.Warn("cannot keep the admission the CA returned; renewals need the client token to be valid", "error", err)
	}
}

// sourceAddr is the address this node sends certificate requests from: its
// bind address, or the advertised one when it binds every address. The CA
// holder checks that a request comes from the member's gossip address.
func (a *Agent) sourceAddr() netip.Addr {
	for _, s := range []string{a.bind, a.advertise} {
		if ip, err := netip.ParseAddr(s); err == nil && !ip.IsUnspecified() {
			return ip
		}
	}
	return netip.Addr{}
}
