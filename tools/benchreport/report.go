package main

import (
	"bytes"
	"crypto/x509"
	_ "embed"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

//go:embed report.md.tmpl
var reportTemplate string

// report is everything the template shows.
type report struct {
	Machine  Machine
	Commands map[string]string   // by raw name
	Results  map[string][]Result // by benchmark name, one per -count
	Runs     []Run               // healthy-cluster runs
	RunAt    string              // when the first benchmark started (UTC)
	When     string
}

// Run is one pair of healthy-cluster runs.
type Run struct {
	N          int
	Ours, Hand float64 // seconds
}

// Target is one line of the design's targets.
type Target struct {
	What, Figure, Goal string
	Met                bool
	Known              bool // the figure was measured
}

// MetText is "met", "not met" or "not measured".
func (t Target) MetText() string {
	switch {
	case !t.Known:
		return "not measured"
	case t.Met:
		return "met"
	}
	return "**not met**"
}

// values returns one metric of a benchmark over its runs.
func (r *report) values(name, unit string) []float64 {
	var v []float64
	for _, res := range r.Results[name] {
		if x, ok := res[unit]; ok {
			v = append(v, x)
		}
	}
	return v
}

// Conv is one cluster size's convergence figures.
type Conv struct {
	N                     int
	All, First, Settle    []float64
	Dropped               []float64
	Goal                  float64
	Transport, Timings    string
	AllText, FirstText    string
	DroppedText, GoalText string
	Median, Worst         float64
	Met, Known            bool
}

// median returns the middle value (the upper one of an even count).
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

// Convergence returns the figures per cluster size.
func (r *report) Convergence() []Conv {
	var out []Conv
	for _, c := range []struct {
		n    int
		goal float64
	}{{3, 1}, {10, 2}, {100, 5}, {500, 30}} {
		name := fmt.Sprintf("BenchmarkConvergence/N=%d", c.n)
		cv := Conv{N: c.n, Goal: c.goal, GoalText: fmt.Sprintf("≤ %g s", c.goal),
			All: r.values(name, "s-to-commit"), First: r.values(name, "s-to-first-commit"),
			Settle: r.values(name, "s-settle-excluded"), Dropped: r.values(name, "dropped-packet-%"),
			Transport: "loopback UDP/TCP", Timings: "LAN"}
		if c.n >= 500 {
			cv.Transport, cv.Timings = "in memory, drops when full", "WAN"
		}
		cv.Known = len(cv.All) > 0
		if cv.Known {
			cv.Median, cv.Worst = median(cv.All), slices.Max(cv.All)
		}
		cv.Met = cv.Known && cv.Median <= c.goal
		cv.AllText, cv.FirstText = span(cv.All, "s", 2), span(cv.First, "s", 2)
		cv.DroppedText = span(cv.Dropped, "%", 2)
		out = append(out, cv)
	}
	return out
}

// Settle returns the settle time the convergence runs excluded.
func (r *report) Settle() string {
	return span(r.values("BenchmarkConvergence/N=3", "s-settle-excluded"), "s", 1)
}

// span formats values as "a–b unit" (or one value) with prec significant decimals.
func span(v []float64, unit string, prec int) string {
	if len(v) == 0 {
		return "not measured"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	f := func(x float64) string { return trim(x, prec) }
	if f(lo) == f(hi) {
		return f(lo) + " " + unit
	}
	return f(lo) + "–" + f(hi) + " " + unit
}

// trim formats x with prec significant digits, no exponent, thousands grouped.
func trim(x float64, prec int) string {
	if x == 0 {
		return "0"
	}
	digits := prec - 1 - int(math.Floor(math.Log10(math.Abs(x))))
	if digits < 0 {
		p := math.Pow(10, float64(-digits))
		x = math.Round(x/p) * p
		digits = 0
	}
	s := fmt.Sprintf("%.*f", digits, x)
	intPart, frac, _ := strings.Cut(s, ".")
	if len(intPart) > 3 {
		var b strings.Builder
		for i, c := range intPart {
			if i > 0 && (len(intPart)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		intPart = b.String()
	}
	if frac != "" {
		return intPart + "." + frac
	}
	return intPart
}

// first returns a benchmark's first value of unit and whether there is one.
func (r *report) first(name, unit string) (float64, bool) {
	v := r.values(name, unit)
	if len(v) == 0 {
		return 0, false
	}
	return v[0], true
}

// F formats one metric of a benchmark (its first run) with prec digits.
func (r *report) F(name, unit string, prec int) string {
	v, ok := r.first(name, unit)
	if !ok {
		return "not measured"
	}
	return trim(v, prec)
}

// Healthy holds the healthy-cluster comparison.
type Healthy struct {
	Runs                              []Run
	MedianOurs, MedianHand, WorstOurs float64
	BestHand, BestOurs, WorstHand     float64
	MedianRatio, WorstBestRatio       float64
	SlowHand                          int     // hand-configured runs over twice its best
	WorstFastHand                     float64 // the slowest hand-configured run under twice its best
	BestSlowHand                      float64 // the fastest of the slow ones; 0 when none
	FastHand                          int     // the other hand-configured runs
	Known                             bool
}

// Healthy returns the healthy-cluster comparison from the runs' log lines.
func (r *report) Healthy() Healthy {
	h := Healthy{Runs: r.Runs, Known: len(r.Runs) > 0}
	if !h.Known {
		return h
	}
	var ours, hand []float64
	for _, run := range r.Runs {
		ours, hand = append(ours, run.Ours), append(hand, run.Hand)
	}
	slices.Sort(ours)
	slices.Sort(hand)
	h.MedianOurs, h.MedianHand = ours[len(ours)/2], hand[len(hand)/2]
	h.BestOurs, h.WorstOurs = ours[0], ours[len(ours)-1]
	h.BestHand, h.WorstHand = hand[0], hand[len(hand)-1]
	h.MedianRatio, h.WorstBestRatio = h.MedianOurs/h.MedianHand, h.WorstOurs/h.BestHand
	for _, x := range hand {
		if x > 2*h.BestHand {
			if h.SlowHand == 0 {
				h.BestSlowHand = x
			}
			h.SlowHand++
		} else {
			h.WorstFastHand = max(h.WorstFastHand, x)
			h.FastHand++
		}
	}
	return h
}

// The cluster whose renewal load the report states (DESIGN §8): 10,000
// nodes, 3 of them servers, with the default certificate lifetime.
const (
	renewalNodes   = 10_000
	renewalServers = 3
	// renewalRetryMax is the longest wait between a node's attempts of a
	// renewal that fails: agent.DefaultTimings().StepRetryMax.
	renewalRetryMax = 30 * time.Second
)

// Renewal is the load that renewing certificates puts on the CA holder,
// against the signed requests per second it was measured to manage.
type Renewal struct {
	Nodes, Servers  int
	ServerRoles     []string      // the certificates a server holds
	ClientRoles     []string      // the certificates a client holds
	Certs           int           // certificates the nodes hold
	Lifetime, Every time.Duration // the default lifetime; renewal after
	PerSecond       float64       // Certs spread evenly over Every
	Capacity        float64       // BenchmarkSignRequest's requests/s
	Headroom        float64       // Capacity / PerSecond
	Burst           float64       // seconds to sign Certs all at once
	RetryMax        time.Duration // the longest wait between attempts of a failing renewal
	Retry           float64       // requests/s of Nodes all retrying every RetryMax
	Known           bool          // Capacity was measured
}

// Renewal returns the renewal load at renewalNodes nodes: each holds the
// certificates status.CertRoles gives its role, each lasts
// certs.DefaultLeafLifetime and is renewed when certs.RenewAt says.
func (r *report) Renewal() Renewal {
	p := plan.Plan{}
	for i := range renewalServers {
		p.Servers = append(p.Servers, plan.Server{ID: "server-" + strconv.Itoa(i)})
	}
	n := Renewal{Nodes: renewalNodes, Servers: renewalServers, Lifetime: certs.DefaultLeafLifetime}
	for _, role := range status.CertRoles(p, "server-0") {
		n.ServerRoles = append(n.ServerRoles, string(role))
	}
	for _, role := range status.CertRoles(p, "client") {
		n.ClientRoles = append(n.ClientRoles, string(role))
	}
	n.Certs = renewalServers*len(n.ServerRoles) + (renewalNodes-renewalServers)*len(n.ClientRoles)
	t0 := time.Unix(0, 0)
	n.Every = certs.RenewAt(&x509.Certificate{NotBefore: t0, NotAfter: t0.Add(n.Lifetime)}).Sub(t0)
	n.PerSecond = float64(n.Certs) / n.Every.Seconds()
	n.RetryMax = renewalRetryMax
	n.Retry = float64(n.Nodes) / n.RetryMax.Seconds()
	n.Capacity, n.Known = r.first("BenchmarkSignRequest", "requests/s")
	if n.Known && n.Capacity > 0 {
		n.Headroom = n.Capacity / n.PerSecond
		n.Burst = float64(n.Certs) / n.Capacity
	}
	return n
}

// Hours formats a duration in hours: "12 h".
func (n Renewal) Hours(d time.Duration) string {
	return strconv.FormatFloat(d.Hours(), 'f', -1, 64) + " h"
}

// count formats a whole number with its thousands grouped: "10,003".
func count(x int) string { return trim(float64(x), len(strconv.Itoa(x))) }

// Targets returns the design's targets with this run's figures.
func (r *report) Targets() []Target {
	var t []Target
	for _, c := range r.Convergence() {
		fig := c.AllText
		if c.Known && len(c.All) > 1 {
			fig = fmt.Sprintf("median %s s, worst %s s", trim(c.Median, 2), trim(c.Worst, 2))
		} else if c.Known {
			fig = trim(c.Median, 2) + " s (one run)"
		}
		t = append(t, Target{What: fmt.Sprintf("plan on every node, N = %d (%s)", c.N, c.Transport), Figure: fig, Goal: c.GoalText, Met: c.Met, Known: c.Known})
	}
	h := r.Healthy()
	t = append(t,
		Target{What: "healthy 5-node cluster: median against the hand-configured median", Figure: fmt.Sprintf("%.2f×", h.MedianRatio), Goal: "≤ 1×", Met: h.Known && h.MedianRatio <= 1, Known: h.Known},
		Target{What: "healthy 5-node cluster: worst against the hand-configured best", Figure: fmt.Sprintf("%.2f×", h.WorstBestRatio), Goal: "≤ 1.3×", Met: h.Known && h.WorstBestRatio <= 1.3, Known: h.Known},
	)
	cps, ok := r.first("BenchmarkSign", "certs/s")
	t = append(t, Target{What: "certificates per second on one core", Figure: trim(cps, 4) + "/s", Goal: "≥ 2,000/s", Met: ok && cps >= 2000, Known: ok})
	rps, ok := r.first("BenchmarkSignRequest", "requests/s")
	t = append(t, Target{What: "signed certificate requests per second on one core (verified and signed)", Figure: trim(rps, 4) + "/s", Goal: "≥ 2,000/s", Met: ok && rps >= 2000, Known: ok})
	rn := r.Renewal()
	t = append(t, Target{What: fmt.Sprintf("renewal load at %s nodes, %s certificates renewed every %s", count(rn.Nodes), rn.Hours(rn.Lifetime), rn.Hours(rn.Every)),
		Figure: fmt.Sprintf("%s requests/s, %s× below the signed requests/s", trim(rn.PerSecond, 3), trim(rn.Headroom, 3)),
		Goal:   "below the signed requests/s", Met: rn.Known && rn.PerSecond <= rn.Capacity, Known: rn.Known})
	c500 := r.values("BenchmarkCertify500", "s/500-nodes")
	t = append(t, Target{What: "500 nodes certified after commit", Figure: span(c500, "s", 2), Goal: "≤ 10 s", Met: len(c500) > 0 && slices.Max(c500) <= 10, Known: len(c500) > 0})
	for _, v := range []struct{ suffix, what string }{{"", ""}, {"-nomad", ", watching its Nomad"}} {
		rss, ok1 := r.first("BenchmarkFootprint", "MB-rss-max"+v.suffix)
		cpu, ok2 := r.first("BenchmarkFootprint", "cpu-%-max"+v.suffix)
		t = append(t,
			Target{What: "idle agent resident memory (largest of 5" + v.what + ")", Figure: trim(rss, 3) + " MB", Goal: "≤ 25 MB", Met: ok1 && rss <= 25, Known: ok1},
			Target{What: "idle agent CPU (largest of 5" + v.what + ")", Figure: trim(cpu, 2) + "% of a core", Goal: "≤ 0.5%", Met: ok2 && cpu <= 0.5, Known: ok2},
		)
	}
	size, ok := r.first("BenchmarkFootprint", "MB-binary")
	t = append(t, Target{What: "stripped binary", Figure: trim(size, 3) + " MB", Goal: "≤ 20 MB", Met: ok && size <= 20, Known: ok})
	for i := range t {
		if !t[i].Known {
			t[i].Figure = "not measured"
		}
	}
	return t
}

// render executes the template.
func (r *report) render() ([]byte, error) {
	tmpl, err := template.New("report").Funcs(template.FuncMap{
		"f2":    func(x float64) string { return fmt.Sprintf("%.2f", x) },
		"span":  func(v []float64) string { return span(v, "s", 2) },
		"sub":   func(a, b float64) float64 { return a - b },
		"mul":   func(a, b float64) float64 { return a * b },
		"isub":  func(a, b int) int { return a - b },
		"join":  func(v []string) string { return strings.Join(v, " and ") },
		"count": count,
		"prec":  func(x float64, prec int) string { return trim(x, prec) },
		"secs":  func(d time.Duration) string { return count(int(d.Seconds())) },
		"div":   func(a, b float64) float64 { return a / b },
		// rng shows a range of seconds, or one figure when both ends agree.
		"rng": func(a, b float64) string {
			if fmt.Sprintf("%.2f", a) == fmt.Sprintf("%.2f", b) {
				return fmt.Sprintf("%.2f s", a)
			}
			return fmt.Sprintf("%.2f–%.2f s", a, b)
		},
	}).Parse(reportTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// summary is the table printed at the end of a run.
func (r *report) summary() string {
	var b strings.Builder
	ts := r.Targets()
	w := 0
	for _, t := range ts {
		w = max(w, len([]rune(t.What)))
	}
	fmt.Fprintf(&b, "Benchmarks on %s cores (%s), %s, %s:\n", r.Machine.Cores, r.Machine.CPU, r.Machine.Go, r.Machine.Nomad)
	met := 0
	for _, t := range ts {
		mark := "MISSED"
		switch {
		case !t.Known:
			mark = "n/a"
		case t.Met:
			mark, met = "ok", met+1
		}
		fmt.Fprintf(&b, "  %-6s %s%s  %s (target %s)\n", mark, t.What, strings.Repeat(" ", w-len([]rune(t.What))), t.Figure, t.Goal)
	}
	fmt.Fprintf(&b, "%d of %d targets met\n", met, len(ts))
	return b.String()
}

// Micro formats a benchmark's ns/op (its first run) in microseconds.
func (r *report) Micro(name string) string {
	v, ok := r.first(name, "ns/op")
	if !ok {
		return "not measured"
	}
	return trim(v/1000, 3) + " µs"
}

// Phase returns the healthy-cluster benchmark's median time, in seconds, at
// which the last agent reached the named phase.
func (r *report) Phase(name string) float64 {
	v, _ := r.first("BenchmarkHealthyCluster", "s-median-"+name)
	return v
}
