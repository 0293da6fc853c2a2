// Package metrics serves the agent's Prometheus metrics: its phase, the
// members by state, the plan epoch, the seconds left on each certificate and
// the certificate requests the CA signed and refused, with the Go runtime's
// and the process's. Every value is read from the agent at scrape time, so
// the endpoint holds no state of its own. It writes the text exposition
// format itself and takes the runtime and process metrics from
// VictoriaMetrics/metrics, which keeps the agent's binary and resident
// memory small (see BENCHMARKS.md).
package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// Path is where the endpoint serves the metrics.
const Path = "/metrics"

// Source is what the metrics are read from; *agent.Agent implements it.
// Both methods are called from the HTTP server's goroutines.
type Source interface {
	// Status returns the node's status, as `status -json` shows it.
	Status() status.Status
	// CAStats returns the certificate requests signed and refused.
	CAStats() (signed, refused uint64)
}

// phases are every phase a running agent can report.
var phases = []status.Phase{
	status.PhaseFingerprinting, status.PhaseJoining, status.PhaseElecting, status.PhaseCommitted,
	status.PhaseCertified, status.PhaseConfigured, status.PhaseStarting, status.PhaseRunning, status.PhaseDegraded,
}

// memberStates are the gossip states; each is always exported, 0 or more.
var memberStates = []string{"alive", "suspect", "dead", "left", "evicted"}

// family is one metric family of the exposition: its HELP and TYPE lines
// and its samples.
type family struct {
	name, help, typ string
	labels          []string // label names, in the order samples give values
}

// Families of the agent's own metrics.
var (
	famInfo = family{"nomad_bootstrapd_info",
		"The agent's version and node; always 1.", "gauge", []string{"node", "node_id", "version"}}
	famPhase = family{"nomad_bootstrapd_phase",
		"1 for the phase the node is in, 0 for the others.", "gauge", []string{"phase"}}
	famHealthy = family{"nomad_bootstrapd_healthy",
		"1 when the node runs Nomad in its role with nothing to warn about.", "gauge", nil}
	famWarnings = family{"nomad_bootstrapd_warnings",
		"Number of warnings status shows.", "gauge", nil}
	famMembers = family{"nomad_bootstrapd_members",
		"Gossip members by state, as this node sees them.", "gauge", []string{"state"}}
	famEpoch = family{"nomad_bootstrapd_plan_epoch",
		"Epoch of the committed plan; 0 before the commit.", "gauge", nil}
	famServer = family{"nomad_bootstrapd_plan_server",
		"1 when this node is a Nomad server of the committed plan.", "gauge", nil}
	famCertExpiry = family{"nomad_bootstrapd_certificate_expiry_seconds",
		"Seconds until each of this node's certificates expires (negative once expired).", "gauge", []string{"role"}}
	famSigned = family{"nomad_bootstrapd_csr_signed_total",
		"Certificate requests this node's CA signed since the agent started.", "counter", nil}
	famRefused = family{"nomad_bootstrapd_csr_refused_total",
		"Certificate requests this node's CA refused since the agent started.", "counter", nil}
	famNomadHealthy = family{"nomad_bootstrapd_nomad_healthy",
		"1 when the local Nomad agent is healthy and sees a leader and every peer.", "gauge", nil}
	famNomadPeers = family{"nomad_bootstrapd_nomad_raft_peers",
		"Raft peers the local Nomad agent reports.", "gauge", nil}
	famClusterVersion = family{"nomad_bootstrapd_cluster_state_version",
		"Version of the cluster state this node holds (evictions); 0 before the first change.", "gauge", nil}
	famEvicted = family{"nomad_bootstrapd_evicted_nodes",
		"Nodes the cluster evicted, by the cluster state this node holds.", "gauge", nil}
	famClientGen = family{"nomad_bootstrapd_client_token_generation",
		"Generation of the client tokens that admit new nodes; raised by token rotate -client.", "gauge", nil}
	famSecretGen = family{"nomad_bootstrapd_secret_generation",
		"Generation of each of the cluster's secrets: raised by each rotation, 0 before the first.", "gauge", []string{"secret"}}
	famSecretAge = family{"nomad_bootstrapd_secret_age_seconds",
		"Seconds since each secret was made or last rotated, where known.", "gauge", []string{"secret"}}
	famSecretNext = family{"nomad_bootstrapd_secret_next_rotation_seconds",
		"Seconds until a secret's next scheduled rotation (on the CA holder, which runs the schedule).", "gauge", []string{"secret"}}
	famSecretRotating = family{"nomad_bootstrapd_secret_rotating",
		"1 while a rotation of the secret is under way, as this server last read it.", "gauge", []string{"secret"}}
	famUpgrade = family{"nomad_bootstrapd_nomad_upgrade",
		"1 for the stage the last rolling upgrade of Nomad is in (servers, clients, done, failed), 0 for the others; none before the first.", "gauge", []string{"stage"}}
	famSnapshotAge = family{"nomad_bootstrapd_snapshot_age_seconds",
		"Seconds since this server's newest scheduled snapshot was taken (servers that keep one).", "gauge", nil}
	famSnapshotsKept = family{"nomad_bootstrapd_snapshots_kept",
		"Scheduled snapshots this server keeps.", "gauge", nil}
)

// secretSamples returns the samples of the secret families from s: the
// client token, the agents' and Nomad's gossip keys and the cluster CA.
func secretSamples(s status.Status, now time.Time) (gen, age, next, rotating []sample) {
	var c status.ClusterStatus
	if s.Cluster != nil {
		c = *s.Cluster
	}
	gen = append(gen, one(float64(c.ClientToken.Generation), "client_token"))
	if !c.ClientToken.RotatedAt.IsZero() {
		age = append(age, one(now.Sub(c.ClientToken.RotatedAt).Seconds(), "client_token"))
	}
	for _, key := range []struct {
		k    status.KeyStatus
		name string
	}{{c.AgentGossipKey, "agent_gossip_key"}, {c.NomadGossipKey, "nomad_gossip_key"}} {
		gen = append(gen, one(float64(key.k.Generation), key.name))
		if !key.k.RotatedAt.IsZero() {
			age = append(age, one(now.Sub(key.k.RotatedAt).Seconds(), key.name))
		}
		if !key.k.NextRotation.IsZero() {
			next = append(next, one(key.k.NextRotation.Sub(now).Seconds(), key.name))
		}
		rotating = append(rotating, one(boolValue(key.k.Rotating != ""), key.name))
	}
	if s.Certs != nil {
		for _, f := range s.Certs.Files {
			if f.Role == "ca" {
				gen = append(gen, one(float64(c.CA.Generation), "cluster_ca"))
				rotating = append(rotating, one(boolValue(c.CA.Rotating != ""), "cluster_ca"))
				if !c.CA.NextRotation.IsZero() {
					next = append(next, one(c.CA.NextRotation.Sub(now).Seconds(), "cluster_ca"))
				}
				age = append(age, one(now.Sub(status.CAMade(f, c.CA)).Seconds(), "cluster_ca"))
			}
		}
	}
	return gen, age, next, rotating
}

// sample is one value of a family, with its label values.
type sample struct {
	value  float64
	labels []string
}

// writer writes families in the Prometheus text exposition format.
type writer struct{ w *bufio.Writer }

// write writes f's HELP and TYPE lines and its samples; a family without
// samples is left out.
func (w writer) write(f family, samples ...sample) {
	if len(samples) == 0 {
		return
	}
	fmt.Fprintf(w.w, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
	for _, s := range samples {
		w.w.WriteString(f.name)
		if len(f.labels) > 0 {
			w.w.WriteByte('{')
			for i, l := range f.labels {
				if i > 0 {
					w.w.WriteByte(',')
				}
				w.w.WriteString(l)
				w.w.WriteString(`="`)
				labelEscaper.WriteString(w.w, s.labels[i])
				w.w.WriteByte('"')
			}
			w.w.WriteByte('}')
		}
		w.w.WriteByte(' ')
		w.w.WriteString(strconv.FormatFloat(s.value, 'g', -1, 64))
		w.w.WriteByte('\n')
	}
}

// labelEscaper escapes a label value as the exposition format requires.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func one(v float64, labels ...string) sample { return sample{v, labels} }

// writeAgent reads the source once and writes the agent's families.
func writeAgent(w writer, src Source, now time.Time) {
	s := src.Status()
	w.write(famInfo, one(1, s.Node.Name, s.Node.ID, s.Agent.Version))
	var ph []sample
	for _, p := range phases {
		ph = append(ph, one(boolValue(s.Phase == p), p.String()))
	}
	w.write(famPhase, ph...)
	w.write(famHealthy, one(boolValue(s.Healthy())))
	w.write(famWarnings, one(float64(len(s.Warnings))))
	byState := map[string]int{}
	for _, m := range s.Members {
		byState[m.Status]++
	}
	var ms []sample
	for _, st := range memberStates {
		ms = append(ms, one(float64(byState[st]), st))
	}
	w.write(famMembers, ms...)
	var epoch float64
	if s.Plan != nil {
		epoch = float64(s.Plan.Epoch)
	}
	w.write(famEpoch, one(epoch))
	w.write(famServer, one(boolValue(s.Plan != nil && s.Node.Role == "server")))
	if s.Certs != nil {
		var cs []sample
		for _, f := range s.Certs.Files {
			cs = append(cs, one(f.NotAfter.Sub(now).Seconds(), f.Role))
		}
		w.write(famCertExpiry, cs...)
	}
	var version, evicted, gen float64
	if s.Cluster != nil {
		version, evicted, gen = float64(s.Cluster.Version), float64(len(s.Cluster.Evicted)), float64(s.Cluster.ClientToken.Generation)
	}
	w.write(famClusterVersion, one(version))
	w.write(famEvicted, one(evicted))
	w.write(famClientGen, one(gen))
	if s.Plan != nil {
		sg, sa, sn, sr := secretSamples(s, now)
		w.write(famSecretGen, sg...)
		w.write(famSecretAge, sa...)
		w.write(famSecretNext, sn...)
		w.write(famSecretRotating, sr...)
	}
	if s.Cluster != nil && s.Cluster.NomadUpgrade != nil {
		var st []sample
		for _, stage := range []string{"servers", "clients", "done", "failed"} {
			st = append(st, one(boolValue(s.Cluster.NomadUpgrade.Stage == stage), stage))
		}
		w.write(famUpgrade, st...)
	}
	if sn := s.Snapshots; sn != nil {
		w.write(famSnapshotsKept, one(float64(sn.Kept)))
		if !sn.Last.IsZero() {
			w.write(famSnapshotAge, one(now.Sub(sn.Last).Seconds()))
		}
	}
	signed, refused := src.CAStats()
	w.write(famSigned, one(float64(signed)))
	w.write(famRefused, one(float64(refused)))
	if s.Nomad != nil {
		w.write(famNomadHealthy, one(boolValue(s.Nomad.Healthy)))
		w.write(famNomadPeers, one(float64(len(s.Nomad.Peers))))
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// contentType is the text exposition format's.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

var exposeMetadata sync.Once

// Handler returns the HTTP handler serving src's metrics, with the Go
// runtime's and the process's, at any path. now is the clock (time.Now
// when nil).
func Handler(src Source, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	// HELP and TYPE lines for the runtime and process metrics too.
	exposeMetadata.Do(func() { vm.ExposeMetadata(true) })
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", contentType)
		bw := bufio.NewWriter(rw)
		writeAgent(writer{bw}, src, now())
		vm.WriteProcessMetrics(bw)
		bw.Flush()
	})
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
