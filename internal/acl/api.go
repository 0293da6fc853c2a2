// Package acl bootstraps Nomad's ACL system and puts the seed's access model
// in place: the management token with a secret nomad-bootstrapd chooses, the
// policies anonymous, readonly, deployer and ops-admin, one client token for
// each of the last three, and the node pools warm, batch and special.
//
// Everything here talks to Nomad's HTTP API through github.com/hashicorp/nomad/api,
// behind the small [API] interface, and every step is idempotent: running it
// again against a cluster that is already set up changes nothing and reports
// so. It is meant to run on one server at a time (the daemon runs it once, on
// the server that owns the bootstrap); two concurrent runs against one empty
// cluster could each create the same token.
package acl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// ErrAlreadyBootstrapped is wrapped by [API.BootstrapACL] when Nomad answers
// that its ACL system was bootstrapped already (HTTP 400 "ACL bootstrap already
// done (reset index: N)").
var ErrAlreadyBootstrapped = errors.New("acl: Nomad's ACL system is already bootstrapped")

// API is the part of Nomad's HTTP API this package uses, so tests can fake
// Nomad. [NewAPI] implements it with a real *api.Client. token is the secret
// ID each call is made with. Implementations must be safe for sequential use;
// this package never calls them concurrently.
type API interface {
	// Leader returns the RPC address of the current Raft leader, or "" when
	// there is none yet. It needs no token.
	Leader(ctx context.Context) (string, error)

	// BootstrapACL creates the initial management token with the given secret
	// ID. When the cluster is already bootstrapped the error wraps
	// ErrAlreadyBootstrapped and carries Nomad's message.
	BootstrapACL(ctx context.Context, secret string) (*api.ACLToken, error)

	// TokenSelf returns the token whose secret ID is secret, or nil and no
	// error when Nomad does not accept the secret (HTTP 403).
	TokenSelf(ctx context.Context, secret string) (*api.ACLToken, error)

	// PolicyInfo returns the named ACL policy, or nil and no error when it
	// does not exist.
	PolicyInfo(ctx context.Context, token, name string) (*api.ACLPolicy, error)

	// UpsertPolicy creates or replaces the ACL policy of the same name.
	UpsertPolicy(ctx context.Context, token string, p *api.ACLPolicy) error

	// ListTokens returns every ACL token, without secrets.
	ListTokens(ctx context.Context, token string) ([]*api.ACLTokenListStub, error)

	// TokenInfo returns the token with the given accessor ID, secret included.
	TokenInfo(ctx context.Context, token, accessorID string) (*api.ACLToken, error)

	// CreateToken creates t; Nomad chooses its accessor and secret IDs.
	CreateToken(ctx context.Context, token string, t *api.ACLToken) (*api.ACLToken, error)

	// UpdateToken replaces the token with t.AccessorID by t.
	UpdateToken(ctx context.Context, token string, t *api.ACLToken) (*api.ACLToken, error)

	// NodePoolInfo returns the named node pool, or nil and no error when it
	// does not exist.
	NodePoolInfo(ctx context.Context, token, name string) (*api.NodePool, error)

	// RegisterNodePool creates or replaces the node pool of the same name.
	RegisterNodePool(ctx context.Context, token string, p *api.NodePool) error
}

// NewAPI returns the [API] backed by c. The tokens passed to its methods
// override any secret ID c was configured with.
func NewAPI(c *api.Client) API { return nomadAPI{c: c} }

type nomadAPI struct{ c *api.Client }

func query(ctx context.Context, token string) *api.QueryOptions {
	return (&api.QueryOptions{AuthToken: token}).WithContext(ctx)
}

func write(ctx context.Context, token string) *api.WriteOptions {
	return (&api.WriteOptions{AuthToken: token}).WithContext(ctx)
}

func (n nomadAPI) Leader(ctx context.Context) (string, error) {
	var leader string
	if _, err := n.c.Raw().Query("/v1/status/leader", &leader, query(ctx, "")); err != nil {
		return "", err
	}
	return leader, nil
}

func (n nomadAPI) BootstrapACL(ctx context.Context, secret string) (*api.ACLToken, error) {
	tok, _, err := n.c.ACLTokens().BootstrapOpts(secret, write(ctx, ""))
	if err != nil {
		// Nomad (nomad/acl_endpoint.go, 1.6 through 1.11) answers 400 with
		// this text and the index to write into acl-bootstrap-reset for a
		// reset.
		if code, body := response(err); code == http.StatusBadRequest && strings.Contains(body, "ACL bootstrap already done") {
			return nil, fmt.Errorf("%w: %s", ErrAlreadyBootstrapped, strings.TrimSpace(body))
		}
		return nil, err
	}
	return tok, nil
}

func (n nomadAPI) TokenSelf(ctx context.Context, secret string) (*api.ACLToken, error) {
	tok, _, err := n.c.ACLTokens().Self(query(ctx, secret))
	// A secret that Nomad does not know: 403 "Permission denied" from
	// newer Nomads, 404 "ACL token not found" from 1.6.
	code, body := response(err)
	if code == http.StatusForbidden || (code == http.StatusNotFound && strings.Contains(body, "ACL token not found")) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return tok, nil
}

func (n nomadAPI) PolicyInfo(ctx context.Context, token, name string) (*api.ACLPolicy, error) {
	p, _, err := n.c.ACLPolicies().Info(name, query(ctx, token))
	if code, _ := response(err); code == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (n nomadAPI) UpsertPolicy(ctx context.Context, token string, p *api.ACLPolicy) error {
	_, err := n.c.ACLPolicies().Upsert(p, write(ctx, token))
	return err
}

func (n nomadAPI) ListTokens(ctx context.Context, token string) ([]*api.ACLTokenListStub, error) {
	list, _, err := n.c.ACLTokens().List(query(ctx, token))
	return list, err
}

func (n nomadAPI) TokenInfo(ctx context.Context, token, accessorID string) (*api.ACLToken, error) {
	tok, _, err := n.c.ACLTokens().Info(accessorID, query(ctx, token))
	return tok, err
}

func (n nomadAPI) CreateToken(ctx context.Context, token string, t *api.ACLToken) (*api.ACLToken, error) {
	tok, _, err := n.c.ACLTokens().Create(t, write(ctx, token))
	return tok, err
}

func (n nomadAPI) UpdateToken(ctx context.Context, token string, t *api.ACLToken) (*api.ACLToken, error) {
	tok, _, err := n.c.ACLTokens().Update(t, write(ctx, token))
	return tok, err
}

func (n nomadAPI) NodePoolInfo(ctx context.Context, token, name string) (*api.NodePool, error) {
	p, _, err := n.c.NodePools().Info(name, query(ctx, token))
	if code, _ := response(err); code == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (n nomadAPI) RegisterNodePool(ctx context.Context, token string, p *api.NodePool) error {
	_, err := n.c.NodePools().Register(p, write(ctx, token))
	return err
}

// response returns the HTTP status code and body of a non-2xx answer from
// Nomad, or 0 and "" when err is not one.
func response(err error) (int, string) {
	var ue api.UnexpectedResponseError
	if err == nil || !errors.As(err, &ue) || !ue.HasStatusCode() {
		return 0, ""
	}
	return ue.StatusCode(), ue.Body()
}
