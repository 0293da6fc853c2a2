// Package metrics serves the agent's Prometheus metrics: its phase, the
// members by state, the plan epoch, the seconds left on each certificate and
// the certificate requests the CA signed and refused. Every value is read
// from the agent at scrape time, so the endpoint holds no state of its own.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the endpoint serves the metrics.
const Path = "/metrics"

// Source is what the metrics are read from; *agent.Agent implements it.
// Both methods are called from the HTTP server's goroutines.
type Source interface {
	// Status returns the node's status, as `status -json` shows it.
	Status() agent.Status
	// CAStats returns the certificate requests signed and refused.
	CAStats() (signed, refused uint64)
}

// phases are every phase a running agent can report.
var phases = []agent.Phase{
	agent.PhaseFingerprinting, agent.PhaseJoining, agent.PhaseElecting, agent.PhaseCommitted,
	agent.PhaseCertified, agent.PhaseConfigured, agent.PhaseStarting, agent.PhaseRunning, agent.PhaseDegraded,
}

// memberStates are the gossip states; each is always exported, 0 or more.
var memberStates = []string{"alive", "suspect", "dead", "left"}

var (
	descInfo = prometheus.NewDesc("nomad_bootstrapd_info",
		"The agent's version and node; always 1.", []string{"version", "node", "node_id"}, nil)
	descPhase = prometheus.NewDesc("nomad_bootstrapd_phase",
		"1 for the phase the node is in, 0 for the others.", []string{"phase"}, nil)
	descHealthy = prometheus.NewDesc("nomad_bootstrapd_healthy",
		"1 when the node runs Nomad in its role with nothing to warn about.", nil, nil)
	descWarnings = prometheus.NewDesc("nomad_bootstrapd_warnings",
		"Number of warnings status shows.", nil, nil)
	descMembers = prometheus.NewDesc("nomad_bootstrapd_members",
		"Gossip members by state, as this node sees them.", []string{"state"}, nil)
	descEpoch = prometheus.NewDesc("nomad_bootstrapd_plan_epoch",
		"Epoch of the committed plan; 0 before the commit.", nil, nil)
	descServer = prometheus.NewDesc("nomad_bootstrapd_plan_server",
		"1 when this node is a Nomad server of the committed plan.", nil, nil)
	descCertExpiry = prometheus.NewDesc("nomad_bootstrapd_certificate_expiry_seconds",
		"Seconds until each of this node's certificates expires (negative once expired).", []string{"role"}, nil)
	descSigned = prometheus.NewDesc("nomad_bootstrapd_csr_signed_total",
		"Certificate requests this node's CA signed since the agent started.", nil, nil)
	descRefused = prometheus.NewDesc("nomad_bootstrapd_csr_refused_total",
		"Certificate requests this node's CA refused since the agent started.", nil, nil)
	descNomadHealthy = prometheus.NewDesc("nomad_bootstrapd_nomad_healthy",
		"1 when the local Nomad agent is healthy and sees a leader and every peer.", nil, nil)
	descNomadPeers = prometheus.NewDesc("nomad_bootstrapd_nomad_raft_peers",
		"Raft peers the local Nomad agent reports.", nil, nil)
)

// collector turns one Status into metrics per scrape.
type collector struct {
	src Source
	now func() time.Time
}

// Describe sends every metric's description.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descPhase, descHealthy, descWarnings, descMembers, descEpoch,
		descServer, descCertExpiry, descSigned, descRefused, descNomadHealthy, descNomadPeers} {
		ch <- d
	}
}

// Collect reads the source once and sends the metrics.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descInfo, 1, s.Agent.Version, s.Node.Name, s.Node.ID)
	for _, p := range phases {
		gauge(descPhase, boolValue(s.Phase == p), p.String())
	}
	gauge(descHealthy, boolValue(s.Healthy()))
	gauge(descWarnings, float64(len(s.Warnings)))
	byState := map[string]int{}
	for _, m := range s.Members {
		byState[m.Status]++
	}
	for _, st := range memberStates {
		gauge(descMembers, float64(byState[st]), st)
	}
	var epoch float64
	if s.Plan != nil {
		epoch = float64(s.Plan.Epoch)
	}
	gauge(descEpoch, epoch)
	gauge(descServer, boolValue(s.Plan != nil && s.Node.Role == "server"))
	if s.Certs != nil {
		now := c.now()
		for _, f := range s.Certs.Files {
			gauge(descCertExpiry, f.NotAfter.Sub(now).Seconds(), f.Role)
		}
	}
	signed, refused := c.src.CAStats()
	ch <- prometheus.MustNewConstMetric(descSigned, prometheus.CounterValue, float64(signed))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(refused))
	if s.Nomad != nil {
		gauge(descNomadHealthy, boolValue(s.Nomad.Healthy))
		gauge(descNomadPeers, float64(len(s.Nomad.Peers)))
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Handler returns the HTTP handler serving src's metrics, with the Go
// runtime's and the process's, at any path. now is the clock (time.Now
// when nil).
func Handler(src Source, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{src: src, now: now},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Server is a running metrics endpoint.
type Server struct {
	srv *http.Server
	l   net.Listener
}

// Listen opens the endpoint at addr (host:port) and serves src's metrics
// at Path until Close. It fails at once when addr cannot be listened on,
// saying how to choose another address or turn the endpoint off.
func Listen(addr string, src Source) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: cannot listen on %s (%v); set metrics_addr (-metrics-addr) to a free host:port, or to \"\" to turn the endpoint off", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, Handler(src, nil))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Path, http.StatusFound)
	})
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, l: l}
	go s.srv.Serve(l)
	return s, nil
}

// Addr returns the address the endpoint listens on.
func (s *Server) Addr() string { return s.l.Addr().String() }

// Close stops the endpoint within a second, then drops what is left.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return s.srv.Close()
}
