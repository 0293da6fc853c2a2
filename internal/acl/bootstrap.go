package acl

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// ErrBootstrappedElsewhere is returned by [Bootstrapper.Bootstrap] when the cluster's ACL
// system was bootstrapped by someone else: Nomad refuses a second bootstrap
// and does not accept our secret. nomad-bootstrapd then changes nothing. The
// returned error wraps it and says how to hand over.
var ErrBootstrappedElsewhere = errors.New("acl: the cluster's ACL system was bootstrapped by someone else and does not accept nomad-bootstrapd's management secret; nomad-bootstrapd changed nothing")

// ManagementTokenName is the name under which [StoreTokens] and [LoadToken]
// keep a management token's secret ID. An operator whose cluster was
// bootstrapped by hand can put a management token there (see
// [ErrBootstrappedElsewhere]).
const ManagementTokenName = "management"

// DefaultPollInterval is how often [Bootstrapper.WaitLeader] asks for a leader.
const DefaultPollInterval = 250 * time.Millisecond

// Bootstrapper runs the ACL steps against one Nomad cluster. The zero value
// is not usable; set API or use [New]. Its methods must not be called
// concurrently.
type Bootstrapper struct {
	// API is how Nomad is reached.
	API API
	// PollInterval is how often WaitLeader asks for a leader; zero means
	// DefaultPollInterval.
	PollInterval time.Duration
}

// New returns a Bootstrapper that talks to Nomad through c.
func New(c *api.Client) *Bootstrapper { return &Bootstrapper{API: NewAPI(c)} }

// WaitLeader returns once the cluster has a Raft leader, or an error after
// timeout or when ctx ends. Until then it asks every PollInterval; errors
// from Nomad (not yet listening, "No cluster leader") count as "not yet".
func (b *Bootstrapper) WaitLeader(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := b.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		leader, err := b.API.Leader(ctx)
		if err == nil && leader != "" {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = errors.New("no leader elected")
			}
			return fmt.Errorf("acl: no Nomad leader within %s: %w (last answer: %w)", timeout, context.Cause(ctx), last)
		case <-t.C:
		}
	}
}

// validUUID is the check Nomad applies to a bootstrap secret
// (helper.IsUUID).
var validUUID = regexp.MustCompile(`(?i)^[\da-f]{8}-[\da-f]{4}-[\da-f]{4}-[\da-f]{4}-[\da-f]{12}$`)

// resetIndex finds the reset index in Nomad's "already done" message.
var resetIndex = regexp.MustCompile(`reset index: (\d+)`)

// Bootstrap bootstraps Nomad's ACL system with a management token whose
// secret ID is secret (a UUID, e.g. from [NewManagementSecret]), and returns it.
// Call it once a leader exists (see WaitLeader).
//
// It is idempotent: when Nomad answers that the ACL system is already
// bootstrapped, Bootstrap checks that secret is still a valid management
// token and returns that token. When it is not, the cluster was bootstrapped
// by someone else: Bootstrap returns an error wrapping
// [ErrBootstrappedElsewhere] and has changed nothing.
func (b *Bootstrapper) Bootstrap(ctx context.Context, secret string) (*api.ACLToken, error) {
	if !validUUID.MatchString(secret) {
		return nil, errors.New("acl: the bootstrap secret must be a UUID")
	}
	tok, err := b.API.BootstrapACL(ctx, secret)
	if err == nil {
		return tok, nil
	}
	if !errors.Is(err, ErrAlreadyBootstrapped) {
		return nil, fmt.Errorf("acl: bootstrap: %w", err)
	}
	self, serr := b.API.TokenSelf(ctx, secret)
	if serr != nil {
		return nil, fmt.Errorf("%w; checking whether our management secret still works: %w", err, serr)
	}
	if self != nil && self.Type == "management" {
		return self, nil
	}
	said := strings.TrimPrefix(err.Error(), ErrAlreadyBootstrapped.Error()+": ")
	idx := "N"
	if m := resetIndex.FindStringSubmatch(said); m != nil {
		idx = m[1]
	}
	return nil, fmt.Errorf("%w (Nomad: %q). To let nomad-bootstrapd manage ACLs, either hand it a management token: "+
		"`nomad acl token create -type=management -name=nomad-bootstrapd`, its secret ID stored as %s.token in nomad-bootstrapd's token directory; "+
		"or reset the bootstrap: write %s into <data_dir>/server/acl-bootstrap-reset on the Nomad leader, after which Nomad accepts one more "+
		"bootstrap and nomad-bootstrapd's next attempt takes it (existing tokens stay valid)", ErrBootstrappedElsewhere, said, ManagementTokenName, idx)
}
