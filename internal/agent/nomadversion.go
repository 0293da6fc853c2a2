package agent

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"
)

// detectNomad learns which Nomad this node runs, before anything is
// written, from `nomad version`. A Nomad older than nomadver.Oldest is
// refused. With supervise=none the agent starts nothing, so a missing
// binary is no error: the files are rendered for the oldest supported line,
// which every newer line accepts, and note says so.
func detectNomad(ctx context.Context, cfg config.Config) (f nomadver.Features, note string, err error) {
	v, err := nomadver.Detect(ctx, cfg.Nomad)
	if err != nil {
		if cfg.Supervise == config.SuperviseNone && errors.Is(err, os.ErrNotExist) {
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

// checkRunningNomad compares the version the local Nomad agent reports with
// the one detected at start: a package upgrade under a running agent is
// shown until the agent is restarted and renders for the new version.
func (a *Agent) checkRunningNomad(running string) {
	if running == "" {
		return
	}
	v, err := nomadver.Parse(running)
	if err != nil {
		return
	}
	want := a.nomadFeat.Version
	if v.Line() != want.Line() && !want.IsZero() {
		a.warn("nomad-version", fmt.Sprintf("Nomad %s is running but nomad-bootstrapd rendered its configuration for %s: restart nomad-bootstrapd to render for the running version", v, want))
		return
	}
	a.clearWarning("nomad-version")
}
