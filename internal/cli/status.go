package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
)

const statusHelp = `Usage: nomad-bootstrapd status [-json] [-root DIR]

Shows this node, its phase, the committed plan (servers, CA holder, epoch),
the members, certificate expiry and Nomad's health, as the local agent sees
them. Exit code 0: healthy; 1: degraded or not yet running; 2: the agent
cannot be reached.
`

const statusExamples = `  nomad-bootstrapd status
  nomad-bootstrapd status -json | jq .plan.servers`

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", statusHelp, statusExamples, stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	root := fs.String("root", "/", "`dir`ectory every path is relative to")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	sock := paths.New(*root).Socket()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := agent.QueryStatus(ctx, sock)
	if err != nil {
		if errors.Is(err, agent.ErrAgentDown) {
			fmt.Fprintf(stderr, "nomad-bootstrapd: the agent is not running (%v)\nstart it with: systemctl start nomad-bootstrapd\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(s)
	} else {
		printStatus(stdout, s)
	}
	if s.Healthy() {
		return exitOK
	}
	return exitError
}

// printStatus prints s as an aligned table.
func printStatus(w io.Writer, s agent.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	n := s.Node
	fmt.Fprintf(tw, "Node\t%s (%s)\n", n.Name, n.ID)
	fmt.Fprintf(tw, "Address\t%s\n", n.Address)
	fmt.Fprintf(tw, "Role\t%s, pool %s, zone %s, datacenter %s, region %s\n", n.Role, n.Pool, orNone(n.Zone), n.Datacenter, n.Region)
	fmt.Fprintf(tw, "Phase\t%s\n", s.Phase)
	if s.Reason != "" {
		fmt.Fprintf(tw, "Reason\t%s\n", s.Reason)
	}
	if p := s.Plan; p != nil {
		fmt.Fprintf(tw, "Plan\tepoch %d: servers %s; CA holder %s\n", p.Epoch, strings.Join(p.Servers, ", "), p.CAHolder)
	} else {
		fmt.Fprintf(tw, "Plan\tnone committed yet\n")
	}
	if s.Certs != nil {
		fmt.Fprintf(tw, "Certificate\texpires %s\n", s.Certs.NotAfter.Format(time.RFC3339))
	}
	if nm := s.Nomad; nm != nil {
		fmt.Fprintf(tw, "Nomad\tunit %s, leader %s, %d peers, healthy %v\n", nm.Unit, orNone(nm.Leader), len(nm.Peers), nm.Healthy)
	}
	tw.Flush()
	for _, warning := range s.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warning)
	}
	fmt.Fprintf(w, "\nMembers (%d)\n", len(s.Members))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATUS\tROLE\tPOOL\tZONE")
	for _, m := range s.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Address, m.Status, m.Role, m.Pool, orNone(m.Zone))
	}
	tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
