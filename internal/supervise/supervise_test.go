package supervise

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "child.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRestartsWithBackoff(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	s := New(Config{Path: script(t, "echo x >> "+count+"\nexit 3\n"), MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "three starts", func() bool {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "x") >= 3
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := s.State()
	if st.Restarts < 2 || !strings.Contains(st.LastExit, "exit status 3") {
		t.Errorf("state %+v: want >= 2 restarts and exit status 3", st)
	}
}

func TestStopSignalAndKill(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		want     string // substring of LastExit
		graceful bool
	}{
		// The trap exits 0 on SIGINT: a graceful stop.
		{"graceful", "trap 'exit 0' INT\nwhile :; do sleep 0.05; done\n", "exit status 0", true},
		// Ignores SIGINT: killed after the timeout.
		{"killed", "trap '' INT\nwhile :; do sleep 0.05; done\n", "killed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{Path: script(t, tt.body), StopTimeout: 300 * time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			waitFor(t, "the child to run", func() bool { return s.State().Running })
			time.Sleep(100 * time.Millisecond) // let the shell install its trap
			pid := s.State().PID
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			st := s.State()
			if st.Running || !strings.Contains(st.LastExit, tt.want) {
				t.Errorf("state %+v: want stopped with %q", st, tt.want)
			}
			if err := syscall.Kill(pid, 0); err == nil {
				t.Errorf("child %d still alive", pid)
			}
		})
	}
}

func TestMissingProgram(t *testing.T) {
	err := New(Config{Path: filepath.Join(t.TempDir(), "nomad")}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "starting") {
		t.Errorf("error = %v, want one about starting the program", err)
	}
}

func TestSignal(t *testing.T) {
	dir := t.TempDir()
	marker, ready := filepath.Join(dir, "hup"), filepath.Join(dir, "ready")
	s := New(Config{Path: script(t, "trap 'echo hup > "+marker+"' HUP\necho > "+ready+"\nwhile :; do sleep 0.05; done\n"), StopTimeout: 200 * time.Millisecond})
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Errorf("Signal with no child: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The child handles SIGHUP once its trap is set, which it says.
	waitFor(t, "the child to set its trap", func() bool { _, err := os.Stat(ready); return s.State().Running && err == nil })
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the child to handle SIGHUP", func() bool { _, err := os.Stat(marker); return err == nil })
}

// TestSetPath: a new program takes effect at the next start, the running
// child is left alone until it exits.
func TestSetPath(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	first := script(t, "echo first >> "+out+"\nexec sleep 30\n")
	second := filepath.Join(dir, "second.sh")
	if err := os.WriteFile(second, []byte("#!/bin/sh\necho second >> "+out+"\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Path: first, MinBackoff: 10 * time.Millisecond, StopTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "the first program", func() bool { b, _ := os.ReadFile(out); return string(b) == "first\n" })
	s.SetPath(second)
	time.Sleep(50 * time.Millisecond)
	if b, _ := os.ReadFile(out); string(b) != "first\n" {
		t.Fatalf("the running child was disturbed: %q", b)
	}
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second program", func() bool { b, _ := os.ReadFile(out); return string(b) == "first\nsecond\n" })
}
