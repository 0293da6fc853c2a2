package systemd

import (
	"context"
	"path/filepath"
)

// Service is a unit that [Manager.Ensure] installs, enables and starts.
type Service struct {
	// Name is the unit's name, such as nomad.service.
	Name string
	// Dir is where nomad-bootstrapd writes the unit when no package
	// shipped one: EtcDir, under -root in tests.
	Dir string
	// Shipped lists where a package's unit would be (UsrLibDir, LibDir).
	// A unit found there is used as it is and never written.
	Shipped []string
	// Content is the unit nomad-bootstrapd writes into Dir.
	Content []byte
	// Follow rewrites a unit in Dir that nomad-bootstrapd wrote earlier
	// (see [Managed]) when Content differs from it. Without Follow, any
	// unit already in Dir stays as it is. A unit an administrator wrote
	// always stays.
	Follow bool
}

// needsWrite reports whether Ensure writes s's unit into s.Dir.
func (s Service) needsWrite() bool {
	if len(s.Shipped) > 0 && UnitExists(s.Name, s.Shipped...) {
		return false
	}
	if !UnitExists(s.Name, s.Dir) {
		return true
	}
	return s.Follow && Managed(filepath.Join(s.Dir, s.Name))
}

// Ensured says what [Manager.Ensure] did.
type Ensured struct {
	Wrote     bool // the unit file was written
	Restarted bool // the unit ran and was restarted
}

// Ensure makes s run: it writes s's unit when no package shipped one and
// the unit in s.Dir is missing (or, with Follow, is an older one of
// nomad-bootstrapd's), reloads systemd after a write, enables the unit and
// starts it; a unit that already runs is restarted when restart is true or
// its unit file was just written, and left alone otherwise. Running Ensure
// again changes nothing. It reports what it did.
func (m *Manager) Ensure(ctx context.Context, s Service, restart bool) (done Ensured, err error) {
	if s.needsWrite() {
		if done.Wrote, err = WriteUnit(s.Dir, s.Name, s.Content); err != nil {
			return done, err
		}
		if done.Wrote {
			if err := m.DaemonReload(ctx); err != nil {
				return done, err
			}
		}
	}
	if err := m.Enable(ctx, s.Name); err != nil {
		return done, err
	}
	active, _, _, err := m.State(ctx, s.Name)
	if err != nil {
		return done, err
	}
	switch {
	case active != "active":
		err = m.Start(ctx, s.Name)
	case restart || done.Wrote:
		done.Restarted = true
		err = m.Restart(ctx, s.Name)
	}
	return done, err
}
