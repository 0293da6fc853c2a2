package nomadrun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/supervise"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/systemd"
)

// Process is `nomad agent` run as a child of the caller (supervise=process).
type Process struct {
	sup *supervise.Supervisor
	out *os.File // Nomad's log, which Run closes
}

// Process prepares `nomad agent` as a child, writing to Nomad's log: it
// fails when the log cannot be opened or the binary is missing. Run runs it.
func (r *Runner) Process() (*Process, error) {
	logf, err := os.OpenFile(r.paths.NomadLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if _, err := os.Stat(r.Binary()); err != nil {
		logf.Close()
		return nil, fmt.Errorf("agent: the nomad binary %s: %w; install Nomad or pass -nomad PATH", r.Binary(), err)
	}
	sup := supervise.New(supervise.Config{
		Path:   r.Binary(),
		Args:   []string{"agent", "-config", r.paths.NomadConfigDir()},
		Output: logf,
		Logger: r.log.With("component", "nomad"),
	})
	return &Process{sup: sup, out: logf}, nil
}

// Run keeps Nomad running, restarting it when it exits, until ctx ends,
// then stops it. It returns an error only when Nomad cannot be started at
// all. It is called once.
func (p *Process) Run(ctx context.Context) error {
	defer p.out.Close()
	return p.sup.Run(ctx)
}

// Signal sends sig to the running Nomad (SIGHUP reloads its certificates);
// it is a no-op when none runs.
func (p *Process) Signal(sig os.Signal) error { return p.sup.Signal(sig) }

// Use makes the next start run the nomad binary at path (Runner.Use).
func (p *Process) Use(path string) { p.sup.SetPath(path) }

// PID returns the running Nomad's process ID, 0 when none runs.
func (p *Process) PID() int { return p.sup.State().PID }

// StartUnit runs Nomad as nomad.service: it installs the unit when no
// package shipped one, enables it, and starts it, or restarts it when
// changed says its configuration or certificates changed while it ran. An
// unchanged node leaves a running Nomad alone. The caller closes the
// manager.
func (r *Runner) StartUnit(ctx context.Context, changed bool) (*systemd.Manager, error) {
	m, err := systemd.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("agent: supervise=systemd: %w; on a machine without systemd use -supervise process", err)
	}
	// The unit a package shipped, or one an administrator wrote, stays;
	// the one nomad-bootstrapd wrote follows the installed Nomad (its
	// Type= depends on the version).
	svc := systemd.Service{
		Name:    systemd.NomadService,
		Dir:     r.paths.SystemdDir(),
		Shipped: []string{r.paths.Under(systemd.UsrLibDir), r.paths.Under(systemd.LibDir)},
		Content: systemd.NomadUnit(r.Binary(), r.paths.NomadConfigDir(), r.Features().NotifyReady),
		Follow:  true,
	}
	done, err := m.Ensure(ctx, svc, changed)
	if done.Wrote {
		r.log.Info("installed the nomad unit", "path", filepath.Join(svc.Dir, svc.Name), "nomad", r.Features().Version.String())
	}
	if done.Restarted {
		r.log.Info("Nomad's configuration changed; restarted nomad.service")
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}
