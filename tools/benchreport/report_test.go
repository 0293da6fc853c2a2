package main

import (
	"strings"
	"testing"
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
