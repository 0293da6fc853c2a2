package status

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// socketDir returns a directory short enough for a unix socket's path.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nbst")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestListenQuery(t *testing.T) {
	path := filepath.Join(socketDir(t), "run", "agent.sock")
	want := Status{Node: NodeStatus{Name: "node1"}, Phase: PhaseRunning, Members: []MemberStatus{{Name: "node1", Status: "alive"}},
		Plan: &PlanStatus{Epoch: 2, Servers: []string{"node1"}}, Agent: AgentStatus{Running: true, PID: 42}}
	srv, _, err := Listen(path, func() Status { return want })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600", fi.Mode(), err)
	}
	got, err := Query(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Query (-want +got):\n%s", diff)
	}

	// A second agent on the same socket is refused while the first answers.
	if srv2, _, err := Listen(path, func() Status { return Status{} }); err == nil {
		srv2.Close()
		t.Error("a second Listen on an answering socket succeeded")
	} else if !strings.Contains(err.Error(), "another agent is already running") {
		t.Errorf("second Listen: %v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "agent.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the stale socket is gone: %v", err)
	}
	srv, _, err := Listen(path, func() Status { return Status{Phase: PhaseStarting} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if s, err := Query(t.Context(), path); err != nil || s.Phase != PhaseStarting {
		t.Errorf("Query = %v, %v; want starting", s.Phase, err)
	}
}

func TestQueryAgentDown(t *testing.T) {
	path := filepath.Join(socketDir(t), "agent.sock")
	_, err := Query(t.Context(), path)
	if !errors.Is(err, ErrAgentDown) {
		t.Errorf("Query with no socket: %v, want ErrAgentDown", err)
	}
}

// A command on the control socket: its answer, its refusal (a *CallError
// with the reason), a request it cannot decode, and no agent at all.
func TestCommandCall(t *testing.T) {
	type req struct{ N int }
	type ans struct{ Double int }
	path := filepath.Join(socketDir(t), "agent.sock")
	double := Command(func(_ context.Context, r req) (ans, error) {
		if r.N < 0 {
			return ans{}, errors.New("negative numbers are refused")
		}
		return ans{2 * r.N}, nil
	})
	srv, _, err := Listen(path, func() Status { return Status{} }, Route{Pattern: "POST /v1/double", Handler: double})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var got ans
	if err := Call(t.Context(), path, "/v1/double", req{21}, &got); err != nil || got.Double != 42 {
		t.Fatalf("Call = %+v, %v", got, err)
	}
	var ce *CallError
	if err := Call(t.Context(), path, "/v1/double", req{-1}, &got); !errors.As(err, &ce) || ce.Status != 409 || ce.Message != "negative numbers are refused" {
		t.Fatalf("a refused command: %v", err)
	}
	if err := Call(t.Context(), path, "/v1/double", "not an object", &got); !errors.As(err, &ce) || ce.Status != 400 {
		t.Fatalf("a malformed request: %v", err)
	}
	if err := Call(t.Context(), filepath.Join(socketDir(t), "none.sock"), "/v1/double", req{1}, &got); !errors.Is(err, ErrAgentDown) {
		t.Fatalf("no agent: %v", err)
	}
}
