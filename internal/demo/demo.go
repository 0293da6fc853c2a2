// Package demo runs a local cluster of nomad-bootstrapd agents as separate
// processes, each on its own loopback address and root directory, and shows
// their progress until they agree on a plan.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/mounts"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// Options configure a demo cluster.
type Options struct {
	Nodes   int           // number of agents, 1 to MaxNodes
	Exe     string        // the nomad-bootstrapd binary to run
	Base    netip.Addr    // first node's loopback address; the others follow
	Keep    bool          // keep the directory on exit
	Once    bool          // return once the cluster agreed, instead of waiting for ctx
	Timeout time.Duration // how long the cluster may take to agree
	Out     io.Writer     // progress and the final table
	// Nomad is the nomad binary; when set every agent runs Nomad as its
	// child and the demo waits for a healthy Nomad cluster.
	Nomad string
}

// MaxNodes bounds the demo's size.
const MaxNodes = 50

// Layout of the demo nodes: pools and zones cycle through these.
var (
	pools = []string{"warm", "batch", "special", "warm", "batch"}
	zones = []string{"zone-a", "zone-b", "zone-c"}
)

type node struct {
	name, addr, root string
	cmd              *exec.Cmd
	done             chan error
	phase            status.Phase
	status           *status.Status
}

// Run starts the cluster, reports progress, prints the final table and then
// waits for ctx (or returns at once with Once). Every process it started is
// stopped, and its directory removed unless Keep, before it returns.
func Run(ctx context.Context, o Options) (err error) {
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		return fmt.Errorf("demo: -nodes %d is out of range 1-%d", o.Nodes, MaxNodes)
	}
	if !o.Base.Is4() || !o.Base.IsLoopback() {
		return fmt.Errorf("demo: base address %s is not an IPv4 loopback address", o.Base)
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
		if o.Nomad != "" {
			o.Timeout = 180 * time.Second
		}
	}
	dir, err := os.MkdirTemp("", "nomad-bootstrapd-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var nodes []*node
	defer func() {
		stopAll(nodes)
		if err := mounts.UnmountUnder(dir); err != nil {
			fmt.Fprintf(o.Out, "warning: %v\n", err)
		}
		if o.Keep {
			fmt.Fprintf(o.Out, "kept %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()

	token, err := certs.NewToken(rand.Reader)
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token.Encode()+"\n"), 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	expect := 3
	if o.Nodes < 3 {
		expect = 1
	}
	fmt.Fprintf(o.Out, "==> starting %d agents of cluster %s in %s (expect %d servers)\n", o.Nodes, token.ClusterIDString(), dir, expect)
	supervise := []string{"-supervise", "none"}
	if o.Nomad != "" {
		fmt.Fprintf(o.Out, "==> every agent runs %s with mTLS and ACLs\n", o.Nomad)
		supervise = []string{"-supervise", "process", "-nomad", o.Nomad, "-raw-exec"}
	}
	addr := o.Base
	for i := range o.Nodes {
		n := &node{name: fmt.Sprintf("node%d", i+1), addr: addr.String(), done: make(chan error, 1), phase: -1}
		n.root = filepath.Join(dir, n.name)
		if err := os.MkdirAll(n.root, 0o755); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		log, err := os.Create(filepath.Join(n.root, "agent.log"))
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		args := append([]string{"agent",
			"-root", n.root, "-name", n.name, "-bind", n.addr, "-join", o.Base.String(),
			"-token-file", tokenFile, "-expect", fmt.Sprint(expect), "-min-members", fmt.Sprint(o.Nodes), "-bootstrap-size", fmt.Sprint(o.Nodes),
			"-settle", "1s", "-pool", pools[i%len(pools)], "-zone", zones[i%len(zones)],
			"-metrics-addr", net.JoinHostPort(n.addr, "4652")}, supervise...)
		n.cmd = exec.Command(o.Exe, args...)
		n.cmd.Stdout, n.cmd.Stderr = log, log
		n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches the demo, which stops the agents in order
		if err := n.cmd.Start(); err != nil {
			log.Close()
			return fmt.Errorf("demo: starting %s: %w", n.name, err)
		}
		log.Close()
		go func() { n.done <- n.cmd.Wait() }()
		nodes = append(nodes, n)
		addr = addr.Next()
	}

	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := poll(ctx, nodes, o.Out); err != nil {
			return err
		}
		if agreed(nodes) && (o.Nomad == "" || allRunning(nodes)) {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return fmt.Errorf("demo: the agents did not agree within %s; logs are in %s/node*/agent.log (run with -keep to look at them)", o.Timeout, dir)
		case <-tick.C:
		}
	}
	printTable(o.Out, nodes)
	if o.Once {
		return nil
	}
	fmt.Fprintf(o.Out, "\nThe cluster is up. In another terminal:\n  %s status -root %s\n", o.Exe, nodes[0].root)
	if o.Nomad != "" {
		for _, n := range nodes {
			if n.status.Node.Role == "server" {
				p := paths.New(n.root)
				fmt.Fprintf(o.Out, "and with the nomad CLI:\n  . %s\n  export NOMAD_TOKEN=$(cat %s)\n  %s server members\n",
					p.ProfileScript(), filepath.Join(p.ACLDir(), "ops-admin.token"), o.Nomad)
				break
			}
		}
	}
	fmt.Fprintf(o.Out, "Each agent's Prometheus metrics:\n  curl http://%s/metrics\n", net.JoinHostPort(nodes[0].addr, "4652"))
	fmt.Fprintf(o.Out, "Press Ctrl-C to stop every agent and remove %s.\n", dir)
	<-ctx.Done()
	fmt.Fprintln(o.Out, "\n==> stopping")
	return nil
}

// poll refreshes every node's status and prints phase changes.
func poll(ctx context.Context, nodes []*node, out io.Writer) error {
	for _, n := range nodes {
		select {
		case err := <-n.done:
			n.done <- err
			tail, _ := os.ReadFile(filepath.Join(n.root, "agent.log"))
			return fmt.Errorf("demo: %s exited (%v); its log ends with:\n%s", n.name, err, lastLines(tail, 10))
		default:
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := status.Query(qctx, paths.New(n.root).Socket())
		cancel()
		if err != nil {
			continue // not listening yet
		}
		n.status = &s
		if s.Phase != n.phase {
			line := fmt.Sprintf("    %-8s %-15s %s", n.name, n.addr, s.Phase)
			if s.Reason != "" && s.Phase != status.PhaseCommitted && s.Phase != status.PhaseRunning {
				line += ": " + s.Reason
			}
			fmt.Fprintln(out, line)
			n.phase = s.Phase
		}
	}
	return nil
}

// allRunning reports whether every node runs a healthy Nomad.
func allRunning(nodes []*node) bool {
	for _, n := range nodes {
		if n.status == nil || n.status.Phase != status.PhaseRunning {
			return false
		}
	}
	return true
}

// agreed reports whether every node committed the same plan.
func agreed(nodes []*node) bool {
	var first string
	for _, n := range nodes {
		if n.status == nil || n.status.Plan == nil {
			return false
		}
		p := n.status.Plan
		key := fmt.Sprint(p.Epoch, p.Servers, p.CAHolder)
		if first == "" {
			first = key
		} else if key != first {
			return false
		}
	}
	return true
}

func printTable(out io.Writer, nodes []*node) {
	p := nodes[0].status.Plan
	fmt.Fprintf(out, "\n==> every node committed plan epoch %d: servers %s; CA holder %s\n\n",
		p.Epoch, strings.Join(p.Servers, ", "), p.CAHolder)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tPHASE\tROLE\tPOOL\tZONE\tCA\tNOMAD")
	for _, n := range nodes {
		s := n.status
		ca := ""
		if s.Node.Name == p.CAHolder {
			ca = "yes"
		}
		nomad := "-"
		if s.Nomad != nil {
			nomad = fmt.Sprintf("leader %s, %d peers, healthy %v", s.Nomad.Leader, len(s.Nomad.Peers), s.Nomad.Healthy)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Node.Name, s.Node.Address, s.Phase, s.Node.Role, s.Node.Pool, s.Node.Zone, ca, nomad)
	}
	tw.Flush()
}

// stopAll stops every agent: SIGTERM, then SIGKILL after a grace period.
func stopAll(nodes []*node) {
	for _, n := range nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	grace := time.After(10 * time.Second)
	for _, n := range nodes {
		select {
		case <-n.done:
		case <-grace:
			n.cmd.Process.Kill()
			<-n.done
		}
	}
}

func lastLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// ErrNoBinary is returned when the demo cannot find its own executable.
var ErrNoBinary = errors.New("demo: cannot find the nomad-bootstrapd binary")
