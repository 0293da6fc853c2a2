package nomadrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/nomad/api"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

func TestNomadServers(t *testing.T) {
	member := func(name, addr, port, build, state string) *api.AgentMember {
		return &api.AgentMember{Name: name, Addr: addr, Status: state, Tags: map[string]string{"port": port, "build": build}}
	}
	tests := []struct {
		name    string
		members []*api.AgentMember
		leader  string
		want    []status.NomadServerStatus
	}{
		{name: "none"},
		{name: "sorted by name, the leader marked by its RPC address",
			members: []*api.AgentMember{
				member("s3.global", "10.0.0.13", "4647", "1.6.3", "alive"),
				nil,
				member("s1.global", "10.0.0.11", "4647", "1.6.3", "alive"),
				member("s2.global", "10.0.0.12", "4647", "1.6.3", "failed"),
			},
			leader: "10.0.0.13:4647",
			want: []status.NomadServerStatus{
				{Name: "s1.global", Address: "10.0.0.11", Status: "alive", Version: "1.6.3"},
				{Name: "s2.global", Address: "10.0.0.12", Status: "failed", Version: "1.6.3"},
				{Name: "s3.global", Address: "10.0.0.13", Status: "alive", Version: "1.6.3", Leader: true},
			}},
		{name: "no leader marks none",
			members: []*api.AgentMember{member("s1.global", "10.0.0.11", "", "1.10.0", "alive")},
			want:    []status.NomadServerStatus{{Name: "s1.global", Address: "10.0.0.11", Status: "alive", Version: "1.10.0"}}},
		{name: "the leader's port must match",
			members: []*api.AgentMember{member("s1.global", "10.0.0.11", "4647", "1.6.3", "alive")},
			leader:  "10.0.0.11:14647",
			want:    []status.NomadServerStatus{{Name: "s1.global", Address: "10.0.0.11", Status: "alive", Version: "1.6.3"}}},
		{name: "IPv6",
			members: []*api.AgentMember{member("s1.global", "fd00::11", "4647", "1.6.3", "alive")},
			leader:  "[fd00::11]:4647",
			want:    []status.NomadServerStatus{{Name: "s1.global", Address: "fd00::11", Status: "alive", Version: "1.6.3", Leader: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, nomadServers(tt.members, tt.leader)); diff != "" {
				t.Errorf("nomadServers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPoolClients(t *testing.T) {
	node := func(class, pool, state string) *api.NodeListStub {
		return &api.NodeListStub{NodeClass: class, NodePool: pool, Status: state}
	}
	tests := []struct {
		name  string
		nodes []*api.NodeListStub
		want  []status.PoolClientsStatus
	}{
		{name: "none", want: []status.PoolClientsStatus{}},
		{name: "the node class is the pool, sorted by pool",
			nodes: []*api.NodeListStub{
				node("warm", "default", api.NodeStatusReady),
				node("batch", "batch", api.NodeStatusReady),
				node("warm", "default", api.NodeStatusDown),
				nil,
				node("batch", "batch", api.NodeStatusInit),
				node("warm", "default", api.NodeStatusReady),
			},
			want: []status.PoolClientsStatus{{Pool: "batch", Total: 2, Ready: 1}, {Pool: "warm", Total: 3, Ready: 2}}},
		{name: "without a class, the Nomad node pool",
			nodes: []*api.NodeListStub{node("", "special", api.NodeStatusReady)},
			want:  []status.PoolClientsStatus{{Pool: "special", Total: 1, Ready: 1}}},
		{name: "without either, default",
			nodes: []*api.NodeListStub{node("", "", api.NodeStatusReady), node("default", "", api.NodeStatusDisconnected)},
			want:  []status.PoolClientsStatus{{Pool: "default", Total: 2, Ready: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, poolClients(tt.nodes)); diff != "" {
				t.Errorf("poolClients (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAnswered asks a stand-in for Nomad's HTTP API: any HTTP response,
// an error status included, is an answer; no connection is none.
func TestAnswered(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status/leader":
			io.WriteString(w, `"10.0.0.11:4647"`)
		default:
			http.Error(w, "No cluster leader", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name, addr, path string
		want             bool
	}{
		{name: "success", addr: srv.URL, path: "/v1/status/leader", want: true},
		{name: "an error status", addr: srv.URL, path: "/v1/status/peers", want: true},
		{name: "no connection", addr: closed.URL, path: "/v1/status/leader", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := api.DefaultConfig()
			cfg.Address = tt.addr
			c, err := api.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			q, cancel := queryCtx(context.Background())
			defer cancel()
			var out any
			_, err = c.Raw().Query(tt.path, &out, q)
			if got := answered(err); got != tt.want {
				t.Errorf("answered(%v) = %v, want %v", err, got, tt.want)
			}
		})
	}
	if answered(errors.New("dial tcp: connection refused")) {
		t.Error("answered a plain error")
	}
}

// TestAutopilotHealth reads autopilot's health from a stand-in that, as
// Nomad does, answers 429 while the servers are unhealthy.
func TestAutopilotHealth(t *testing.T) {
	for _, tt := range []struct {
		name      string
		code      int
		healthy   bool
		tolerance int
		wantErr   bool
	}{
		{"healthy", http.StatusOK, true, 1, false},
		{"unhealthy, 429", http.StatusTooManyRequests, false, 0, false},
		{"no leader", http.StatusInternalServerError, false, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.code == http.StatusInternalServerError {
					http.Error(w, "No cluster leader", tt.code)
					return
				}
				w.WriteHeader(tt.code)
				fmt.Fprintf(w, `{"Healthy":%v,"FailureTolerance":%d,"Servers":[{"Name":"a","Address":"10.0.0.1:4647","Healthy":%v,"Voter":true,"LastContact":"5ms"}]}`,
					tt.healthy, tt.tolerance, tt.healthy)
			}))
			defer srv.Close()
			cfg := api.DefaultConfig()
			cfg.Address = srv.URL
			c, err := api.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			h, err := AutopilotHealth(c, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("AutopilotHealth: %v", err)
			}
			if err == nil && (h.Healthy != tt.healthy || h.FailureTolerance != tt.tolerance || len(h.Servers) != 1 || h.Servers[0].Healthy != tt.healthy) {
				t.Errorf("AutopilotHealth = %+v", h)
			}
		})
	}
}
