package nomadrun

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// apiCert returns the TLS files and the role of the certificate this node
// talks to Nomad's API with: the CLI certificate on servers, the client's
// on clients.
func (r *Runner) apiCert(p plan.Plan) (certs.TLSFiles, certs.Role) {
	role := certs.RoleClient
	if p.IsServer(r.node.ID) {
		role = certs.RoleCLI
	}
	return certs.TLSFiles{Dir: r.paths.NomadTLSDir()}, role
}

// Client returns a new client of the Nomad HTTP API at addr, authenticated
// with this node's certificate (the CLI certificate on servers). The caller
// closes it.
func (r *Runner) Client(p plan.Plan, addr string) (*api.Client, error) {
	return api.NewClient(r.clientConfig(p, addr))
}

// ClientWithin is Client with every request bounded by timeout, for the
// calls of Nomad's API that take no context (the agent's keyring).
func (r *Runner) ClientWithin(p plan.Plan, addr string, timeout time.Duration) (*api.Client, error) {
	cfg := r.clientConfig(p, addr)
	cfg.HttpClient = &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
	}}
	if err := api.ConfigureTLS(cfg.HttpClient, cfg.TLSConfig); err != nil {
		return nil, err
	}
	return api.NewClient(cfg)
}

// clientConfig is the configuration of Client.
func (r *Runner) clientConfig(p plan.Plan, addr string) *api.Config {
	files, role := r.apiCert(p)
	cfg := api.DefaultConfig()
	cfg.Address = "https://" + net.JoinHostPort(addr, HTTPPort)
	cfg.Region = p.Region
	cfg.SecretID = ""
	cfg.Namespace = ""
	cfg.TLSConfig = &api.TLSConfig{CACert: files.CAPath(), ClientCert: files.CertPath(role), ClientKey: files.KeyPath(role)}
	return cfg
}

// localAPI returns the client of the local Nomad agent's API that Health
// polls with, kept between polls so that they reuse one TLS connection
// instead of a handshake each. It is made anew when the role or the
// certificate it authenticates with changes (renewal).
func (r *Runner) localAPI(p plan.Plan) (*api.Client, error) {
	files, role := r.apiCert(p)
	key := string(role)
	if fi, err := os.Stat(files.CertPath(role)); err == nil {
		key += "@" + fi.ModTime().String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.api != nil && r.apiKey == key {
		return r.api, nil
	}
	if r.api != nil {
		r.api.Close()
		r.api = nil
	}
	c, err := r.Client(p, r.node.Advertise)
	if err != nil {
		return nil, err
	}
	r.api, r.apiKey = c, key
	return c, nil
}

// Close drops the client of the local Nomad agent that Health keeps.
func (r *Runner) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.api != nil {
		r.api.Close()
		r.api = nil
	}
}

// queryCtx bounds one Nomad API call.
func queryCtx(ctx context.Context) (*api.QueryOptions, context.CancelFunc) {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	return (&api.QueryOptions{AllowStale: true}).WithContext(qctx), cancel
}

// ServersReady reports whether a client may start Nomad, and when not, why:
// before 1.11, once a server of p answers (the client's registration waits
// out the leader election by itself, so its fingerprinting overlaps the
// election); from 1.11, once a server has a leader with an initialised
// keyring, since a client that registers earlier is refused and backs off
// for about 25 s.
func (r *Runner) ServersReady(ctx context.Context, p plan.Plan) (bool, string) {
	last := "no server answered"
	for _, s := range p.Servers {
		ok, why, err := r.serverReady(ctx, p, s)
		if err != nil {
			return false, err.Error()
		}
		if ok {
			return true, ""
		}
		last = why
	}
	return false, last
}

// serverReady asks one server whether it has a leader with a keyring.
func (r *Runner) serverReady(ctx context.Context, p plan.Plan, s plan.Server) (ok bool, why string, err error) {
	c, err := r.Client(p, s.Address)
	if err != nil {
		return false, "", err
	}
	// Each client keeps its own connections: close them, or polls pile up
	// idle connections until Nomad refuses this address
	// (http_max_conns_per_client, 100).
	defer c.Close()
	q, cancel := queryCtx(ctx)
	defer cancel()
	var leader string
	_, err = c.Raw().Query("/v1/status/leader", &leader, q)
	if !r.Features().RegisterNeedsKeyring {
		// Any answer, "No cluster leader" included, means its RPC
		// listener is up.
		if answered(err) {
			return true, "", nil
		}
		return false, fmt.Sprintf("%s: Nomad does not answer yet", s.Name), nil
	}
	if err != nil || leader == "" {
		return false, fmt.Sprintf("%s: no leader yet", s.Name), nil
	}
	var jwks struct {
		Keys []any `json:"keys"`
	}
	q, cancel = queryCtx(ctx)
	defer cancel()
	if _, err := c.Raw().Query("/.well-known/jwks.json", &jwks, q); err == nil && len(jwks.Keys) > 0 {
		return true, "", nil
	}
	return false, fmt.Sprintf("%s: leader %s, keyring not ready", s.Name, leader), nil
}

// AutopilotHealth reads autopilot's health of the servers. Nomad answers
// 429 while they are unhealthy, with the same body, which is decoded too.
func AutopilotHealth(c *api.Client, q *api.QueryOptions) (*api.OperatorHealthReply, error) {
	h, _, err := c.Operator().AutopilotServerHealth(q)
	var ue api.UnexpectedResponseError
	if err != nil && errors.As(err, &ue) && ue.StatusCode() == http.StatusTooManyRequests && ue.HasBody() {
		var out api.OperatorHealthReply
		if json.Unmarshal([]byte(ue.Body()), &out) == nil {
			return &out, nil
		}
	}
	return h, err
}

// answered reports whether a Nomad API call got an HTTP response, an error
// status included.
func answered(err error) bool {
	var ue api.UnexpectedResponseError
	return err == nil || (errors.As(err, &ue) && ue.HasStatusCode())
}
