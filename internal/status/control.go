package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Route is one more request the control socket answers: Pattern as
// http.ServeMux takes it ("POST /v1/evict").
type Route struct {
	Pattern string
	Handler http.Handler
}

// Listen opens the agent's control socket at path and serves GET /v1/status
// there with what status returns, and routes, refusing when another agent
// already answers there and replacing a stale socket file. The socket is
// the root user's (0600): whoever reaches it may command the agent. The
// caller shuts the server down; status and the handlers are called on the
// server's goroutines.
func Listen(path string, status func() Status, routes ...Route) (*http.Server, net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("agent: control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, nil, fmt.Errorf("agent: another agent is already running with this root (its control socket %s answers)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("agent: removing stale control socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, nil, fmt.Errorf("agent: control socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(status())
	})
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	return srv, l, nil
}

// commandTimeout bounds one command the control socket runs.
const commandTimeout = time.Minute

// Command returns the handler of a command on the control socket: it
// decodes the JSON request (at most 4 KiB), runs do with it, and answers
// with the JSON of its answer, or with its error as text and 409, which
// Call returns as a *CallError. do gets a minute.
func Command[Req, Ans any](do func(context.Context, Req) (Ans, error)) http.Handler {
	return CommandWithin(commandTimeout, do)
}

// CommandWithin is Command for a command that may take up to d.
func CommandWithin[Req, Ans any](d time.Duration, do func(context.Context, Req) (Ans, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			http.Error(w, "malformed request: "+err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		ans, err := do(ctx, req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ans)
	})
}

// maxAnswer bounds an answer read from the control socket.
const maxAnswer = 1 << 20

// CallError is the agent's refusal of a command: its message, for the
// operator.
type CallError struct {
	Status  int
	Message string
}

func (e *CallError) Error() string { return e.Message }

// Call sends the JSON of in to the agent behind the control socket at path
// as a POST to route and decodes its JSON answer into out. An agent that
// refuses answers with a status other than 200 and its reason as the body,
// returned as a *CallError. When nothing answers, the error wraps
// ErrAgentDown.
func Call(ctx context.Context, path, route string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	client := socketClient(path)
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent"+route, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return socketError(path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("agent: reading its answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return &CallError{Status: resp.StatusCode, Message: strings.TrimSpace(string(answer))}
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("agent: decoding its answer: %w", err)
	}
	return nil
}

// socketClient returns an HTTP client that dials the control socket.
func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// socketError explains a failure to reach the control socket.
func socketError(path string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("agent: control socket %s: permission denied; run as root", path)
	}
	return fmt.Errorf("%w: nothing answers on %s (%v)", ErrAgentDown, path, err)
}

// ErrAgentDown reports that no agent answers on the control socket.
var ErrAgentDown = errors.New("agent: not running")

// Query asks the agent behind the control socket at path for its status.
// When nothing answers, the error wraps ErrAgentDown.
func Query(ctx context.Context, path string) (Status, error) {
	client := socketClient(path)
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/status", nil)
	if err != nil {
		return Status{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Status{}, socketError(path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Status{}, fmt.Errorf("agent: control socket answered %s", resp.Status)
	}
	var s Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return Status{}, fmt.Errorf("agent: decoding status: %w", err)
	}
	return s, nil
}
