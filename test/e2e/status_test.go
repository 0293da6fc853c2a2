package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// TestStatusMetricsAndAgentDown checks the day-2 view from the outside:
// the table, the Prometheus endpoint, a stopped agent's persisted state,
// and the warning the others show for a plan server that went away.
func TestStatusMetricsAndAgentDown(t *testing.T) {
	const net = 208
	metricsAddr := func(i int) string { return fmt.Sprintf("127.0.%d.%d:4652", net, i+1) }
	_, procs := clusterEach(t, net, 3, func(i int) []string {
		return []string{"-min-members", "3", "-metrics-addr", metricsAddr(i)}
	})
	key := waitSamePlan(t, procs, 60*time.Second)
	waitFor(t, 60*time.Second, "every agent to hold its certificates and Nomad's configuration", func() bool {
		for _, p := range procs {
			if s, code := statusJSON(t, p.root); code == 2 || s.Phase < status.PhaseConfigured || s.Phase == status.PhaseDegraded {
				return false
			}
		}
		return true
	})

	// The table names every member; exit 1 while Nomad is not run.
	out, _, code := run(t, "status", "-root", procs[1].root)
	if code != 1 {
		t.Errorf("status exited %d, want 1 (supervise=none runs no Nomad)", code)
	}
	for _, want := range []string{"Members (3)", "node1", "node2", "node3", "Plan     epoch 1", "metrics http://" + metricsAddr(1)} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colours when stdout is not a terminal:\n%s", out)
	}

	// Prometheus metrics on the node's own address.
	resp, err := http.Get("http://" + metricsAddr(0) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`nomad_bootstrapd_plan_epoch 1`, `nomad_bootstrapd_members{state="alive"} 3`, `nomad_bootstrapd_csr_signed_total`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}

	// A stopped agent: status shows what it left, says how to start it, exits 2.
	victim := procs[2]
	victim.stop(syscall.SIGTERM)
	out, errOut, code := run(t, "status", "-root", victim.root)
	if code != 2 {
		t.Errorf("status of a stopped agent exited %d, want 2", code)
	}
	if !strings.Contains(errOut, "not running") || !strings.Contains(errOut, "start it with: nomad-bootstrapd agent -root "+victim.root) {
		t.Errorf("stderr does not say the agent is down and how to start it:\n%s", errOut)
	}
	if !strings.Contains(out, "stopped") || !strings.Contains(out, "node3") {
		t.Errorf("stdout lacks the persisted state:\n%s", out)
	}
	js, _, code := run(t, "status", "-json", "-root", victim.root)
	var s status.Status
	if err := json.Unmarshal([]byte(js), &s); err != nil || code != 2 {
		t.Fatalf("status -json of a stopped agent: exit %d, %v:\n%s", code, err, js)
	}
	if s.Agent.Running || s.Phase != status.PhaseStopped || planKey(s.Plan) != key || s.Node.Name != "node3" || s.Certs == nil {
		t.Errorf("persisted status: running %v, phase %v, plan %s (want %s), node %q, certs %v",
			s.Agent.Running, s.Phase, planKey(s.Plan), key, s.Node.Name, s.Certs)
	}

	// The others warn about a plan server that is gone.
	waitFor(t, 30*time.Second, "node1 to warn about node3", func() bool {
		s, _ := statusJSON(t, procs[0].root)
		for _, w := range s.Warnings {
			if strings.Contains(w, "node3") {
				return true
			}
		}
		return false
	})
}
