package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
)

const sample = `started: 2026-12-01T22:00:00Z
goos: linux
BenchmarkConvergence/N=3-2         	       1	     23184 ns/op	         0.5000 s-settle-excluded	         0.0300 s-to-commit	         0.0150 s-to-first-commit
BenchmarkConvergence/N=3-2         	       1	     23184 ns/op	         0.5000 s-settle-excluded	         0.0400 s-to-commit	         0.0160 s-to-first-commit
BenchmarkSign      	   13000	    179000 ns/op	      5588 certs/s
    bench_test.go:46: run 1: nomad-bootstrapd 5.63s, hand-configured 17.70s
    bench_test.go:46: run 2: nomad-bootstrapd 4.53s, hand-configured 2.35s
    bench_test.go:46: run 3: nomad-bootstrapd 5.00s, hand-configured 20.00s
`

func TestParseAndTargets(t *testing.T) {
	var r report
	r.parse([]byte(sample))
	if r.RunAt != "2026-12-01T22:00:00Z" {
		t.Errorf("RunAt %q", r.RunAt)
	}
	if got := r.values("BenchmarkConvergence/N=3", "s-to-commit"); len(got) != 2 || got[1] != 0.04 {
		t.Errorf("convergence values %v", got)
	}
	c := r.Convergence()[0]
	if !c.Known || !c.Met || c.AllText != "0.030–0.040 s" {
		t.Errorf("N=3: %+v", c)
	}
	h := r.Healthy()
	if h.MedianOurs != 5.00 || h.BestHand != 2.35 || h.WorstOurs != 5.63 || h.SlowHand != 2 {
		t.Errorf("healthy %+v", h)
	}
	s := r.summary()
	for _, want := range []string{"ok     plan on every node, N = 3", "MISSED", "n/a", "5,588/s"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if _, err := r.render(); err != nil {
		t.Fatal(err)
	}
}

func TestTrim(t *testing.T) {
	for _, c := range []struct {
		x    float64
		prec int
		want string
	}{{0.0241, 2, "0.024"}, {96.84, 3, "96.8"}, {5588.2, 3, "5,590"}, {170000, 3, "170,000"}, {1.5, 2, "1.5"}} {
		if got := trim(c.x, c.prec); got != c.want {
			t.Errorf("trim(%v, %d) = %q, want %q", c.x, c.prec, got, c.want)
		}
	}
}

func TestRenewal(t *testing.T) {
	const signRequest = "BenchmarkSignRequest \t    8000\t    274400 ns/op\t      3644 requests/s\n"
	for _, tt := range []struct {
		name          string
		raw           string
		known         bool
		headroom      float64
		burst         float64
		summary, text []string
	}{
		{"measured", signRequest, true, 3644 / (10003.0 / 43200), 10003 / 3644.0,
			[]string{"ok     renewal load at 10,000 nodes, 24 h certificates renewed every 12 h", "0.232 requests/s, 15,700× below the signed requests/s"},
			[]string{"3 servers hold 2 certificates\neach (server and cli), the other 9,997 nodes 1 each (client):\n10,003 certificates, or 10,003 / 43,200 s = 0.232 requests/s", "3,644 requests/s on one core", "15,700 times that load",
				"requests take 2.7 s of one core every 12 h", "one attempt every\n30 s: then at most 333 requests/s from 10,000 nodes,\n9.1% of what it signs"}},
		{"not measured", "", false, 0, 0,
			[]string{"n/a    renewal load at 10,000 nodes", "not measured"},
			[]string{"0.232 requests/s", "capacity was not measured in this run"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r report
			r.parse([]byte(tt.raw))
			n := r.Renewal()
			if n.Certs != 3*2+9997 || n.Lifetime != 24*time.Hour || n.Every != 12*time.Hour || n.Known != tt.known {
				t.Errorf("renewal %+v; want 10,003 certificates of 24 h renewed every 12 h, measured %v", n, tt.known)
			}
			if math.Abs(n.PerSecond-10003.0/43200) > 1e-9 || math.Abs(n.Retry-10000.0/30) > 1e-9 {
				t.Errorf("%v requests/s, %v retrying; want 10,003 / 43,200 s and 10,000 / 30 s", n.PerSecond, n.Retry)
			}
			if math.Abs(n.Headroom-tt.headroom) > 1e-6 || math.Abs(n.Burst-tt.burst) > 1e-9 {
				t.Errorf("headroom %v, burst %v s; want %v, %v s", n.Headroom, n.Burst, tt.headroom, tt.burst)
			}
			s := r.summary()
			for _, want := range tt.summary {
				if !strings.Contains(s, want) {
					t.Errorf("summary lacks %q:\n%s", want, s)
				}
			}
			text, err := r.render()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.text {
				if !strings.Contains(string(text), want) {
					t.Errorf("report lacks %q", want)
				}
			}
		})
	}
}

// The report's retry figure is the agent's.
func TestRenewalRetryMaxIsTheAgents(t *testing.T) {
	if got := agent.DefaultTimings().StepRetryMax; got != renewalRetryMax {
		t.Errorf("agent.DefaultTimings().StepRetryMax = %v, renewalRetryMax = %v", got, renewalRetryMax)
	}
}
