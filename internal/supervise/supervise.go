// Package supervise runs a long-lived child process: it restarts the child
// with exponential backoff when it exits, and stops it with a chosen signal,
// then SIGKILL after a grace period, on shutdown.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Config describes the child.
type Config struct {
	// Path and Args name the program; Args excludes the program name.
	Path string
	Args []string
	// Env is the child's environment; nil inherits the parent's.
	Env []string
	// Output receives the child's stdout and stderr; nil discards them.
	Output io.Writer
	// StopSignal asks the child to stop (default SIGINT, Nomad's graceful stop).
	StopSignal syscall.Signal
	// StopTimeout is how long the child may take to stop before SIGKILL
	// (default 30 s).
	StopTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay before a restart (defaults
	// 1 s and 30 s). The delay doubles after each exit that follows a run
	// shorter than MaxBackoff and resets after a longer run.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives start, exit and restart events; nil discards them.
	Logger *slog.Logger
}

// Supervisor runs one child until its context ends.
type Supervisor struct {
	cfg Config

	mu       sync.Mutex
	path     string // the program the next start runs
	cmd      *exec.Cmd
	running  bool
	restarts int
	lastErr  error
}

// New returns a supervisor for cfg with defaults filled in.
func New(cfg Config) *Supervisor {
	if cfg.StopSignal == 0 {
		cfg.StopSignal = syscall.SIGINT
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{cfg: cfg, path: cfg.Path}
}

// SetPath makes the next start of the child run the program at path (a
// new version of it); the running child is left alone until it exits.
func (s *Supervisor) SetPath(path string) {
	s.mu.Lock()
	s.path = path
	s.mu.Unlock()
}

// State is a snapshot of the supervisor.
type State struct {
	Running  bool
	PID      int
	Restarts int
	LastExit string // how the child last exited, "" before any exit
}

// State returns the current state.
func (s *Supervisor) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Running: s.running, Restarts: s.restarts}
	if s.running && s.cmd != nil && s.cmd.Process != nil {
		st.PID = s.cmd.Process.Pid
	}
	if s.lastErr != nil {
		st.LastExit = s.lastErr.Error()
	}
	return st
}

// Signal sends sig to the running child (e.g. SIGHUP to reload); it is a
// no-op when no child runs.
func (s *Supervisor) Signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running || s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	return s.cmd.Process.Signal(sig)
}

// Run starts the child and keeps it running until ctx ends, then stops it
// and returns. It returns an error only when the program cannot be started
// at all the first time (missing or not executable).
func (s *Supervisor) Run(ctx context.Context) error {
	hupOnce.Do(unignoreHUP)
	backoff := s.cfg.MinBackoff
	first := true
	for {
		started := time.Now()
		s.mu.Lock()
		path := s.path
		s.mu.Unlock()
		cmd := exec.Command(path, s.cfg.Args...)
		cmd.Env = s.cfg.Env
		cmd.Stdout, cmd.Stderr = s.cfg.Output, s.cfg.Output
		// Its own process group: a Ctrl-C at the terminal reaches the
		// supervisor, which stops the child in order.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			if first {
				return fmt.Errorf("supervise: starting %s: %w", path, err)
			}
			s.cfg.Logger.Error("cannot start child", "path", path, "error", err)
		} else {
			s.mu.Lock()
			s.cmd, s.running = cmd, true
			s.mu.Unlock()
			s.cfg.Logger.Info("child started", "path", path, "pid", cmd.Process.Pid)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			var err error
			select {
			case err = <-exited:
			case <-ctx.Done():
				s.stop(cmd, exited)
				return nil
			}
			s.mu.Lock()
			s.running = false
			s.restarts++
			s.lastErr = exitError(err)
			s.mu.Unlock()
			s.cfg.Logger.Warn("child exited; restarting", "path", path, "exit", exitError(err), "after", backoff)
			if time.Since(started) > s.cfg.MaxBackoff {
				backoff = s.cfg.MinBackoff
			}
		}
		first = false
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// stop sends the stop signal, waits StopTimeout, then kills the group.
func (s *Supervisor) stop(cmd *exec.Cmd, exited <-chan error) {
	s.cfg.Logger.Info("stopping child", "pid", cmd.Process.Pid, "signal", s.cfg.StopSignal)
	cmd.Process.Signal(s.cfg.StopSignal)
	t := time.NewTimer(s.cfg.StopTimeout)
	defer t.Stop()
	var err error
	select {
	case err = <-exited:
	case <-t.C:
		s.cfg.Logger.Warn("child did not stop in time; killing it", "pid", cmd.Process.Pid)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-exited
	}
	s.mu.Lock()
	s.running = false
	s.lastErr = exitError(err)
	s.mu.Unlock()
}

func exitError(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

var hupOnce sync.Once

// unignoreHUP makes sure children can be sent SIGHUP (Nomad reloads its
// certificates on it): a child inherits the signals its parent ignores, so
// an agent started with SIGHUP ignored (under nohup, say) would start a
// Nomad that no renewal can reload. Caught instead, SIGHUP stays without
// effect on this process and its children get the default.
func unignoreHUP() {
	if signal.Ignored(syscall.SIGHUP) {
		signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	}
}
