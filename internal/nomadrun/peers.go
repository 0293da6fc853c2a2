package nomadrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
)

// RaftPeer is one entry of Nomad's raft/peers.json in the form of Raft
// protocol 3, Nomad 1.6's default: the file Nomad's outage recovery reads
// once, at its next start, to replace the servers its Raft knows.
type RaftPeer struct {
	ID       string `json:"id"`      // the server's node ID
	Address  string `json:"address"` // its RPC address, host:4647
	NonVoter bool   `json:"non_voter"`
}

// PeersFile is where a Nomad server under dataDir (its data_dir) looks for
// peers.json.
func PeersFile(dataDir string) string { return filepath.Join(dataDir, "server", "raft", "peers.json") }

// ServerNodeID returns the node ID a Nomad server under dataDir keeps in
// <data_dir>/server/node-id, which Raft knows it by.
func ServerNodeID(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "server", "node-id"))
	if err != nil {
		return "", fmt.Errorf("nomadrun: reading the Nomad server's node ID: %w", err)
	}
	id := strings.ToLower(strings.TrimSpace(string(b)))
	if _, err := uuid.Parse(id); err != nil {
		return "", fmt.Errorf("nomadrun: the Nomad server's node ID %q is not a UUID", id)
	}
	return id, nil
}

// WritePeers writes peers.json for the Nomad server under dataDir,
// atomically and 0600; Nomad reads it at its next start and deletes it.
// The server's Raft directory must exist: only a server that ran keeps
// state to recover.
func WritePeers(dataDir string, peers []RaftPeer) error {
	if len(peers) == 0 {
		return errors.New("nomadrun: peers.json needs at least one server")
	}
	path := PeersFile(dataDir)
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return fmt.Errorf("nomadrun: this Nomad server has no Raft state to recover: %w", err)
	}
	b, err := json.MarshalIndent(peers, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("nomadrun: writing peers.json: %w", err)
	}
	return nil
}
