// Package nomadver knows which Nomad a node runs and what each Nomad line
// accepts and needs: the one table that the renderers, the unit writer and
// the readiness checks consult instead of assuming one Nomad.
//
// Supported are the lines from 1.6 (the last under MPL-2.0, the one tested
// end to end here) through 2.0; older versions are refused. A version newer
// than the newest known line gets that line's features.
package nomadver

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// Version is a Nomad release version.
type Version struct {
	Major, Minor, Patch int
	// Pre is a pre-release or build suffix such as "beta.1" or "dev"
	// (without its leading '-' or '+'); it does not change the features.
	Pre string
}

// Oldest is the oldest Nomad this tool drives: 1.6 brought node pools,
// which every rendered client configuration names.
var Oldest = Version{Major: 1, Minor: 6}

// Tested is the Nomad that the end-to-end suites run.
var Tested = Version{Major: 1, Minor: 6, Patch: 3}

// versionRE finds a version in `nomad version` output ("Nomad v1.6.3",
// "Nomad v1.10.0-beta.1+ent", followed by BuildDate and Revision lines), in
// an agent's self endpoint ("1.6.3") or in a member's build tag.
var versionRE = regexp.MustCompile(`v?(\d+)\.(\d+)\.(\d+)(?:[-+]([0-9A-Za-z.+-]+))?`)

// Parse reads the first version in s.
func Parse(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("nomadver: no Nomad version in %q", truncate(s, 80))
	}
	var v Version
	var err error
	for i, p := range []*int{&v.Major, &v.Minor, &v.Patch} {
		if *p, err = strconv.Atoi(m[i+1]); err != nil {
			return Version{}, fmt.Errorf("nomadver: version %q: %w", m[0], err)
		}
	}
	v.Pre = m[4]
	return v, nil
}

// String returns "1.6.3" or "1.10.0-beta.1".
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre != "" {
		s += "-" + v.Pre
	}
	return s
}

// IsZero reports whether v is unknown.
func (v Version) IsZero() bool { return v == Version{} }

// Compare returns -1, 0 or 1 as v is older than, equal to or newer than o,
// by major, minor and patch only.
func (v Version) Compare(o Version) int {
	for _, d := range [][2]int{{v.Major, o.Major}, {v.Minor, o.Minor}, {v.Patch, o.Patch}} {
		switch {
		case d[0] < d[1]:
			return -1
		case d[0] > d[1]:
			return 1
		}
	}
	return 0
}

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Compare(Version{Major: major, Minor: minor}) >= 0
}

// Line returns the release line, "1.6".
func (v Version) Line() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// ErrTooOld is returned for a Nomad older than Oldest.
var ErrTooOld = errors.New("nomadver: Nomad is too old")

// Features is what one Nomad line accepts and needs, as far as this tool
// touches it. Each field names the release that brought it, from Nomad's
// changelog and documentation; FEATURES.md beside this file lists them with
// their sources.
type Features struct {
	// Version is the Nomad the features are for.
	Version Version
	// NotifyReady: the agent tells systemd when it is ready (sd_notify),
	// so nomad.service is Type=notify; before, Type=simple (1.8.0).
	NotifyReady bool
	// RegisterNeedsKeyring: a client's registration signs a node identity,
	// so it fails ("keyring has not been initialized yet") and backs off
	// until the servers' keyring exists (1.11.0); servers publish its
	// public keys at /.well-known/jwks.json from 1.7.0. Before, a client may
	// start as soon as a server listens: its registration RPC waits out a
	// leader election by itself (RPCHoldTimeout).
	RegisterNeedsKeyring bool
	// ClientIntroduction: servers can require client introduction tokens
	// (server.client_introduction, `nomad node intro create`) (1.11.0).
	ClientIntroduction bool
	// LeadershipTransfer: the leader hands leadership to a given server
	// on request (/v1/operator/raft/transfer-leadership), so that a
	// rolling upgrade restarts no leader (1.7.0). Before, the leader's
	// restart costs an election.
	LeadershipTransfer bool
}

// For returns the features of v, or an error wrapping ErrTooOld that says
// what to do for a Nomad older than Oldest.
func For(v Version) (Features, error) {
	if v.Compare(Oldest) < 0 {
		return Features{}, fmt.Errorf("%w: %s is installed and nomad-bootstrapd needs Nomad %s or newer (node pools arrived in 1.6); install a newer Nomad (%s is tested)",
			ErrTooOld, v, Oldest.Line(), Tested)
	}
	return Features{
		Version:              v,
		NotifyReady:          v.AtLeast(1, 8),
		RegisterNeedsKeyring: v.AtLeast(1, 11),
		ClientIntroduction:   v.AtLeast(1, 11),
		LeadershipTransfer:   v.AtLeast(1, 7),
	}, nil
}

// Must returns the features of v, which must be Oldest or newer; for
// tables and tests.
func Must(v Version) Features {
	f, err := For(v)
	if err != nil {
		panic(err)
	}
	return f
}

// Lines are the representative versions of the lines whose rendered files
// are golden-tested: the tested 1.6, a 1.10/1.11 and a 2.0.
var Lines = []Version{Tested, {Major: 1, Minor: 11, Patch: 0}, {Major: 2, Minor: 0, Patch: 0}}

// Newest is the newest line whose configuration this release of
// nomad-bootstrapd renders and golden-tests; a later line may need
// settings it does not know.
var Newest = Lines[len(Lines)-1]

// Supported returns nil when this release drives Nomad v: Oldest or
// newer, and no newer than Newest's line.
func Supported(v Version) error {
	if _, err := For(v); err != nil {
		return err
	}
	if v.Compare(Version{Major: Newest.Major, Minor: Newest.Minor + 1}) >= 0 {
		return fmt.Errorf("nomadver: Nomad %s is newer than the %s line this release of nomad-bootstrapd configures: upgrade nomad-bootstrapd first", v, Newest.Line())
	}
	return nil
}

// detectTimeout bounds `nomad version`, which only prints and exits.
const detectTimeout = 10 * time.Second

// Detect runs `bin version` and parses what it prints.
func Detect(ctx context.Context, bin string) (Version, error) {
	ctx, cancel := context.WithTimeout(ctx, detectTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return Version{}, fmt.Errorf("nomadver: %s version: %w: %s", bin, err, truncate(string(ee.Stderr), 200))
		}
		return Version{}, fmt.Errorf("nomadver: %s version: %w", bin, err)
	}
	v, err := Parse(string(out))
	if err != nil {
		return Version{}, fmt.Errorf("nomadver: %s version printed no version: %q", bin, truncate(string(out), 80))
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
