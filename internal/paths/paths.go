// Package paths names every file and directory nomad-bootstrapd reads or
// writes on a node, relative to a root that is "/" in production and a
// temporary directory in tests and the demo.
package paths

import "path/filepath"

// Paths resolves the node's file layout under Root.
type Paths struct {
	Root string // "" or "/" for the real system
}

// New returns the layout under root ("" means "/").
func New(root string) Paths {
	if root == "" {
		root = "/"
	}
	return Paths{Root: root}
}

func (p Paths) join(elem ...string) string {
	return filepath.Join(append([]string{p.Root}, elem...)...)
}

// ConfigDir is /etc/nomad-bootstrapd.
func (p Paths) ConfigDir() string { return p.join("etc", "nomad-bootstrapd") }

// ConfigFile is the agent configuration, /etc/nomad-bootstrapd/config.hcl.
func (p Paths) ConfigFile() string { return p.join("etc", "nomad-bootstrapd", "config.hcl") }

// StateDir holds the node's persistent state, /var/lib/nomad-bootstrapd.
func (p Paths) StateDir() string { return p.join("var", "lib", "nomad-bootstrapd") }

// NodeIDFile holds the node's stable ID.
func (p Paths) NodeIDFile() string { return filepath.Join(p.StateDir(), "node-id") }

// IdentityKeyFile holds the node's identity key (0600).
func (p Paths) IdentityKeyFile() string { return filepath.Join(p.StateDir(), "identity.key") }

// AdmissionFile holds the admission the CA returned to a node that joined
// with a client token (0600).
func (p Paths) AdmissionFile() string { return filepath.Join(p.StateDir(), "admission") }

// LockFile is held locked by the running agent, so that two agents never
// share a state directory.
func (p Paths) LockFile() string { return filepath.Join(p.StateDir(), "agent.lock") }

// PlanFile holds the committed plan.
func (p Paths) PlanFile() string { return filepath.Join(p.StateDir(), "plan.json") }

// ClusterStateFile is the signed cluster state (internal/clusterstate) the
// node holds.
func (p Paths) ClusterStateFile() string { return filepath.Join(p.StateDir(), "cluster-state.json") }

// GossipKeysFile is the agents' gossip keyring (0600), once the cluster
// rotated its key.
func (p Paths) GossipKeysFile() string { return filepath.Join(p.StateDir(), "gossip-keys.json") }

// VoteFile is where the agent keeps its vote in the agreement protocol.
func (p Paths) VoteFile() string { return filepath.Join(p.StateDir(), "vote.json") }

// RunDir is /run/nomad-bootstrapd.
func (p Paths) RunDir() string { return p.join("run", "nomad-bootstrapd") }

// Socket is the agent's control socket, /run/nomad-bootstrapd/agent.sock.
func (p Paths) Socket() string { return filepath.Join(p.RunDir(), "agent.sock") }

// NomadConfigDir is Nomad's configuration directory, /etc/nomad.d.
func (p Paths) NomadConfigDir() string { return p.join("etc", "nomad.d") }

// NomadTLSDir holds Nomad's TLS material, /etc/nomad.d/tls.
func (p Paths) NomadTLSDir() string { return p.join("etc", "nomad.d", "tls") }

// CADir holds the cluster CA on the CA holder and the escrowed CA key on the
// other servers, /var/lib/nomad-bootstrapd/ca (0700).
func (p Paths) CADir() string { return filepath.Join(p.StateDir(), "ca") }

// NomadDataDir is Nomad's data_dir, /opt/nomad/data as in the official package.
func (p Paths) NomadDataDir() string { return p.join("opt", "nomad", "data") }

// NomadKeystoreDir is where a Nomad server keeps its root keys, the
// keyring that Variables are encrypted with: <data_dir>/server/keystore.
func (p Paths) NomadKeystoreDir() string {
	return filepath.Join(p.NomadDataDir(), "server", "keystore")
}

// SnapshotsDir holds a server's scheduled snapshots (internal/snapshot).
func (p Paths) SnapshotsDir() string { return filepath.Join(p.StateDir(), "snapshots") }

// NomadLog receives Nomad's output when the agent runs Nomad as its child.
func (p Paths) NomadLog() string { return filepath.Join(p.StateDir(), "nomad.log") }

// ProfileScript sets the Nomad CLI's environment for root's login shells on
// servers, /etc/profile.d/nomad-bootstrapd.sh (0600: root only).
func (p Paths) ProfileScript() string { return p.join("etc", "profile.d", "nomad-bootstrapd.sh") }

// ACLDir holds the ACL tokens on servers, /var/lib/nomad-bootstrapd/acl (0700).
func (p Paths) ACLDir() string { return filepath.Join(p.StateDir(), "acl") }

// SystemdDir is where units installed by the agent go, /etc/systemd/system.
func (p Paths) SystemdDir() string { return p.join("etc", "systemd", "system") }

// Under relocates an absolute path under the root.
func (p Paths) Under(path string) string { return p.join(path) }
