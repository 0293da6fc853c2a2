package nomadrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/nomad/api"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// Detect learns which Nomad this node runs, before anything is written,
// from `nomad version`. A Nomad older than nomadver.Oldest is refused. With
// supervise=none the agent starts nothing, and a dry run writes nothing, so
// a missing binary is no error there: the files are rendered for the oldest
// supported line, which every newer line accepts, and note says so.
func Detect(ctx context.Context, cfg config.Config, dryRun bool) (f nomadver.Features, note string, err error) {
	v, err := nomadver.Detect(ctx, cfg.Nomad)
	if err != nil {
		if (dryRun || cfg.Supervise == config.SuperviseNone) && errors.Is(err, os.ErrNotExist) {
			f = nomadver.Must(nomadver.Oldest)
			return f, fmt.Sprintf("no nomad binary at %s: Nomad's configuration is written for Nomad %s, which every supported version accepts", cfg.Nomad, nomadver.Oldest.Line()), nil
		}
		return nomadver.Features{}, "", fmt.Errorf("agent: cannot tell which Nomad is installed: %w; install Nomad %s or newer, or pass -nomad PATH", err, nomadver.Oldest.Line())
	}
	if f, err = nomadver.For(v); err != nil {
		return nomadver.Features{}, "", fmt.Errorf("agent: %s: %w", cfg.Nomad, err)
	}
	return f, "", nil
}

// runningWarning compares the version the local Nomad agent reports with
// the one detected at start: a package upgrade under a running agent is
// shown until the agent is restarted and renders for the new version. It
// reports false when running says nothing.
func (r *Runner) runningWarning(running string) (Warning, bool) {
	if running == "" {
		return Warning{}, false
	}
	v, err := nomadver.Parse(running)
	if err != nil {
		return Warning{}, false
	}
	want := r.Features().Version
	if v.Line() != want.Line() && !want.IsZero() {
		return Warning{Key: WarnVersion, Msg: fmt.Sprintf("Nomad %s is running but nomad-bootstrapd rendered its configuration for %s: restart nomad-bootstrapd to render for the running version", v, want)}, true
	}
	return Warning{Key: WarnVersion}, true
}

// clientVersions lists the distinct Nomad versions of the clients, oldest
// first.
func clientVersions(nodes []*api.NodeListStub) []string {
	seen := map[string]nomadver.Version{}
	for _, n := range nodes {
		if n == nil || n.Version == "" {
			continue
		}
		if v, err := nomadver.Parse(n.Version); err == nil {
			seen[n.Version] = v
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y string) int {
		if c := seen[x].Compare(seen[y]); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	return out
}

// mixedVersions says what is unsafe about the Nomad versions of a cluster:
// servers must be as new as every client (Nomad's upgrade guide: servers
// first, then clients). It returns "" when nothing is.
func mixedVersions(servers []status.NomadServerStatus, clients []string) string {
	var oldest nomadver.Version
	oldestName := ""
	for _, s := range servers {
		v, err := nomadver.Parse(s.Version)
		if err != nil || s.Status == "left" {
			continue
		}
		if oldestName == "" || v.Compare(oldest) < 0 {
			oldest, oldestName = v, s.Name
		}
	}
	if oldestName == "" || len(clients) == 0 {
		return ""
	}
	newest, err := nomadver.Parse(clients[len(clients)-1])
	if err != nil || newest.Compare(oldest) <= 0 {
		return ""
	}
	return fmt.Sprintf("Nomad server %s runs %s, older than clients that run %s: upgrade every server before the clients", oldestName, oldest, newest)
}

// mixedWarning is the warning of mixedVersions, shown or cleared. It
// reports false when Nomad named no server: what was known stays.
func mixedWarning(servers []status.NomadServerStatus, clients []string) (Warning, bool) {
	if len(servers) == 0 {
		return Warning{}, false
	}
	return Warning{Key: WarnMixed, Msg: mixedVersions(servers, clients)}, true
}
