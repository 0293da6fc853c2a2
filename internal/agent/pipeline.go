package agent

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/install"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadrun"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/systemd"
)

// runPipeline takes the node from a committed plan to a running Nomad agent:
// certificates, configuration, start, then it watches Nomad's health and
// renews certificates for as long as ctx lasts. A step that fails is
// retried, with the node degraded under the step's cause until it succeeds.
func (a *Agent) runPipeline(ctx context.Context, p plan.Plan) {
	if p.CAHolder == a.id && !a.retryDegraded(ctx, causeCA, func() error { return a.startCA(ctx, p) }) {
		return
	}
	var renewAt time.Time
	var certsChanged bool
	if !a.retry(ctx, "obtaining certificates", func() error {
		var err error
		certsChanged, renewAt, err = a.certify(ctx, p)
		return err
	}) {
		return
	}
	a.advance(status.PhaseCertified)

	// A node that starts Nomad starts the version a rolling upgrade
	// reached.
	upgraded := a.cfg.Supervise != config.SuperviseNone && a.convergeNomad(ctx, p)
	runningVersion := a.nomad.Features().Version
	var upgradeRetry time.Time

	var files []nomadconf.File
	if !a.retryDegraded(ctx, causeRender, func() (err error) {
		if files, err = nomadconf.Render(a.nomad.Agent(p)); err != nil {
			return fmt.Errorf("rendering Nomad's configuration: %w", err)
		}
		return nil
	}) {
		return
	}
	var changes []install.Change
	if !a.retryDegraded(ctx, causeWriteConfig, func() (err error) {
		if changes, err = install.Apply(a.paths.NomadConfigDir(), files); err != nil {
			return fmt.Errorf("writing Nomad's configuration: %w", err)
		}
		return nil
	}) {
		return
	}
	for _, c := range changes {
		a.log.Info("nomad configuration", "action", c.Action, "path", c.Path)
	}
	if p.IsServer(a.id) && !a.retryDegraded(ctx, causeProfile, func() error {
		if _, err := a.writeProfile(); err != nil {
			return fmt.Errorf("writing the shell profile: %w", err)
		}
		return nil
	}) {
		return
	}
	a.advance(status.PhaseConfigured)

	var sup *nomadrun.Process
	var units *systemd.Manager
	unit := ""
	// Clients start Nomad only once the servers have a leader with a keyring.
	if a.cfg.Supervise != config.SuperviseNone && !p.IsServer(a.id) && !a.waitServers(ctx, p) {
		return
	}
	if a.cfg.Supervise != config.SuperviseNone {
		a.prepareNomadKeyring(ctx, p)
	}
	switch a.cfg.Supervise {
	case config.SuperviseNone:
		a.setReason("Nomad's configuration is written; supervise=none starts nothing")
	case config.SuperviseSystemd:
		if !a.retryDegraded(ctx, causeNomadStart, func() (err error) {
			units, err = a.nomad.StartUnit(ctx, len(changes) > 0 || certsChanged || upgraded)
			return err
		}) {
			return
		}
		defer units.Close()
		unit = systemd.NomadService
		a.advance(status.PhaseStarting)
	case config.SuperviseProcess:
		var stopped <-chan struct{}
		if !a.retryDegraded(ctx, causeNomadStart, func() (err error) {
			sup, stopped, err = a.startNomad(ctx)
			return err
		}) {
			return
		}
		// A pipeline that restarts for a new role starts the next Nomad
		// only once this one has stopped.
		defer func() { <-stopped }()
		unit = "process"
		a.advance(status.PhaseStarting)
	}

	// Look often until Nomad runs, then every Timings.PipelineCalm; with nothing
	// to start (supervise none), only renewals and successor plans to
	// watch, at the calmer pace from the start.
	var wantedCA time.Time
	hash := p.Hash()
	renew := renewal{min: a.tm.StepRetryMin, max: a.tm.StepRetryMax}
	var caSeen clusterstate.CA
	restart := func() error {
		switch {
		case sup != nil:
			return sup.Signal(syscall.SIGINT) // the supervisor starts it again
		case units != nil:
			return units.Restart(ctx, systemd.NomadService)
		}
		return errors.New("this agent does not run Nomad (supervise = none): restart Nomad yourself, then try again")
	}
	t := time.NewTimer(a.tm.PipelineFast)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case done := <-a.nomadRestart:
			done <- restartAndWait(ctx, sup, restart)
			continue
		}
		a.mu.Lock()
		running := a.st.Phase() == status.PhaseRunning
		a.mu.Unlock()
		if running || (sup == nil && units == nil) {
			t.Reset(a.tm.PipelineCalm)
		} else {
			t.Reset(a.tm.PipelineFast)
		}
		// A step of a CA rotation is taken at once: the bundle changes,
		// or certificates from the old CA are renewed.
		if rec := a.caRecord(); !rec.SameStep(caSeen) {
			caSeen, renewAt = rec, a.now()
			renew = renewal{min: a.tm.StepRetryMin, max: a.tm.StepRetryMax}
		}
		if now := a.now(); renew.due(renewAt, now) {
			changed, next, err := a.certify(ctx, p)
			if err != nil {
				if renew.failed(now) {
					a.log.Warn("renewing certificates; retrying", "error", err, "failures", renew.fails, "next_after", renew.backoff)
				}
			} else {
				if n := renew.succeeded(); n > 0 {
					a.log.Info("certificates renewed after failures", "failures", n)
				}
				renewAt = next
				if changed && sup != nil {
					a.log.Info("certificates renewed; reloading Nomad")
					sup.Signal(syscall.SIGHUP)
				}
				if changed && units != nil {
					a.log.Info("certificates renewed; reloading Nomad")
					if err := units.Reload(ctx, systemd.NomadService); err != nil {
						a.log.Warn("reloading nomad.service", "error", err)
					}
				}
			}
		}
		if next, ok := a.successorOf(p); ok {
			p = a.followSuccessor(ctx, p, next)
		}
		a.maybeTakeOverCA(ctx, p)
		a.maybeServeKeys(ctx, p)
		a.maybeWantCA(p, hash, &wantedCA)
		var st status.NomadStatus
		var warns []nomadrun.Warning
		switch {
		case sup != nil:
			st, warns = a.nomad.Health(ctx, p, fmt.Sprintf("%s (pid %d)", unit, sup.PID()))
		case units != nil:
			active, sub, _, _ := units.State(ctx, systemd.NomadService)
			st, warns = a.nomad.Health(ctx, p, fmt.Sprintf("%s (%s/%s)", unit, active, sub))
		default:
			continue
		}
		a.nomadWarnings(warns)
		a.mu.Lock()
		a.nomadSt = &st
		aclState := a.aclState
		a.mu.Unlock()
		if p.IsServer(a.id) && st.Leader != "" && aclState != aclReady && aclState != aclElsewhere {
			state, err := a.setupACL(ctx, p)
			a.mu.Lock()
			a.aclState = state
			a.mu.Unlock()
			switch {
			case state == aclElsewhere:
				a.degrade(causeACL, err.Error())
			case err != nil:
				a.log.Info("ACL setup not done yet; retrying", "reason", err)
			default:
				a.recover(causeACL)
			}
			aclState = state
		}
		if aclState == aclReady {
			a.syncClusterState(ctx, p)
		}
		a.healNomadKeys(ctx, p, st.Leader != "", restart)
		a.followUpgrade(ctx, p, sup, units, restart, &runningVersion, &upgradeRetry)
		a.mu.Lock()
		switch {
		case st.Healthy && (!p.IsServer(a.id) || aclState == aclReady):
			a.moveLocked(status.PhaseRunning, "")
		case st.Healthy:
			a.moveLocked(status.PhaseStarting, "waiting for Nomad's ACLs to be bootstrapped")
		case a.st.Phase() == status.PhaseRunning:
			a.moveLocked(status.PhaseStarting, "Nomad is not healthy")
		}
		a.mu.Unlock()
	}
}

// restartAndWait restarts Nomad with restart and, when this agent runs it
// as its child, waits until the supervisor has started the next process,
// at most nomadBackTimeout. systemd's restart job returns once the unit
// started again.
func restartAndWait(ctx context.Context, sup *nomadrun.Process, restart func() error) error {
	var old int
	if sup != nil {
		old = sup.PID()
	}
	if err := restart(); err != nil || sup == nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, nomadBackTimeout)
	defer cancel()
	for {
		if pid := sup.PID(); pid != 0 && pid != old {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the supervisor did not start Nomad again within %s of stopping pid %d", nomadBackTimeout, old)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startNomad runs Nomad as this agent's child until ctx ends; stopped is
// closed once the child has stopped. While the child cannot be run the
// node is degraded.
func (a *Agent) startNomad(ctx context.Context) (proc *nomadrun.Process, stopped <-chan struct{}, err error) {
	if proc, err = a.nomad.Process(); err != nil {
		return nil, nil, err
	}
	// The supervisor of the previous pipeline, if any, has stopped.
	a.recover(causeNomadRun)
	done := make(chan struct{})
	a.bg.Go(func() {
		defer close(done)
		if err := proc.Run(ctx); err != nil {
			a.degrade(causeNomadRun, err.Error())
		}
	})
	return proc, done, nil
}

// waitServers waits until the servers are ready for a client
// (nomadrun.Runner.ServersReady).
func (a *Agent) waitServers(ctx context.Context, p plan.Plan) bool {
	var caSeen clusterstate.CA
	renew := renewal{min: a.tm.StepRetryMin, max: a.tm.StepRetryMax}
	for {
		// A node that was away through a CA rotation reaches the servers
		// only with the bundle and certificates the rotation left.
		now := a.now()
		if rec := a.caRecord(); !rec.SameStep(caSeen) && renew.due(now, now) {
			if _, _, err := a.certify(ctx, p); err != nil {
				if renew.failed(now) {
					a.log.Warn("following the CA rotation; retrying", "error", err, "next_after", renew.backoff)
				}
			} else {
				renew.succeeded()
				caSeen = rec
			}
		}
		ok, why := a.nomad.ServersReady(ctx, p)
		if ok {
			return true
		}
		a.setReason("waiting for the Nomad servers: " + why)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(a.tm.PipelineFast):
		}
	}
}
