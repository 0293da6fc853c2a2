package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/acl"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/snapshot"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

// Snapshots (internal/snapshot): every server saves Nomad's state,
// streamed from its leader through the local Nomad agent, with its own
// copy of Nomad's keyring and the agent's signed plan and cluster state,
// every snapshot_interval into its snapshots directory, keeping the newest
// snapshot_retain. snapshot save writes one on demand, snapshot restore
// puts one back.

const (
	// snapshotCheckEvery is how often the snapshot loop looks whether a
	// snapshot is due; the first is due as soon as the server's ACLs are
	// set up.
	snapshotCheckEvery = 5 * time.Second
	// snapshotRetryAfter is how long the loop waits after a failed
	// snapshot, rather than a whole interval.
	snapshotRetryAfter = time.Minute
	// SnapshotTimeout bounds snapshot save and restore on the agent.
	SnapshotTimeout = 10 * time.Minute
	// nomadBackTimeout bounds the wait for a restarted Nomad to answer.
	nomadBackTimeout = 2 * time.Minute
)

// snapshotLoop saves the scheduled snapshots until ctx ends. It runs on
// every node but does nothing unless the node is a server with its ACLs
// set up, so that a spare that becomes a server starts saving.
func (a *Agent) snapshotLoop(ctx context.Context) {
	if a.cfg.SnapshotInterval == 0 || !a.cred.IsServer() {
		return
	}
	var retryAt time.Time
	t := time.NewTicker(snapshotCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := a.now()
		if now.Before(retryAt) {
			continue
		}
		if _, err := a.serverReady(); err != nil {
			continue
		}
		if last, err := a.lastSnapshot(); err == nil && !last.IsZero() && now.Sub(last) < a.cfg.SnapshotInterval {
			continue
		}
		ans, err := a.saveSnapshot(ctx, filepath.Join(a.paths.SnapshotsDir(), snapshot.Name(now)))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			retryAt = now.Add(snapshotRetryAfter)
			a.warn("snapshot", fmt.Sprintf("the scheduled snapshot failed; retrying in %s: %v", snapshotRetryAfter, err))
			continue
		}
		a.clearWarning("snapshot")
		a.log.Info("saved the scheduled snapshot", "file", ans.File, "bytes", ans.Size, "keys", ans.Keys)
		removed, err := snapshot.Prune(a.paths.SnapshotsDir(), a.cfg.SnapshotRetain)
		if err != nil {
			a.log.Warn("removing old snapshots", "error", err)
		}
		for _, r := range removed {
			a.log.Info("removed an old snapshot", "file", r, "retain", a.cfg.SnapshotRetain)
		}
	}
}

// lastSnapshot returns when the newest scheduled snapshot was taken; zero
// when there is none.
func (a *Agent) lastSnapshot() (time.Time, error) {
	stored, err := snapshot.List(a.paths.SnapshotsDir())
	if err != nil || len(stored) == 0 {
		return time.Time{}, err
	}
	return stored[len(stored)-1].TakenAt, nil
}

// SnapshotRoute and SnapshotRestoreRoute are the control socket's routes
// of snapshot save and snapshot restore.
const (
	SnapshotRoute        = "/v1/snapshot/save"
	SnapshotRestoreRoute = "/v1/snapshot/restore"
)

// SnapshotRequest is what snapshot save and snapshot restore send to the
// agent: the file, an absolute path.
type SnapshotRequest struct {
	File string `json:"file"`
	// OtherCluster lets snapshot restore take a snapshot of another
	// cluster (-other-cluster).
	OtherCluster bool `json:"other_cluster,omitempty"`
}

// SnapshotAnswer is what snapshot save and snapshot restore report.
type SnapshotAnswer struct {
	File         string    `json:"file"`
	Size         int64     `json:"size"`
	Cluster      string    `json:"cluster"`
	Node         string    `json:"node"` // the server that took it
	TakenAt      time.Time `json:"taken_at"`
	NomadVersion string    `json:"nomad_version,omitempty"`
	// Keys is how many of Nomad's root keys the snapshot holds.
	Keys int `json:"keys"`
	// KeysAdded are the root keys a restore added to this server's
	// keystore, which Nomad was restarted to load.
	KeysAdded []string `json:"keys_added,omitempty"`
	// Before is the snapshot of the state a restore replaced.
	Before string `json:"before,omitempty"`
}

// SaveSnapshot writes a snapshot to file, an absolute path that must not
// exist yet, on a server with its ACLs set up.
func (a *Agent) SaveSnapshot(ctx context.Context, file string) (SnapshotAnswer, error) {
	if !filepath.IsAbs(file) {
		return SnapshotAnswer{}, fmt.Errorf("the snapshot file %q is not an absolute path", file)
	}
	if _, err := os.Lstat(file); err == nil {
		return SnapshotAnswer{}, fmt.Errorf("%s exists already; give a new file name, or remove it first", file)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return SnapshotAnswer{}, err
	}
	return a.saveSnapshot(ctx, file)
}

// saveSnapshot streams Nomad's snapshot into an archive at file with this
// server's keystore, plan and cluster state.
func (a *Agent) saveSnapshot(ctx context.Context, file string) (SnapshotAnswer, error) {
	p, err := a.serverReady()
	if err != nil {
		return SnapshotAnswer{}, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return SnapshotAnswer{}, err
	}
	files, err := snapshot.ReadKeystore(a.paths.NomadKeystoreDir())
	if err != nil {
		return SnapshotAnswer{}, err
	}
	keys := len(files)
	c, secret, err := a.nomadClient(p)
	if err != nil {
		return SnapshotAnswer{}, err
	}
	defer c.Close()
	files = append(files, snapshot.File{Name: snapshot.ManagementEntry, Data: []byte(secret + "\n")})
	for name, path := range map[string]string{snapshot.PlanEntry: a.paths.PlanFile(), snapshot.ClusterStateEntry: a.paths.ClusterStateFile()} {
		if b, err := os.ReadFile(path); err == nil {
			files = append(files, snapshot.File{Name: name, Data: b})
		} else if !errors.Is(err, fs.ErrNotExist) {
			return SnapshotAnswer{}, err
		}
	}
	body, err := c.Operator().Snapshot((&api.QueryOptions{AuthToken: secret}).WithContext(ctx))
	if err != nil {
		return SnapshotAnswer{}, fmt.Errorf("asking Nomad for a snapshot: %w", err)
	}
	defer body.Close()
	m := snapshot.Manifest{Cluster: a.cred.ClusterIDString(), Region: p.Region, Node: a.name, TakenAt: a.now().UTC().Truncate(time.Second)}
	a.mu.Lock()
	if a.nomadSt != nil {
		m.NomadVersion = a.nomadSt.Version
	}
	a.mu.Unlock()
	if m, err = snapshot.Write(file, m, files, body); err != nil {
		return SnapshotAnswer{}, err
	}
	return snapshotAnswer(file, m, keys), nil
}

func snapshotAnswer(file string, m snapshot.Manifest, keys int) SnapshotAnswer {
	return SnapshotAnswer{File: file, Size: m.NomadSize, Cluster: m.Cluster, Node: m.Node, TakenAt: m.TakenAt, NomadVersion: m.NomadVersion, Keys: keys}
}

// RestoreSnapshot puts the snapshot at file, an absolute path, back into
// Nomad: the whole file is checked first, and the state it replaces is
// saved as a scheduled snapshot; root keys of the snapshot that this
// server's keystore lacks are added and Nomad restarted to load them;
// Nomad's state is replaced by the snapshot's; and this tool's own
// Variables are put back as they were, so that the cluster state and the
// keys the agents rotated are not rolled back. A snapshot of another
// cluster is restored only with otherCluster, on the CA holder: its ACL
// tokens replace this cluster's, so the holder takes the snapshot's
// management token and hands it to the other servers in their escrows.
func (a *Agent) RestoreSnapshot(ctx context.Context, file string, otherCluster bool) (SnapshotAnswer, error) {
	if !filepath.IsAbs(file) {
		return SnapshotAnswer{}, fmt.Errorf("the snapshot file %q is not an absolute path", file)
	}
	p, err := a.serverReady()
	if err != nil {
		return SnapshotAnswer{}, err
	}
	f, err := os.Open(file)
	if err != nil {
		return SnapshotAnswer{}, err
	}
	defer f.Close()
	arc, err := snapshot.Read(f, nil)
	if err != nil {
		return SnapshotAnswer{}, fmt.Errorf("%s: %w", file, err)
	}
	m := arc.Manifest
	var adopt string // the snapshot's management token, for another cluster
	switch {
	case m.Cluster == a.cred.ClusterIDString():
	case !otherCluster:
		return SnapshotAnswer{}, fmt.Errorf("%s is a snapshot of cluster %s, taken on %s; this is cluster %s. Restoring it replaces this cluster's ACL tokens with the snapshot's: to do so, run snapshot restore -other-cluster on the CA holder",
			file, m.Cluster, m.Node, a.cred.ClusterIDString())
	case p.CAHolder != a.id:
		return SnapshotAnswer{}, fmt.Errorf("restoring a snapshot of another cluster hands its management token to the servers in their escrows: run it on the CA holder, %s", p.CAHolderName())
	case m.Region != p.Region:
		return SnapshotAnswer{}, fmt.Errorf("%s is a snapshot of Nomad region %q; this cluster's region is %q", file, m.Region, p.Region)
	default:
		b, ok := arc.File(snapshot.ManagementEntry)
		if adopt = strings.TrimSpace(string(b)); !ok || !acl.IsSecretID(adopt) {
			return SnapshotAnswer{}, fmt.Errorf("%s holds no management token, without which this cluster's servers cannot use Nomad once its ACL tokens are replaced", file)
		}
	}
	ans := snapshotAnswer(file, m, len(arc.Keystore()))
	beforePath := filepath.Join(a.paths.SnapshotsDir(), snapshot.Name(a.now()))
	if beforePath == filepath.Clean(file) {
		// The file being restored was taken this very second: keep it.
		beforePath = filepath.Join(a.paths.SnapshotsDir(), snapshot.Name(a.now().Add(time.Second)))
	}
	before, err := a.saveSnapshot(ctx, beforePath)
	if err != nil {
		return SnapshotAnswer{}, fmt.Errorf("saving the current state before the restore: %w", err)
	}
	ans.Before = before.File
	c, secret, err := a.nomadClient(p)
	if err != nil {
		return SnapshotAnswer{}, err
	}
	defer c.Close()
	own, err := readOwnVars(c, secret)
	if err != nil {
		return SnapshotAnswer{}, fmt.Errorf("reading this tool's Variables before the restore: %w", err)
	}
	if ans.KeysAdded, err = snapshot.InstallKeystore(a.paths.NomadKeystoreDir(), arc); err != nil {
		return SnapshotAnswer{}, err
	}
	if len(ans.KeysAdded) > 0 {
		a.log.Info("added the snapshot's root keys to Nomad's keystore; restarting Nomad to load them", "keys", len(ans.KeysAdded))
		if err := a.restartNomad(ctx, p); err != nil {
			return SnapshotAnswer{}, err
		}
	}
	// A server that just restarted, or whose peer did, may answer the
	// first forwarded call on a pooled connection with Nomad's stale
	// connection error (hashicorp/nomad#4413); restoring the same snapshot
	// again is harmless.
	for attempt := 1; ; attempt++ {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return SnapshotAnswer{}, err
		}
		_, err = snapshot.Read(f, func(r io.Reader) error {
			if _, err := c.Operator().SnapshotRestore(r, (&api.WriteOptions{AuthToken: secret}).WithContext(ctx)); err != nil {
				return fmt.Errorf("restoring the snapshot into Nomad: %w", err)
			}
			return nil
		})
		if err == nil || attempt == restoreAttempts || !staleConnection(err) {
			break
		}
		a.log.Info("Nomad answered the restore with a stale connection's error; trying again", "error", err, "attempt", attempt)
		select {
		case <-ctx.Done():
			return SnapshotAnswer{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		return SnapshotAnswer{}, err
	}
	a.log.Info("restored a snapshot", "file", file, "taken_at", m.TakenAt, "taken_on", m.Node, "cluster", m.Cluster)
	if adopt != "" {
		if err := a.adoptManagement(adopt); err != nil {
			return ans, err
		}
		secret = adopt
		a.mu.Lock()
		ca := a.ca
		a.mu.Unlock()
		if ca != nil {
			a.escrowCA(ca, p)
		}
	}
	if err := writeOwnVars(ctx, c, secret, own); err != nil {
		return ans, fmt.Errorf("the snapshot is restored, but this tool's Variables could not be put back (the servers write the cluster state back on their own): %w", err)
	}
	return ans, nil
}

// restoreAttempts bounds the restores tried after a stale connection's
// error.
const restoreAttempts = 3

// staleConnection reports whether err is Nomad's answer when a server's
// pooled RPC connection to another was closed at the other end: EOF, or
// yamux's equivalents, which Nomad's own pool treats as EOF.
func staleConnection(err error) bool {
	msg := err.Error()
	for _, s := range []string{"EOF", "session shutdown", "stream closed", "broken pipe", "connection reset by peer"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// adoptManagement makes secret the management token this server uses, and
// has the pipeline set Nomad's ACLs up again with it.
func (a *Agent) adoptManagement(secret string) error {
	a.mgmtMu.Lock()
	err := acl.StoreTokens(a.paths.ACLDir(), map[string]string{acl.ManagementTokenName: secret})
	a.mgmtMu.Unlock()
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.aclState = aclPending
	a.mu.Unlock()
	a.log.Info("took the management token the escrow or the restored snapshot holds; setting Nomad's ACLs up with it")
	return nil
}

// ownVarsPrefix is the prefix of this tool's Nomad Variables (the cluster
// state, Nomad's and the agents' gossip keys).
const ownVarsPrefix = "nomad-bootstrapd/"

// readOwnVars returns this tool's Variables.
func readOwnVars(c *api.Client, secret string) ([]*api.Variable, error) {
	q := &api.QueryOptions{AuthToken: secret, Namespace: api.DefaultNamespace}
	list, _, err := c.Variables().PrefixList(ownVarsPrefix, q)
	if err != nil {
		return nil, err
	}
	var out []*api.Variable
	for _, meta := range list {
		v, _, err := c.Variables().Read(meta.Path, q)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ownVarsWait bounds how long writeOwnVars retries: right after a restore
// the leader may still be fetching the snapshot's root keys.
const ownVarsWait = time.Minute

// writeOwnVars makes this tool's Variables own again: it writes each and
// deletes the others the restored state holds under the prefix.
func writeOwnVars(ctx context.Context, c *api.Client, secret string, own []*api.Variable) error {
	ctx, cancel := context.WithTimeout(ctx, ownVarsWait)
	defer cancel()
	var err error
	for {
		if err = putOwnVars(ctx, c, secret, own); err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}

func putOwnVars(ctx context.Context, c *api.Client, secret string, own []*api.Variable) error {
	w := (&api.WriteOptions{AuthToken: secret, Namespace: api.DefaultNamespace}).WithContext(ctx)
	keep := map[string]bool{}
	for _, v := range own {
		keep[v.Path] = true
		if _, _, err := c.Variables().Create(&api.Variable{Namespace: v.Namespace, Path: v.Path, Items: v.Items}, w); err != nil {
			return fmt.Errorf("writing %s: %w", v.Path, err)
		}
	}
	list, _, err := c.Variables().PrefixList(ownVarsPrefix, (&api.QueryOptions{AuthToken: secret, Namespace: api.DefaultNamespace}).WithContext(ctx))
	if err != nil {
		return err
	}
	for _, meta := range list {
		if !keep[meta.Path] {
			if _, err := c.Variables().Delete(meta.Path, w); err != nil {
				return fmt.Errorf("deleting the snapshot's %s: %w", meta.Path, err)
			}
		}
	}
	return nil
}

// restartNomad has the pipeline restart this server's Nomad, then waits
// until its API answers.
func (a *Agent) restartNomad(ctx context.Context, p plan.Plan) error {
	done := make(chan error, 1)
	select {
	case a.nomadRestart <- done:
	case <-time.After(nomadBackTimeout):
		return errors.New("restarting Nomad: this agent is not running Nomad's pipeline")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("restarting Nomad: %w", err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	wait, cancel := context.WithTimeout(ctx, nomadBackTimeout)
	defer cancel()
	for {
		c, secret, err := a.nomadClient(p)
		if err == nil {
			_, _, err = c.ACLTokens().Self((&api.QueryOptions{AuthToken: secret}).WithContext(wait))
			c.Close()
		}
		if err == nil {
			return nil
		}
		select {
		case <-wait.Done():
			return fmt.Errorf("no answer from Nomad within %s of its restart: %v", nomadBackTimeout, err)
		case <-time.After(time.Second):
		}
	}
}

// snapshotStatusLocked returns the scheduled snapshots' status on a
// server; nil elsewhere. a.mu is held.
func (a *Agent) snapshotStatusLocked(stored []snapshot.Stored) *status.SnapshotStatus {
	if a.plan == nil || !a.plan.IsServer(a.id) || !a.cred.IsServer() {
		return nil
	}
	s := &status.SnapshotStatus{Dir: a.paths.SnapshotsDir(), Interval: a.cfg.SnapshotInterval.String(), Retain: a.cfg.SnapshotRetain, Kept: len(stored)}
	if a.cfg.SnapshotInterval == 0 {
		s.Interval = "off"
	}
	if n := len(stored); n > 0 {
		last := stored[n-1]
		s.Last, s.LastFile, s.LastSize = last.TakenAt, last.Path, last.Size
		if a.cfg.SnapshotInterval > 0 {
			s.Next = last.TakenAt.Add(a.cfg.SnapshotInterval)
		}
	}
	return s
}
