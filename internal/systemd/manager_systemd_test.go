//go:build systemd

// These tests drive a real systemd over D-Bus and change units on the
// machine they run on: make test-system runs them as root inside a booted
// throw-away Debian (test/system/run.sh).

package systemd

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// bootedManager connects to the booted systemd, skipping the test on other
// machines and without root. The test's unit is stopped, disabled and
// removed when the test ends, before the connection closes.
func bootedManager(t *testing.T, unit string) (context.Context, *Manager) {
	t.Helper()
	if !booted() {
		t.Skip("needs a machine booted with systemd")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	m, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	t.Cleanup(func() {
		ctx := context.Background()
		m.conn.StopUnitContext(ctx, unit, "replace", nil)
		m.conn.DisableUnitFilesContext(ctx, []string{unit}, false)
		os.Remove(filepath.Join(EtcDir, unit))
		m.DaemonReload(ctx)
	})
	return ctx, m
}

func TestManagerBooted(t *testing.T) {
	const name = "nbd-manager-test.service"
	ctx, m := bootedManager(t, name)
	marker := filepath.Join(t.TempDir(), "reloaded")
	content := []byte("[Unit]\nDescription=nomad-bootstrapd manager test\n\n" +
		"[Service]\nType=notify\nNotifyAccess=all\n" +
		"ExecStart=/bin/sh -c 'systemd-notify --ready; exec sleep infinity'\n" +
		"ExecReload=/bin/touch " + marker + "\n\n" +
		"[Install]\nWantedBy=multi-user.target\n")
	if _, err := WriteUnit(EtcDir, name, content); err != nil {
		t.Fatal(err)
	}

	if err := m.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, enabled, err := m.State(ctx, name); err != nil || enabled != "disabled" {
		t.Fatalf("State before Enable: enabled=%q err=%v, want disabled", enabled, err)
	}
	for range 2 { // enabling twice is fine
		if err := m.Enable(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	active, sub, enabled, err := m.State(ctx, name)
	if err != nil || active != "active" || sub != "running" || enabled != "enabled" {
		t.Fatalf("State = %q %q %q %v, want active running enabled", active, sub, enabled, err)
	}
	pid := func() uint32 {
		p, err := m.conn.GetServicePropertyContext(ctx, name, "MainPID")
		if err != nil {
			t.Fatal(err)
		}
		return p.Value.Value().(uint32)
	}
	before := pid()
	if err := m.Start(ctx, name); err != nil { // already active: nothing happens
		t.Fatal(err)
	}
	if after := pid(); after != before {
		t.Errorf("Start of an active unit restarted it: pid %d -> %d", before, after)
	}
	if err := m.Reload(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("Reload did not run ExecReload: %v", err)
	}
	if err := m.Restart(ctx, name); err != nil {
		t.Fatal(err)
	}
	if after := pid(); after == before {
		t.Errorf("Restart kept pid %d", after)
	}

	if err := m.Start(ctx, "nbd-absent.service"); err == nil {
		t.Error("starting a unit without a file succeeded")
	}
	failing := "nbd-failing-test.service"
	if _, err := WriteUnit(EtcDir, failing, []byte("[Service]\nType=oneshot\nExecStart=/bin/false\n")); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(EtcDir, failing))
	if err := m.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, failing); err == nil {
		t.Error("starting a failing unit succeeded")
	} else {
		t.Logf("failing unit: %v", err)
	}
}

func TestEnsureBooted(t *testing.T) {
	const name = "nbd-ensure-test.service"
	ctx, m := bootedManager(t, name)
	s := Service{
		Name: name, Dir: EtcDir, Shipped: []string{t.TempDir()},
		Content: []byte("[Service]\nExecStart=/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n"),
	}
	pid := func() uint32 {
		p, err := m.conn.GetServicePropertyContext(ctx, name, "MainPID")
		if err != nil {
			t.Fatal(err)
		}
		return p.Value.Value().(uint32)
	}
	steps := []struct {
		restart     bool
		want        Ensured
		wantNewMain bool
	}{
		{restart: false, want: Ensured{Wrote: true}, wantNewMain: true}, // installs, enables, starts
		{restart: false, want: Ensured{}, wantNewMain: false},
		{restart: true, want: Ensured{Restarted: true}, wantNewMain: true},
	}
	var last uint32
	for i, st := range steps {
		done, err := m.Ensure(ctx, s, st.restart)
		if err != nil || done != st.want {
			t.Fatalf("step %d: Ensure = %+v, %v; want %+v, nil", i, done, err, st.want)
		}
		active, _, enabled, err := m.State(ctx, name)
		if err != nil || active != "active" || enabled != "enabled" {
			t.Fatalf("step %d: State = %q %q %v, want active enabled", i, active, enabled, err)
		}
		if p := pid(); (p != last) != st.wantNewMain {
			t.Errorf("step %d: main pid %d -> %d; want a new one: %v", i, last, p, st.wantNewMain)
		} else {
			last = p
		}
	}
}
