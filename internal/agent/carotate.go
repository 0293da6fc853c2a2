package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/caholder"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// caRecord returns where the cluster state says the CA's rotations stand;
// the zero value while the CA the plan pins was never rotated.
func (a *Agent) caRecord() clusterstate.CA {
	if st := a.clusterState(); st != nil {
		return st.CA
	}
	return clusterstate.CA{}
}

// caSigning returns the fingerprint of the CA that signs: the plan's until
// the first rotation, then the one the cluster state names.
func (a *Agent) caSigning(p plan.Plan) string {
	if rec := a.caRecord(); rec.Generation > 0 {
		return rec.Signing()
	}
	return p.CAFingerprint
}

// caTrusted returns the fingerprints of the CAs a node trusts: the plan's
// until the first rotation, then the cluster state's.
func (a *Agent) caTrusted(p plan.Plan) []string {
	if rec := a.caRecord(); rec.Generation > 0 {
		return rec.Fingerprints()
	}
	return []string{p.CAFingerprint}
}

// caGenerations returns, for the meta, the newest and oldest CA
// generations whose certificate the bundle at caPath holds and the oldest
// generation that issued one of leaves; all 0 while the CA never rotated,
// or when the bundle cannot be read.
func caGenerations(rec clusterstate.CA, caPath string, leaves []*x509.Certificate) (newest, oldest, issued uint32) {
	if rec.Generation == 0 {
		return 0, 0, 0
	}
	gens := map[string]uint32{}
	var cas []*x509.Certificate
	for i, b := range rec.Bundles {
		c, err := certs.ParseCertsPEM([]byte(b))
		if err != nil || len(c) == 0 {
			return 0, 0, 0
		}
		gens[certs.Fingerprint(c[0])] = rec.Generation - uint32(i)
		cas = append(cas, c[0])
	}
	if b, err := os.ReadFile(caPath); err == nil {
		held, _ := certs.ParseCertsPEM(b)
		first := true
		for _, c := range held {
			g, ok := gens[certs.Fingerprint(c)]
			if !ok {
				continue // an operator root above an intermediate
			}
			if first || g > newest {
				newest = g
			}
			if first || g < oldest {
				oldest = g
			}
			first = false
		}
	}
	if len(leaves) == 0 {
		return newest, oldest, 0
	}
	issued = rec.Generation
	for _, l := range leaves {
		i := slices.IndexFunc(cas, func(ca *x509.Certificate) bool { return l.CheckSignatureFrom(ca) == nil })
		if i < 0 {
			return newest, oldest, 0 // from a CA rotated out
		}
		issued = min(issued, rec.Generation-uint32(i))
	}
	return newest, oldest, issued
}

// caStatusLocked returns the status of the cluster CA's rotations; the CA
// holder, which runs the schedule, knows the next one. The
// caller holds a.mu.
func (a *Agent) caStatusLocked(rec clusterstate.CA) status.KeyStatus {
	ks := status.KeyStatus{Generation: rec.Generation, RotatedAt: rec.RotatedAt}
	if rec.Generation > 0 && rec.Phase != clusterstate.CADone {
		ks.Rotating = fmt.Sprintf("%s generation %d", rec.Phase, rec.Generation)
	}
	if a.ca != nil && a.caSrv != nil && a.plan != nil && a.plan.CAHolder == a.id && a.caReplaceable(a.ca) == nil {
		ks.NextRotation = caRotationDue(a.ca.Cert, a.cfg.CARotationPercent)
	}
	return ks
}

// announceCA puts this node's CA generations in its meta when they
// changed.
func (a *Agent) announceCA(newest, oldest, issued uint32) {
	a.ringMu.Lock()
	defer a.ringMu.Unlock()
	if a.meta.CANewest == newest && a.meta.CAOldest == oldest && a.meta.CAIssued == issued {
		return
	}
	a.meta.CANewest, a.meta.CAOldest, a.meta.CAIssued = newest, oldest, issued
	if err := a.node.UpdateMeta(a.meta); err != nil {
		a.log.Debug("announcing the CA generations", "error", err)
	}
}

// CARotateRoute is the control socket's route of ca rotate.
const CARotateRoute = "/v1/ca/rotate"

// CARotateTimeout bounds ca rotate on the agent: three waits of
// Timings.KeyWait, and the calls.
const CARotateTimeout = 5 * time.Minute

// CARotateRequest is what ca rotate sends to the agent: with the files of
// an intermediate of the operator's offline root, the CA to rotate to
// (absolute paths on the agent's machine); without, a new CA the server
// makes.
type CARotateRequest struct {
	CertFile  string `json:"cert_file,omitempty"`
	KeyFile   string `json:"key_file,omitempty"`
	ChainFile string `json:"chain_file,omitempty"`
}

// CAAnswer is what ca rotate reports.
type CAAnswer struct {
	// Generation is the new CA's, Fingerprint its certificate's.
	Generation  uint32    `json:"generation"`
	Fingerprint string    `json:"fingerprint"`
	NotAfter    time.Time `json:"not_after"`
	RotatedAt   time.Time `json:"rotated_at"`
	// Resumed is true when the command finished a rotation cut short.
	Resumed bool `json:"resumed"`
	// Lagging are the alive members that had not announced, when the
	// command returned, that they trust the new CA alone and hold
	// certificates from it; each catches up from the cluster state.
	Lagging []string `json:"lagging,omitempty"`
	// Version is the cluster state's version that records the rotation.
	Version uint64 `json:"version"`
}

// RotateCA replaces the cluster CA with a new one, or finishes a rotation
// cut short, on the CA holder: every node first
// trusts both CAs, then gets certificates from the new one, then trusts it
// alone. Nomad is reloaded at each step, never restarted.
func (a *Agent) RotateCA(ctx context.Context, req CARotateRequest) (CAAnswer, error) {
	p, err := a.serverReady()
	if err != nil {
		return CAAnswer{}, err
	}
	a.mu.Lock()
	cur, serving := a.ca, a.caSrv != nil
	a.mu.Unlock()
	switch {
	case p.CAHolder != a.id:
		// A server signing in the place of a CA holder that is down
		// does not rotate: the other servers take escrows from the
		// plan's CA holder only.
		return CAAnswer{}, fmt.Errorf("this server is not the CA holder: run ca rotate on the CA holder, %s (while it is down, rotate once it is back or replaced)", p.CAHolderName())
	case cur == nil || !serving:
		return CAAnswer{}, errors.New("this server's CA does not sign yet; wait until status shows it running")
	}
	// A rotation under way is finished as it began, with or without the
	// intermediate's files.
	rec := a.caRecord()
	underWay := rec.Generation > 0 && rec.Phase != clusterstate.CADone
	var next *certs.CA
	files := config.CAFiles{CertFile: req.CertFile, KeyFile: req.KeyFile, ChainFile: req.ChainFile}
	switch {
	case files.Set() && (files.CertFile == "" || files.KeyFile == "" || files.ChainFile == ""):
		return CAAnswer{}, errors.New("an intermediate of the offline root needs its certificate, its key and the chain up to the root, all three")
	case files.Set():
		if next, err = caholder.Operator(files, a.now()); err != nil {
			return CAAnswer{}, err
		}
		if !underWay && next.Fingerprint() == cur.Fingerprint() {
			return CAAnswer{}, fmt.Errorf("the intermediate %s is the CA that signs already", next.Fingerprint())
		}
	case !underWay:
		if err := a.caReplaceable(cur); err != nil {
			return CAAnswer{}, err
		}
	}
	if err := lockWithin(ctx, &a.caRotMu, "this server is rotating the CA already; wait for it to finish"); err != nil {
		return CAAnswer{}, err
	}
	defer a.caRotMu.Unlock()
	return a.rotateCA(ctx, p, next)
}

// caReplaceable refuses to replace an operator's intermediate, whose root
// key is not on the server.
func (a *Agent) caReplaceable(ca *certs.CA) error {
	if len(ca.Chain) > 0 || a.cfg.CA.Set() {
		return errors.New("the cluster CA is an intermediate of the operator's offline root, whose key is not on this server: issue a new intermediate from the root (ca csr) and rotate to it with ca rotate -cert, -key and -chain")
	}
	return nil
}

// caRotationDue returns when the CA whose certificate is cert is rotated on
// schedule: once percent of its lifetime has passed; zero when percent is
// 0 (only on command).
func caRotationDue(cert *x509.Certificate, percent int) time.Time {
	if percent <= 0 {
		return time.Time{}
	}
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(life / 100 * time.Duration(percent)).UTC()
}

// scheduleCA, on the CA holder, every Timings.ClusterSync,
// finishes a CA rotation cut short, and rotates the CA once
// ca_rotation_percent of its lifetime has passed; an operator's
// intermediate is not replaced, and status warns instead.
func (a *Agent) scheduleCA(ctx context.Context) {
	if a.now().Sub(a.lastCACheck) < a.tm.ClusterSync {
		return
	}
	a.mu.Lock()
	ca, serving := a.ca, a.caSrv != nil
	a.mu.Unlock()
	if ca == nil || !serving {
		return
	}
	p, err := a.serverReady()
	if err != nil || p.CAHolder != a.id {
		return
	}
	a.lastCACheck = a.now()
	rec := a.caRecord()
	cutShort := rec.Generation > 0 && rec.Phase != clusterstate.CADone
	due := caRotationDue(ca.Cert, a.cfg.CARotationPercent)
	if !cutShort && (due.IsZero() || a.now().Before(due)) {
		return
	}
	if err := a.caReplaceable(ca); err != nil && !cutShort {
		a.warn("ca-rotation", fmt.Sprintf("the cluster CA has served %d%% of its lifetime and expires %s: %v", a.cfg.CARotationPercent, ca.Cert.NotAfter.UTC().Format(time.RFC3339), err))
		return
	}
	if !a.caRotMu.TryLock() {
		return // ca rotate runs
	}
	defer a.caRotMu.Unlock()
	if cutShort {
		a.log.Warn("finishing a rotation of the cluster CA that was cut short", "generation", rec.Generation, "phase", rec.Phase)
	} else {
		a.log.Info("rotating the cluster CA on schedule", "not_after", ca.Cert.NotAfter.UTC(), "ca_rotation_percent", a.cfg.CARotationPercent)
	}
	if _, err := a.rotateCA(ctx, p, nil); err != nil {
		a.log.Warn("rotating the cluster CA; retrying at the next check", "error", err)
	}
}

// rotateCA runs or resumes a rotation, to next when it is not nil, else to
// a CA it makes. The caller holds caRotMu.
func (a *Agent) rotateCA(ctx context.Context, p plan.Plan, next *certs.CA) (CAAnswer, error) {
	vars, closeVars, err := a.nomadVars(p)
	if err != nil {
		return CAAnswer{}, err
	}
	defer closeVars()
	store := a.caStore()
	rec := a.caRecord()
	resumed := rec.Generation > 0 && rec.Phase != clusterstate.CADone
	if resumed && next != nil && next.Fingerprint() != rec.Fingerprints()[0] {
		return CAAnswer{}, fmt.Errorf("a rotation to CA generation %d (%s) is under way: run ca rotate without the intermediate's files to finish it first", rec.Generation, rec.Fingerprints()[0])
	}
	if resumed && rec.Phase == clusterstate.CATrust {
		if kept, err := store.LoadNext(); err != nil || kept == nil || kept.Fingerprint() != rec.Fingerprints()[0] {
			a.log.Warn("this server does not hold the new CA of the rotation cut short; rotating to another one", "generation", rec.Generation)
			resumed = false
		}
	}
	if !resumed {
		a.mu.Lock()
		cur := a.ca
		a.mu.Unlock()
		if next == nil {
			if err := a.caReplaceable(cur); err != nil {
				return CAAnswer{}, err
			}
			if next, err = certs.NewCA(rand.Reader, a.cred.ClusterIDString(), a.now(), 0); err != nil {
				return CAAnswer{}, err
			}
		}
		if err := store.SaveNext(next); err != nil {
			return CAAnswer{}, err
		}
		rec = clusterstate.CA{
			Generation: rec.Generation + 1, Phase: clusterstate.CATrust,
			Bundles:   []string{string(next.BundlePEM()), string(cur.BundlePEM())},
			StartedAt: a.now().UTC(),
		}
		if err := a.recordCA(ctx, vars, rec); err != nil {
			return CAAnswer{}, err
		}
		a.log.Info("rotating the cluster CA: every node trusts the new CA beside the old", "generation", rec.Generation, "fingerprint", next.Fingerprint())
	} else {
		a.log.Warn("finishing a rotation of the cluster CA that was cut short", "generation", rec.Generation, "phase", rec.Phase)
	}
	gen := rec.Generation
	if rec.Phase == clusterstate.CATrust {
		if err := a.waitMembers(ctx, func(m gossip.Meta) bool { return m.CANewest >= gen }); err != nil {
			return CAAnswer{}, err
		}
		next, err := store.Signing(rec.Fingerprints()[0])
		if err != nil {
			return CAAnswer{}, err
		}
		if err := a.switchCA(p, next); err != nil {
			return CAAnswer{}, err
		}
		rec.Phase = clusterstate.CAIssue
		if err := a.recordCA(ctx, vars, rec); err != nil {
			return CAAnswer{}, err
		}
		a.log.Info("the new CA signs: every node renews its certificates from it", "generation", gen)
	}
	if rec.Phase == clusterstate.CAIssue {
		if err := a.waitMembers(ctx, func(m gossip.Meta) bool { return m.CAIssued >= gen }); err != nil {
			return CAAnswer{}, err
		}
		rec.Phase, rec.Bundles, rec.RotatedAt = clusterstate.CADone, rec.Bundles[:1], a.now().UTC()
		if err := a.recordCA(ctx, vars, rec); err != nil {
			return CAAnswer{}, err
		}
	}
	done := func(m gossip.Meta) bool { return m.CAOldest >= gen && m.CAIssued >= gen }
	if err := a.waitMembers(ctx, done); err != nil {
		return CAAnswer{}, err
	}
	lagging := a.membersWithout(done)
	slices.Sort(lagging)
	if len(lagging) > 0 {
		a.log.Warn("members that did not yet announce the new CA alone; each catches up from the cluster state", "generation", gen, "members", strings.Join(lagging, ","))
	}
	a.mu.Lock()
	ca := a.ca
	a.mu.Unlock()
	ans := CAAnswer{Generation: gen, Fingerprint: ca.Fingerprint(), NotAfter: ca.Cert.NotAfter.UTC(), RotatedAt: rec.RotatedAt, Resumed: resumed, Lagging: lagging}
	if st := a.clusterState(); st != nil {
		ans.Version = st.Version
	}
	a.log.Info("rotated the cluster CA", "generation", gen, "fingerprint", ans.Fingerprint)
	return ans, nil
}

// switchCA makes ca the CA this server signs with: its endpoint presents
// it from now on, and the other servers get its escrow.
func (a *Agent) switchCA(p plan.Plan, ca *certs.CA) error {
	a.mu.Lock()
	old, ctx := a.caSrv, a.caCtx
	a.caSrv = nil
	a.mu.Unlock()
	if old != nil {
		old.Close()
	}
	if ctx == nil {
		return errors.New("the CA endpoint is not running")
	}
	if err := a.serveCA(ctx, p, ca); err != nil {
		return err
	}
	a.escrowCA(ca, p)
	return nil
}

// recordCA records rec in the cluster state and sends it to every member;
// this server's own certificates follow at the pipeline's next look.
func (a *Agent) recordCA(ctx context.Context, vars clusterstate.Vars, rec clusterstate.CA) error {
	st, _, err := clusterstate.Update(ctx, vars, a.cred.ClusterIDString(), func(s clusterstate.State) (clusterstate.State, bool, error) {
		restored := a.restore(&s)
		next, changed, err := s.WithCA(rec)
		return next, changed || restored, err
	})
	if err != nil {
		return fmt.Errorf("recording the CA rotation in the cluster state: %w", err)
	}
	return a.publishClusterState(ctx, st)
}

// caChangeSigner refuses a cluster state that changes the CAs a node
// trusts, or which one signs, unless a server of p signed it with the
// identity key p records for it: a rotation is the CA holder's, and every
// state the servers sign carries it on. Holding the server token is not
// enough. A node without a plan yet takes it.
func caChangeSigner(p *plan.Plan, held, next clusterstate.CA, sg clusterstate.Signed) error {
	if p == nil || (held.SameStep(next) && slices.Equal(held.Bundles, next.Bundles)) {
		return nil
	}
	i := slices.IndexFunc(p.Servers, func(s plan.Server) bool { return s.ID == sg.By })
	if i >= 0 {
		if key, ok := p.Servers[i].PublicKey(); ok && key.Equal(ed25519.PublicKey(sg.Key)) {
			return nil
		}
	}
	return fmt.Errorf("agent: a change of the cluster CA (generation %d, %s) signed by %s, which is not a server of plan epoch %d", next.Generation, next.Phase, sg.By, p.Epoch)
}
