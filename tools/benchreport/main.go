// Command benchreport runs the benchmarks of nomad-bootstrapd, writes their
// figures, the machine they ran on and the commands into BENCHMARKS.md, and
// prints a summary against the design's targets. `make bench` runs it.
//
// Each benchmark reports its figures with testing.B.ReportMetric; this
// program runs `go test -bench` for each, keeps the raw output under -raw,
// parses the metric lines and renders the report from a template. With
// -render it only renders again from the raw output of an earlier run.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bench is one `go test` run of one or more benchmarks.
type bench struct {
	name string   // raw output file name
	args []string // go test arguments
	env  []string // extra environment (NOMAD_BIN)
}

func (b bench) command() string {
	var s []string
	for _, e := range b.env {
		k, _, _ := strings.Cut(e, "=")
		s = append(s, k+"=$NOMAD")
	}
	s = append(s, "go")
	for _, a := range b.args {
		if strings.ContainsAny(a, "^$|() ") {
			a = "'" + a + "'"
		}
		s = append(s, a)
	}
	return strings.Join(s, " ")
}

func benches(nomad string) []bench {
	env := []string{"NOMAD_BIN=" + nomad}
	return []bench{
		{name: "convergence", args: []string{"test", "-run", "^$", "-bench", "Convergence/N=(3|10|100)$", "-benchtime", "1x", "-count", "3", "./internal/agent/"}},
		{name: "convergence500", args: []string{"test", "-run", "^$", "-bench", "Convergence/N=500$", "-benchtime", "1x", "-count", "1", "-timeout", "20m", "./internal/agent/"}},
		{name: "simscale", args: []string{"test", "-run", "^$", "-bench", "SimulationScale", "-benchtime", "1x", "-timeout", "30m", "./internal/agree/"}},
		{name: "certs", args: []string{"test", "-run", "^$", "-bench", ".", "-benchtime", "2s", "-cpu", "1", "./internal/certs/"}},
		{name: "certify500", args: []string{"test", "-run", "^$", "-bench", "Certify500", "-benchtime", "3x", "./internal/casvc/"}},
		{name: "healthy", args: []string{"test", "-run", "^$", "-bench", "HealthyCluster", "-benchtime", "1x", "-timeout", "30m", "./test/e2e/"}, env: env},
		{name: "footprint", args: []string{"test", "-run", "^$", "-bench", "Footprint", "-benchtime", "1x", "-timeout", "15m", "./test/e2e/"}, env: env},
	}
}

func main() {
	out := flag.String("o", "BENCHMARKS.md", "the report to write")
	raw := flag.String("raw", ".cache/bench", "`directory` for the raw go test output")
	nomad := flag.String("nomad", ".cache/nomad-v1.6.3", "the real Nomad `binary`")
	render := flag.Bool("render", false, "do not run the benchmarks; render from the raw output of an earlier run")
	only := flag.String("only", "", "run only the benchmarks of these comma-separated raw names, keep the others' raw output")
	flag.Parse()
	nomadAbs, err := filepath.Abs(*nomad)
	if err != nil {
		fail(err)
	}
	bs := benches(nomadAbs)
	var failed []string
	if !*render {
		if err := os.MkdirAll(*raw, 0o755); err != nil {
			fail(err)
		}
		for _, b := range bs {
			if *only != "" && !slices.Contains(strings.Split(*only, ","), b.name) {
				continue
			}
			// A failed benchmark is reported and the others still run;
			// its figures show as not measured.
			if err := run(b, filepath.Join(*raw, b.name+".txt")); err != nil {
				fmt.Fprintln(os.Stderr, "benchreport:", err)
				failed = append(failed, b.name)
			}
		}
	}
	r := report{Machine: machine(nomadAbs), Commands: map[string]string{}}
	for _, b := range bs {
		r.Commands[b.name] = b.command()
		data, err := os.ReadFile(filepath.Join(*raw, b.name+".txt"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchreport: %v: its figures are reported as not measured\n", err)
			continue
		}
		r.parse(data)
	}
	r.When = r.RunAt
	text, err := r.render()
	if err != nil {
		fail(err)
	}
	if err := os.WriteFile(*out, text, 0o644); err != nil {
		fail(err)
	}
	fmt.Println()
	fmt.Print(r.summary())
	fmt.Printf("\nwrote %s (raw output in %s)\n", *out, *raw)
	if len(failed) > 0 {
		fail(fmt.Errorf("these benchmarks failed: %s", strings.Join(failed, ", ")))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchreport:", err)
	os.Exit(1)
}

// run runs one bench, streaming its output, and saves it to file with a
// first line naming the time it started.
func run(b bench, file string) error {
	fmt.Printf("==> %s\n", b.command())
	cmd := exec.Command("go", b.args...)
	cmd.Env = append(os.Environ(), b.env...)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "started: %s\n", time.Now().UTC().Format(time.RFC3339))
	cmd.Stdout = io.MultiWriter(os.Stdout, &buf)
	cmd.Stderr = io.MultiWriter(os.Stderr, &buf)
	err := cmd.Run()
	if werr := os.WriteFile(file, buf.Bytes(), 0o644); werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", b.command(), err)
	}
	return nil
}

// Machine describes where the benchmarks ran.
type Machine struct {
	Cores, CPU, Memory, Go, Nomad, OS, Commit string
}

func machine(nomad string) Machine {
	m := Machine{Cores: strconv.Itoa(runtime.NumCPU()), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) >= 3 {
			m.Go = f[2]
		}
	}
	if out, err := exec.Command(nomad, "version").Output(); err == nil {
		m.Nomad, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// Result is one line of benchmark output: its metrics by unit.
type Result map[string]float64

var (
	benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	runLine   = regexp.MustCompile(`run (\d+): nomad-bootstrapd ([\d.]+)s, hand-configured ([\d.]+)s`)
	started   = regexp.MustCompile(`^started: (\S+)`)
)

// parse adds the results in one raw output.
func (r *report) parse(data []byte) {
	if r.Results == nil {
		r.Results = map[string][]Result{}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if m := started.FindStringSubmatch(line); m != nil && (r.RunAt == "" || m[1] < r.RunAt) {
			r.RunAt = m[1]
		}
		if m := runLine.FindStringSubmatch(line); m != nil {
			ours, _ := strconv.ParseFloat(m[2], 64)
			hand, _ := strconv.ParseFloat(m[3], 64)
			r.Runs = append(r.Runs, Run{N: len(r.Runs) + 1, Ours: ours, Hand: hand})
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		res := Result{}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				res[f[i+1]] = v
			}
		}
		r.Results[m[1]] = append(r.Results[m[1]], res)
	}
}
