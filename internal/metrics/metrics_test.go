package metrics

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type fakeSource struct {
	s               status.Status
	signed, refused uint64
}

func (f fakeSource) Status() status.Status             { return f.s }
func (f fakeSource) CAStats() (signed, refused uint64) { return f.signed, f.refused }

var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func scrape(t *testing.T, src Source) string {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(src, func() time.Time { return now }).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape answered %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestMetrics(t *testing.T) {
	running := status.Status{
		Node:  status.NodeStatus{Name: "node1", ID: "id-1", Role: "server"},
		Phase: status.PhaseRunning,
		Plan:  &status.PlanStatus{Epoch: 2, Servers: []string{"node1", "node2", "node3"}},
		Members: []status.MemberStatus{
			{Name: "node1", Status: "alive"}, {Name: "node2", Status: "alive"}, {Name: "node3", Status: "dead"},
			{Name: "node9", Status: "evicted"},
		},
		Cluster: &status.ClusterStatus{Version: 3, Evicted: []status.EvictedStatus{{Name: "node9"}, {Name: "node8"}},
			ClientToken:    status.ClientTokenStatus{Generation: 1},
			NomadGossipKey: status.KeyStatus{Generation: 2, RotatedAt: now.Add(-time.Hour), NextRotation: now.Add(2 * time.Hour), Rotating: "install generation 3"},
			AgentGossipKey: status.KeyStatus{Generation: 1, RotatedAt: now.Add(-2 * time.Hour), NextRotation: now.Add(time.Hour)},
			NomadUpgrade:   &status.UpgradeStatus{Version: "1.6.3", Stage: "failed"}},
		Certs: &status.CertStatus{Files: []status.CertFileStatus{
			{Role: "server", NotAfter: now.Add(time.Hour)}, {Role: "ca", NotAfter: now.Add(-time.Minute)},
		}},
		Nomad:     &status.NomadStatus{Healthy: true, Peers: []string{"a", "b", "c"}},
		Warnings:  []string{"Nomad server node3 ..."},
		Agent:     status.AgentStatus{Running: true, Version: "0.1.0-dev"},
		Snapshots: &status.SnapshotStatus{Kept: 5, Last: now.Add(-20 * time.Minute)},
	}
	electing := status.Status{Node: status.NodeStatus{Name: "node4", ID: "id-4", Role: "auto"}, Phase: status.PhaseElecting,
		Members: []status.MemberStatus{{Name: "node4", Status: "alive"}}, Agent: status.AgentStatus{Running: true}}
	tests := []struct {
		name    string
		src     fakeSource
		want    []string
		notWant []string
	}{
		{"a running server and CA holder", fakeSource{s: running, signed: 7, refused: 2}, []string{
			`nomad_bootstrapd_info{node="node1",node_id="id-1",version="0.1.0-dev"} 1`,
			`nomad_bootstrapd_phase{phase="running"} 1`,
			`nomad_bootstrapd_phase{phase="electing"} 0`,
			`nomad_bootstrapd_healthy 0`, // a warning
			`nomad_bootstrapd_warnings 1`,
			`nomad_bootstrapd_members{state="alive"} 2`,
			`nomad_bootstrapd_members{state="dead"} 1`,
			`nomad_bootstrapd_members{state="suspect"} 0`,
			`nomad_bootstrapd_members{state="evicted"} 1`,
			`nomad_bootstrapd_cluster_state_version 3`,
			`nomad_bootstrapd_evicted_nodes 2`,
			`nomad_bootstrapd_client_token_generation 1`,
			`nomad_bootstrapd_secret_generation{secret="client_token"} 1`,
			`nomad_bootstrapd_secret_generation{secret="nomad_gossip_key"} 2`,
			`nomad_bootstrapd_secret_generation{secret="cluster_ca"} 0`,
			`nomad_bootstrapd_secret_age_seconds{secret="nomad_gossip_key"} 3600`,
			`nomad_bootstrapd_secret_next_rotation_seconds{secret="nomad_gossip_key"} 7200`,
			`nomad_bootstrapd_secret_rotating{secret="nomad_gossip_key"} 1`,
			`nomad_bootstrapd_secret_generation{secret="agent_gossip_key"} 1`,
			`nomad_bootstrapd_secret_age_seconds{secret="agent_gossip_key"} 7200`,
			`nomad_bootstrapd_secret_next_rotation_seconds{secret="agent_gossip_key"} 3600`,
			`nomad_bootstrapd_secret_rotating{secret="agent_gossip_key"} 0`,
			`nomad_bootstrapd_plan_epoch 2`,
			`nomad_bootstrapd_plan_server 1`,
			`nomad_bootstrapd_certificate_expiry_seconds{role="server"} 3600`,
			`nomad_bootstrapd_certificate_expiry_seconds{role="ca"} -60`,
			`nomad_bootstrapd_csr_signed_total 7`,
			`nomad_bootstrapd_csr_refused_total 2`,
			`nomad_bootstrapd_nomad_healthy 1`,
			`nomad_bootstrapd_nomad_raft_peers 3`,
			`nomad_bootstrapd_snapshots_kept 5`,
			`nomad_bootstrapd_nomad_upgrade{stage="failed"} 1`,
			`nomad_bootstrapd_nomad_upgrade{stage="done"} 0`,
			`nomad_bootstrapd_snapshot_age_seconds 1200`,
			`# TYPE nomad_bootstrapd_csr_signed_total counter`,
			`go_goroutines`,
		}, nil},
		{"a node still electing", fakeSource{s: electing}, []string{
			`nomad_bootstrapd_phase{phase="electing"} 1`,
			`nomad_bootstrapd_plan_epoch 0`,
			`nomad_bootstrapd_plan_server 0`,
			`nomad_bootstrapd_cluster_state_version 0`,
			`nomad_bootstrapd_evicted_nodes 0`,
			`nomad_bootstrapd_csr_signed_total 0`,
		}, []string{"nomad_bootstrapd_certificate_expiry_seconds{", "nomad_bootstrapd_nomad_healthy ", "nomad_bootstrapd_secret_", "nomad_bootstrapd_snapshot", "nomad_bootstrapd_nomad_upgrade"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := scrape(t, tt.src)
			for _, w := range tt.want {
				if !strings.Contains(out, w+"\n") && !strings.Contains(out, w) {
					t.Errorf("missing %q in:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("unexpected %q in:\n%s", w, out)
				}
			}
		})
	}
}

// TestExpositionParses checks the whole scrape with Prometheus's own
// parser: families, types, label escaping and the runtime's metrics.
func TestExpositionParses(t *testing.T) {
	src := fakeSource{s: status.Status{
		Node:  status.NodeStatus{Name: "node1", ID: "id-1"},
		Phase: status.PhaseRunning,
		Certs: &status.CertStatus{Files: []status.CertFileStatus{{Role: `odd "role" \ with` + "\nnewline", NotAfter: now}}},
		Agent: status.AgentStatus{Running: true, Version: "0.1.0-dev"},
	}}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(scrape(t, src)))
	if err != nil {
		t.Fatalf("Prometheus cannot parse the scrape: %v", err)
	}
	tests := []struct {
		name string
		typ  dto.MetricType
	}{
		{"nomad_bootstrapd_phase", dto.MetricType_GAUGE},
		{"nomad_bootstrapd_csr_signed_total", dto.MetricType_COUNTER},
		{"nomad_bootstrapd_certificate_expiry_seconds", dto.MetricType_GAUGE},
		{"go_goroutines", dto.MetricType_GAUGE},
		{"process_resident_memory_bytes", dto.MetricType_GAUGE},
	}
	for _, tt := range tests {
		f, ok := fams[tt.name]
		if !ok {
			t.Errorf("no family %s", tt.name)
			continue
		}
		if f.GetType() != tt.typ {
			t.Errorf("%s has type %s, want %s", tt.name, f.GetType(), tt.typ)
		}
	}
	if got := fams["nomad_bootstrapd_phase"].GetMetric(); len(got) != len(phases) {
		t.Errorf("%d phase samples, want %d", len(got), len(phases))
	}
	role := fams["nomad_bootstrapd_certificate_expiry_seconds"].GetMetric()[0].GetLabel()[0].GetValue()
	if want := src.s.Certs.Files[0].Role; role != want {
		t.Errorf("label value %q after escaping and parsing, want %q", role, want)
	}
}

func TestListen(t *testing.T) {
	s, err := Listen("127.0.0.1:0", fakeSource{s: status.Status{Phase: status.PhaseJoining}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get("http://" + s.Addr() + Path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `nomad_bootstrapd_phase{phase="joining"} 1`) {
		t.Errorf("GET %s:\n%s", Path, body)
	}

	// A taken address fails at once and says what to do.
	_, err = Listen(s.Addr(), fakeSource{})
	if err == nil || !strings.Contains(err.Error(), "metrics_addr") {
		t.Errorf("listening twice on %s: %v, want an error naming metrics_addr", s.Addr(), err)
	}
	if _, _, err := net.SplitHostPort(s.Addr()); err != nil {
		t.Error(err)
	}
}
