// Package statusview renders a node's status for people and for programs:
// an aligned table, coloured only when asked (on a terminal), and the JSON
// object of `status -json`.
package statusview

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// Options tune the table.
type Options struct {
	// Color adds ANSI colours: for terminals only.
	Color bool
	// Now is the time expiry is counted from; time.Now when zero.
	Now time.Time
}

// JSON writes s as one indented JSON object and a newline.
func JSON(w io.Writer, s status.Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// ANSI colours.
const (
	reset  = "\x1b[0m"
	bold   = "\x1b[1m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
)

// cell is one table cell: its text and, when colours are on, its colour.
type cell struct {
	text, color string
}

func plain(text string) cell { return cell{text: text} }

// printable returns s as the table shows it: unchanged, or, when it holds
// control characters or bytes that are not UTF-8 (a name or message from
// the network that slipped through), escaped as in a Go string, so that
// nothing a peer sends can move the cursor or recolour the terminal.
func printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// table collects rows and writes them with columns padded to the widest
// cell, counting runes, so that colour codes never break the alignment.
type table struct {
	rows   [][]cell
	indent string
}

func (t *table) add(cells ...cell) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer, color bool) {
	for _, r := range t.rows {
		for i := range r {
			r[i].text = printable(r[i].text)
		}
	}
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		b.WriteString(t.indent)
		for i, c := range r {
			text := c.text
			if i < len(r)-1 {
				text += strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+2)
			}
			if color && c.color != "" {
				// Colour the text, not the padding after it.
				n := len(c.text)
				text = c.color + text[:n] + reset + text[n:]
			}
			b.WriteString(text)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// Table writes s as the screen `status` shows: the node, the plan, the
// certificates, Nomad, the warnings and the members.
func Table(w io.Writer, s status.Status, o Options) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	n := s.Node
	head := &table{}
	head.add(label("Node"), plain(fmt.Sprintf("%s (%s)", orDash(n.Name), orDash(shortID(n.ID)))))
	head.add(label("Address"), plain(orDash(n.Address)))
	head.add(label("Role"), plain(fmt.Sprintf("%s, pool %s, zone %s, datacenter %s, region %s",
		orDash(n.Role), orDash(n.Pool), orDash(n.Zone), orDash(n.Datacenter), orDash(n.Region))))
	head.add(label("Phase"), cell{text: s.Phase.String(), color: phaseColor(s.Phase)})
	if s.Reason != "" {
		head.add(label("Reason"), plain(s.Reason))
	}
	head.add(label("Agent"), agentCell(s.Agent))
	if p := s.Plan; p != nil {
		head.add(label("Plan"), plain(fmt.Sprintf("epoch %d, %d servers of %d expected, CA holder %s", p.Epoch, len(p.Servers), p.Expect, orDash(p.CAHolder))))
		head.add(label("Servers"), plain(strings.Join(p.Servers, ", ")))
	} else {
		head.add(label("Plan"), cell{text: "none committed yet", color: yellow})
	}
	if a := s.ACL; a != nil {
		c := plain(fmt.Sprintf("%s (tokens in %s)", a.State, a.TokensDir))
		if a.State != "bootstrapped" {
			c.color = yellow
		}
		head.add(label("ACL"), c)
	}
	if sn := s.Snapshots; sn != nil {
		head.add(label("Snapshots"), snapshotsCell(*sn, now))
	}
	if c := s.Cluster; c != nil && c.NomadUpgrade != nil {
		head.add(label("Upgrade"), upgradeCell(*c.NomadUpgrade))
	}
	if c := s.Cluster; c != nil && len(c.Evicted) > 0 {
		var names []string
		for _, e := range c.Evicted {
			names = append(names, fmt.Sprintf("%s (%s, %s)", orDash(e.Name), shortID(e.ID), e.At.UTC().Format("2006-01-02 15:04")))
		}
		head.add(label("Evicted"), plain(fmt.Sprintf("%d: %s (cluster state version %d)", len(c.Evicted), strings.Join(names, ", "), c.Version)))
	}
	head.write(w, o.Color)

	if s.Certs != nil && len(s.Certs.Files) > 0 {
		fmt.Fprintf(w, "\n%s\n", heading("Certificates", o.Color))
		t := &table{indent: "  "}
		t.add(label("ROLE"), label("EXPIRES"), label("IN"))
		for _, f := range s.Certs.Files {
			left := f.NotAfter.Sub(now)
			t.add(plain(f.Role), plain(f.NotAfter.UTC().Format(time.RFC3339)), cell{text: humanDuration(left), color: expiryColor(f, now)})
		}
		t.write(w, o.Color)
	} else if s.Certs != nil {
		fmt.Fprintf(w, "\n%s expires %s\n", heading("Certificate", o.Color), s.Certs.NotAfter.UTC().Format(time.RFC3339))
	}

	if s.Plan != nil {
		fmt.Fprintf(w, "\n%s\n", heading("Secrets", o.Color))
		secretsTable(s, now).write(w, o.Color)
	}

	if nm := s.Nomad; nm != nil {
		fmt.Fprintf(w, "\n%s\n", heading("Nomad", o.Color))
		t := &table{indent: "  "}
		health := cell{text: "healthy", color: green}
		if !nm.Healthy {
			health = cell{text: "not healthy", color: red}
		}
		t.add(label("Unit"), plain(orDash(nm.Unit)))
		t.add(label("Version"), plain(orDash(nm.Version)))
		t.add(label("Health"), health)
		if nm.Leader == "" {
			t.add(label("Leader"), cell{text: "none", color: red})
		} else {
			t.add(label("Leader"), plain(nm.Leader))
		}
		t.add(label("Raft peers"), plain(fmt.Sprintf("%d: %s", len(nm.Peers), orDash(strings.Join(nm.Peers, ", ")))))
		if ap := nm.Autopilot; ap != nil {
			c := cell{text: fmt.Sprintf("healthy, %d voters, failure tolerance %d", ap.Voters, ap.FailureTolerance), color: green}
			if !ap.Healthy {
				c = cell{text: fmt.Sprintf("not healthy, %d voters, failure tolerance %d", ap.Voters, ap.FailureTolerance), color: red}
			}
			t.add(label("Autopilot"), c)
		}
		if len(nm.Clients) > 0 {
			var parts []string
			ready := true
			for _, pc := range nm.Clients {
				parts = append(parts, fmt.Sprintf("%s %d/%d", pc.Pool, pc.Ready, pc.Total))
				ready = ready && pc.Ready == pc.Total
			}
			c := plain(strings.Join(parts, ", ") + " ready")
			if !ready {
				c.color = yellow
			}
			t.add(label("Clients"), c)
		}
		if len(nm.ClientVersions) > 0 {
			t.add(label("Client versions"), plain(strings.Join(nm.ClientVersions, ", ")))
		}
		t.write(w, o.Color)
		if len(nm.Servers) > 0 {
			fmt.Fprintln(w)
			st := &table{indent: "  "}
			st.add(label("SERVER"), label("ADDRESS"), label("STATUS"), label("LEADER"), label("VERSION"))
			for _, sv := range nm.Servers {
				st.add(plain(sv.Name), plain(sv.Address), cell{text: sv.Status, color: memberColor(sv.Status)}, plain(fmt.Sprint(sv.Leader)), plain(orDash(sv.Version)))
			}
			st.write(w, o.Color)
		}
	}

	if len(s.Warnings) > 0 {
		fmt.Fprintf(w, "\n%s\n", heading("Warnings", o.Color))
		for _, warning := range s.Warnings {
			line := "  ! " + printable(warning)
			if o.Color {
				line = yellow + line + reset
			}
			fmt.Fprintln(w, line)
		}
	}

	fmt.Fprintf(w, "\n%s\n", heading(fmt.Sprintf("Members (%d)", len(s.Members)), o.Color))
	if len(s.Members) == 0 {
		if s.Agent.Running {
			fmt.Fprintln(w, "  none yet")
		} else {
			fmt.Fprintln(w, "  unknown while the agent is not running")
		}
		return
	}
	t := &table{indent: "  "}
	t.add(label("NAME"), label("ADDRESS"), label("STATUS"), label("ROLE"), label("POOL"), label("ZONE"))
	for _, m := range s.Members {
		t.add(plain(m.Name), plain(m.Address), cell{text: m.Status, color: memberColor(m.Status)}, plain(orDash(m.Role)), plain(orDash(m.Pool)), plain(orDash(m.Zone)))
	}
	t.write(w, o.Color)
}

// secretsTable lists the cluster's secrets: each one's generation, age,
// next rotation and state, from the cluster state and the CA certificate.
func secretsTable(s status.Status, now time.Time) *table {
	t := &table{indent: "  "}
	t.add(label("SECRET"), label("GENERATION"), label("AGE"), label("NEXT ROTATION"), label("STATE"))
	age := func(since time.Time) string {
		if since.IsZero() {
			return "-"
		}
		return humanDuration(now.Sub(since))
	}
	var c status.ClusterStatus
	if s.Cluster != nil {
		c = *s.Cluster
	}
	t.add(plain("server token"), plain("0"), plain("-"), plain("-"), plain("from the bootstrap; not rotatable yet"))
	ct, state := c.ClientToken, "-"
	if now.Before(ct.PreviousUntil) {
		state = fmt.Sprintf("generation %d admits for %s more", ct.Generation-1, humanDuration(ct.PreviousUntil.Sub(now)))
	}
	t.add(plain("client token"), plain(fmt.Sprint(ct.Generation)), plain(age(ct.RotatedAt)), plain("-"), plain(state))
	for _, key := range []struct {
		name string
		k    status.KeyStatus
	}{{"agents' gossip key", c.AgentGossipKey}, {"Nomad gossip key", c.NomadGossipKey}} {
		k, next := key.k, "-"
		if !k.NextRotation.IsZero() {
			next = k.NextRotation.UTC().Format("2006-01-02 15:04")
		}
		kc := plain("-")
		if k.Rotating != "" {
			kc = cell{text: "rotating: " + k.Rotating, color: yellow}
		}
		t.add(plain(key.name), plain(fmt.Sprint(k.Generation)), plain(age(k.RotatedAt)), plain(next), kc)
	}
	if s.Certs != nil {
		for _, f := range s.Certs.Files {
			if f.Role == "ca" {
				state := cell{text: "expires " + f.NotAfter.UTC().Format("2006-01-02"), color: expiryColor(f, now)}
				if c.CA.Rotating != "" {
					state = cell{text: "rotating: " + c.CA.Rotating, color: yellow}
				}
				next := "-"
				if !c.CA.NextRotation.IsZero() {
					next = c.CA.NextRotation.UTC().Format("2006-01-02 15:04")
				}
				t.add(plain("cluster CA"), plain(fmt.Sprint(c.CA.Generation)), plain(age(status.CAMade(f, c.CA))), plain(next), state)
			}
		}
	}
	return t
}

func label(s string) cell { return plain(s) }

func heading(s string, color bool) string {
	if color {
		return bold + s + reset
	}
	return s
}

func agentCell(a status.AgentStatus) cell {
	if !a.Running {
		return cell{text: "not running", color: red}
	}
	parts := []string{"running"}
	if a.Version != "" {
		parts = append(parts, "v"+strings.TrimPrefix(a.Version, "v"))
	}
	if a.PID != 0 {
		parts = append(parts, fmt.Sprintf("pid %d", a.PID))
	}
	if a.Metrics != "" {
		parts = append(parts, "metrics http://"+a.Metrics+"/metrics")
	}
	return plain(strings.Join(parts, ", "))
}

func phaseColor(p status.Phase) string {
	switch p {
	case status.PhaseRunning:
		return green
	case status.PhaseDegraded, status.PhaseStopped:
		return red
	default:
		return yellow
	}
}

func memberColor(state string) string {
	switch state {
	case "alive":
		return green
	case "suspect":
		return yellow
	default:
		return red
	}
}

// expiryColor warns when the agent does: once a certificate that should
// have been renewed has a third of its lifetime left, or a month for a
// long-lived one (certs.WarnAt).
func expiryColor(f status.CertFileStatus, now time.Time) string {
	switch {
	case !now.Before(f.NotAfter):
		return red
	case !now.Before(f.WarnAt()):
		return yellow
	default:
		return ""
	}
}

// humanDuration shows d in the largest unit that keeps it readable:
// "81d", "5h", "12m", or "expired".
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "expired"
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
}

// shortID shows the first 8 characters of a node ID, as Nomad does.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// upgradeCell shows the last rolling upgrade of Nomad.
func upgradeCell(u status.UpgradeStatus) cell {
	switch u.Stage {
	case "done":
		return plain(fmt.Sprintf("Nomad %s on every node since %s (%d upgraded)", u.Version, u.FinishedAt.UTC().Format("2006-01-02 15:04"), u.Upgraded))
	case "failed":
		return cell{text: fmt.Sprintf("to Nomad %s stopped %s: %s", u.Version, u.FinishedAt.UTC().Format("2006-01-02 15:04"), u.Failure), color: red}
	}
	text := fmt.Sprintf("to Nomad %s under way: the %s, %d upgraded", u.Version, u.Stage, u.Upgraded)
	if len(u.Turn) > 0 {
		verb := "installing on"
		if u.Step == "drain" {
			verb = "draining"
		}
		text += ", " + verb + " " + strings.Join(u.Turn, ", ")
	}
	return cell{text: text, color: yellow}
}

// snapshotsCell shows a server's scheduled snapshots: how many are kept
// where, the last one and the next.
func snapshotsCell(sn status.SnapshotStatus, now time.Time) cell {
	if sn.Interval == "off" && sn.Kept == 0 {
		return plain(fmt.Sprintf("off (snapshot_interval = 0), none in %s", sn.Dir))
	}
	if sn.Kept == 0 {
		return cell{text: fmt.Sprintf("none yet in %s, every %s", sn.Dir, sn.Interval), color: yellow}
	}
	text := fmt.Sprintf("%d of %d kept in %s, last %s (%s ago, %s)", sn.Kept, sn.Retain, sn.Dir,
		sn.Last.UTC().Format("2006-01-02 15:04"), humanDuration(now.Sub(sn.Last)), humanBytes(sn.LastSize))
	if sn.Interval == "off" {
		return plain(text + ", schedule off")
	}
	c := plain(fmt.Sprintf("%s, next %s", text, sn.Next.UTC().Format("15:04")))
	if !sn.Next.IsZero() && now.Sub(sn.Next) > 10*time.Minute {
		c.color = yellow // the schedule is behind: see the warnings
	}
	return c
}

// humanBytes prints a size in bytes with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
