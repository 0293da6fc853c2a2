package systemd

import (
	"context"
	"fmt"

	"github.com/coreos/go-systemd/v22/dbus"
)

// Manager drives the system's service manager over D-Bus. Its methods may be
// called from several goroutines; every call is bounded by its context.
type Manager struct {
	conn *dbus.Conn
}

// Connect connects to systemd over the system bus, or over systemd's private
// socket when no D-Bus daemon runs (root only). Close the Manager when done.
func Connect(ctx context.Context) (*Manager, error) {
	conn, busErr := connect(ctx, dbus.NewSystemConnectionContext)
	if busErr == nil {
		return &Manager{conn: conn}, nil
	}
	conn, privErr := connect(ctx, dbus.NewSystemdConnectionContext)
	if privErr == nil {
		return &Manager{conn: conn}, nil
	}
	return nil, fmt.Errorf("systemd: cannot reach systemd over D-Bus: is this machine booted with systemd? (system bus: %w; private socket: %w)", busErr, privErr)
}

// connect dials with dial and subscribes to the manager's signals. The
// subscription proves systemd answers, and without one systemd does not
// send the JobRemoved signals that tell when a job has finished.
func connect(ctx context.Context, dial func(context.Context) (*dbus.Conn, error)) (*dbus.Conn, error) {
	conn, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := conn.Subscribe(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Close closes the connection.
func (m *Manager) Close() {
	m.conn.Close()
}

// DaemonReload makes systemd read unit files again, like systemctl
// daemon-reload. It returns once the reload is complete.
func (m *Manager) DaemonReload(ctx context.Context) error {
	if err := m.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd: daemon-reload: %w", err)
	}
	return nil
}

// Enable enables units persistently, replacing conflicting links, like
// systemctl enable --force; then, when links changed, it reloads systemd as
// systemctl does. A unit without an [Install] section is an error. Enabling an
// enabled unit changes nothing.
func (m *Manager) Enable(ctx context.Context, units ...string) error {
	hasInstall, changes, err := m.conn.EnableUnitFilesContext(ctx, units, false, true)
	if err != nil {
		return fmt.Errorf("systemd: enabling %v: %w", units, err)
	}
	if !hasInstall {
		return fmt.Errorf("systemd: enabling %v: no [Install] section", units)
	}
	if len(changes) > 0 {
		return m.DaemonReload(ctx)
	}
	return nil
}

// Start starts unit and waits until it is started: for a Type=notify
// service, until it has signalled readiness. Starting an active unit
// succeeds at once.
func (m *Manager) Start(ctx context.Context, unit string) error {
	return m.job(ctx, "starting", unit, m.conn.StartUnitContext)
}

// Restart stops unit if it is running, starts it again and waits until it
// is started.
func (m *Manager) Restart(ctx context.Context, unit string) error {
	return m.job(ctx, "restarting", unit, m.conn.RestartUnitContext)
}

// Stop stops unit and waits until it has stopped. Stopping an inactive
// unit succeeds at once.
func (m *Manager) Stop(ctx context.Context, unit string) error {
	return m.job(ctx, "stopping", unit, m.conn.StopUnitContext)
}

// Disable removes unit's symlinks, as systemctl disable does, and reloads
// systemd when that changed any.
func (m *Manager) Disable(ctx context.Context, units ...string) error {
	changes, err := m.conn.DisableUnitFilesContext(ctx, units, false)
	if err != nil {
		return fmt.Errorf("systemd: disabling %v: %w", units, err)
	}
	if len(changes) > 0 {
		return m.DaemonReload(ctx)
	}
	return nil
}

// Reload runs unit's ExecReload= (SIGHUP for Nomad) and waits for it to finish.
func (m *Manager) Reload(ctx context.Context, unit string) error {
	return m.job(ctx, "reloading", unit, m.conn.ReloadUnitContext)
}

type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

// job queues a job with mode "replace" and waits for its result.
func (m *Manager) job(ctx context.Context, what, unit string, queue jobFunc) error {
	// Buffered: the result is delivered without blocking the connection even
	// when nobody waits for it any more.
	ch := make(chan string, 1)
	if _, err := queue(ctx, unit, "replace", ch); err != nil {
		return fmt.Errorf("systemd: %s %s: %w", what, unit, err)
	}
	select {
	case result := <-ch:
		if result != "done" {
			return fmt.Errorf("systemd: %s %s: job %s; see journalctl -u %s", what, unit, result, unit)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("systemd: %s %s: %w", what, unit, context.Cause(ctx))
	}
}

// State returns unit's active state ("active", "inactive", "failed", ...),
// its sub-state ("running", "dead", ...) and its enablement ("enabled",
// "disabled", "static", ...), as systemctl show reports ActiveState,
// SubState and UnitFileState. A unit systemd has no file for reports
// "inactive", "dead" and "".
func (m *Manager) State(ctx context.Context, unit string) (active, sub, enabled string, err error) {
	props, err := m.conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return "", "", "", fmt.Errorf("systemd: state of %s: %w", unit, err)
	}
	str := func(k string) string {
		s, _ := props[k].(string)
		return s
	}
	return str("ActiveState"), str("SubState"), str("UnitFileState"), nil
}
