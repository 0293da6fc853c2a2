package clusterstate

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

// Phases of a rotation of the cluster CA.
const (
	// CATrust: every node trusts both CAs; the old one still signs.
	CATrust = "trust"
	// CAIssue: the new CA signs, and every node renews its certificates
	// from it; both are still trusted.
	CAIssue = "issue"
	// CADone: every node trusts the new CA alone.
	CADone = "done"
)

// Bounds of a CA bundle, so that two bundles, MaxEvicted evictions and the
// signature fit within MaxSignedSize.
const (
	// MaxCABundleSize is the most bytes of PEM one bundle holds: enough
	// for an RSA-4096 intermediate under an RSA-4096 root.
	MaxCABundleSize = 4 << 10
	// MaxCABundleCerts is the most certificates one bundle holds.
	MaxCABundleCerts = 8
)

// CA is the cluster CA as rotations left it. The zero value is the CA that
// the plan pins (generation 0), never rotated.
type CA struct {
	// Generation is the newest CA's: 0 is the plan's, each rotation adds one.
	Generation uint32 `json:"generation"`
	// Phase is CATrust, CAIssue or CADone.
	Phase string `json:"phase"`
	// Bundles are the PEM bundles of the CAs trusted, newest first: each a
	// CA certificate followed by its chain up to its root (an operator's
	// intermediate), as certs.CA.BundlePEM returns it. Two during a rotation
	// (the new, then the old), one when done.
	Bundles []string `json:"bundles"`
	// StartedAt is when the rotation to Generation began; RotatedAt when it
	// was done (zero before).
	StartedAt time.Time `json:"started_at,omitzero"`
	RotatedAt time.Time `json:"rotated_at,omitzero"`
}

// SameStep reports whether c and o are at the same step of the same
// rotation: what a node follows.
func (c CA) SameStep(o CA) bool { return c.Generation == o.Generation && c.Phase == o.Phase }

// IsZero reports whether c is the zero value: the plan's CA, never
// rotated. A state's JSON leaves such a record out.
func (c CA) IsZero() bool {
	return c.Generation == 0 && c.Phase == "" && len(c.Bundles) == 0 && c.StartedAt.IsZero() && c.RotatedAt.IsZero()
}

func (c CA) validate() error {
	if c.IsZero() {
		return nil
	}
	if c.Generation == 0 {
		return errors.New("clusterstate: CA generation 0 is the plan's and is never rotated to")
	}
	want := 2
	switch c.Phase {
	case CATrust, CAIssue:
		if !c.RotatedAt.IsZero() {
			return fmt.Errorf("clusterstate: the rotation to CA generation %d is in phase %s but has a time it was done", c.Generation, c.Phase)
		}
	case CADone:
		want = 1
		if c.RotatedAt.IsZero() {
			return fmt.Errorf("clusterstate: the done rotation to CA generation %d has no time it was done", c.Generation)
		}
	default:
		return fmt.Errorf("clusterstate: CA phase %q is not trust, issue or done", c.Phase)
	}
	if c.StartedAt.IsZero() {
		return fmt.Errorf("clusterstate: the rotation to CA generation %d has no time it began", c.Generation)
	}
	if len(c.Bundles) != want {
		return fmt.Errorf("clusterstate: CA generation %d in phase %s has %d bundles, not %d", c.Generation, c.Phase, len(c.Bundles), want)
	}
	fps := make([]string, len(c.Bundles))
	for i, b := range c.Bundles {
		fp, err := checkBundle(b)
		if err != nil {
			return fmt.Errorf("clusterstate: CA bundle %d of generation %d: %w", i+1, c.Generation, err)
		}
		fps[i] = fp
	}
	if len(fps) == 2 && fps[0] == fps[1] {
		return fmt.Errorf("clusterstate: CA generation %d rotates to the CA it rotates from (%s)", c.Generation, fps[0])
	}
	return nil
}

// checkBundle checks one CA bundle and returns its first certificate's
// fingerprint. A bundle holds its certificates alone, PEM encoded one
// after the other as certs.CA.BundlePEM writes them: nothing else (a
// private key above all) travels to every node, and bundles concatenate
// into one valid PEM file.
func checkBundle(b string) (string, error) {
	if len(b) > MaxCABundleSize {
		return "", fmt.Errorf("%d bytes exceed %d", len(b), MaxCABundleSize)
	}
	cs, err := certs.ParseCertsPEM([]byte(b))
	if err != nil {
		return "", err
	}
	if len(cs) > MaxCABundleCerts {
		return "", fmt.Errorf("%d certificates exceed %d", len(cs), MaxCABundleCerts)
	}
	var canon bytes.Buffer
	for i, c := range cs {
		if !c.BasicConstraintsValid || !c.IsCA {
			return "", fmt.Errorf("certificate %d (%q) is not a CA certificate", i+1, c.Subject.CommonName)
		}
		canon.Write(certs.EncodeCertPEM(c.Raw))
	}
	if canon.String() != b {
		return "", errors.New("holds more than its certificates, PEM encoded one after the other (a key, PEM headers or other text)")
	}
	return certs.Fingerprint(cs[0]), nil
}

// Fingerprints returns the fingerprints (certs.Fingerprint) of the CAs c
// trusts, newest first: those of the bundles' first certificates. It is
// nil for the zero value, and "" stands for a bundle that does not parse.
func (c CA) Fingerprints() []string {
	if len(c.Bundles) == 0 {
		return nil
	}
	fps := make([]string, len(c.Bundles))
	for i, b := range c.Bundles {
		if cert, err := certs.ParseCertPEM([]byte(b)); err == nil {
			fps[i] = certs.Fingerprint(cert)
		}
	}
	return fps
}

// Signing returns the fingerprint of the CA that signs: the old one
// (Bundles[1]) in CATrust, the new one (Bundles[0]) in CAIssue and CADone.
// It is "" for the zero value, whose CA the plan pins.
func (c CA) Signing() string {
	fps := c.Fingerprints()
	switch {
	case c.Phase == CATrust && len(fps) == 2:
		return fps[1]
	case (c.Phase == CAIssue || c.Phase == CADone) && len(fps) > 0:
		return fps[0]
	}
	return ""
}

// BundlePEM returns the bundles of the CAs c trusts, newest first, as one
// PEM file: what a node writes to Nomad's ca_file. It is nil for the zero
// value, whose CA the plan pins.
func (c CA) BundlePEM() []byte {
	var b []byte
	for _, s := range c.Bundles {
		b = append(b, s...)
	}
	return b
}

// signingBundle returns the bundle of the CA that signs in c, which the
// next generation starts from: the new one once c is done, the old one in
// CATrust (a rotation cut short, which the next generation replaces). In
// CAIssue, nodes still hold certificates of either CA, and the rotation
// must be done first.
func (c CA) signingBundle() (string, error) {
	switch {
	case c.Phase == CADone && len(c.Bundles) == 1:
		return c.Bundles[0], nil
	case c.Phase == CATrust && len(c.Bundles) == 2:
		return c.Bundles[1], nil
	case c.Phase == CAIssue:
		return "", fmt.Errorf("clusterstate: the rotation to CA generation %d is in phase %s: it must be done before the next one starts", c.Generation, c.Phase)
	}
	return "", fmt.Errorf("clusterstate: the recorded CA generation %d is invalid", c.Generation)
}

// sameCAs reports whether a and b, of one generation, trust the same new
// CA and, when both hold the old one too, the same old CA.
func sameCAs(a, b CA) bool {
	if len(a.Bundles) == 0 || len(b.Bundles) == 0 || a.Bundles[0] != b.Bundles[0] {
		return false
	}
	return len(a.Bundles) < 2 || len(b.Bundles) < 2 || a.Bundles[1] == b.Bundles[1]
}

func caPhaseRank(p string) int { return slices.Index([]string{CATrust, CAIssue, CADone}, p) }

// WithCA returns s recording c, with its version raised, and true; or s
// and false when s records c's generation and phase already, or a later
// generation, or a later phase of c's.
//
// A rotation advances one phase at a time, trust, issue, done, with the
// bundles it started with. The next generation starts in CATrust from the
// CA that signs: its old bundle (Bundles[1]) is the done record's bundle,
// or the old bundle of a rotation cut short in CATrust, which it replaces;
// a rotation in CAIssue must be done first. WithCA refuses anything else.
// The first rotation starts from the plan's CA, which s does not hold: the
// caller checks that Bundles[1] is the CA the plan pins.
func (s State) WithCA(c CA) (State, bool, error) {
	if err := c.validate(); err != nil {
		return s, false, err
	}
	cur := s.CA
	switch {
	case c.Generation < cur.Generation:
		return s, false, nil
	case c.Generation == cur.Generation:
		if c.IsZero() {
			return s, false, nil
		}
		if caPhaseRank(c.Phase) < caPhaseRank(cur.Phase) {
			return s, false, nil
		}
		if !sameCAs(c, cur) {
			return s, false, fmt.Errorf("clusterstate: the rotation to CA generation %d is recorded with other CAs", c.Generation)
		}
		switch caPhaseRank(c.Phase) - caPhaseRank(cur.Phase) {
		case 0:
			return s, false, nil
		case 1:
		default:
			return s, false, fmt.Errorf("clusterstate: the rotation to CA generation %d cannot go from %s to %s", c.Generation, cur.Phase, c.Phase)
		}
	default:
		if c.Generation-1 != cur.Generation {
			return s, false, fmt.Errorf("clusterstate: CA generation %d does not follow generation %d", c.Generation, cur.Generation)
		}
		if c.Phase != CATrust {
			return s, false, fmt.Errorf("clusterstate: the rotation to CA generation %d starts in phase %s, not %s", c.Generation, c.Phase, CATrust)
		}
		if !cur.IsZero() {
			from, err := cur.signingBundle()
			if err != nil {
				return s, false, err
			}
			if c.Bundles[1] != from {
				return s, false, fmt.Errorf("clusterstate: the rotation to CA generation %d does not start from the CA that signs in generation %d's phase %s", c.Generation, cur.Generation, cur.Phase)
			}
		}
	}
	next := s.clone()
	next.CA = c
	next.CA.Bundles = slices.Clone(c.Bundles)
	next.Version++
	return next, true, nil
}
