package nomadrun

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPeers(t *testing.T) {
	dir := t.TempDir()
	peers := []RaftPeer{{ID: "0f4e2c3a-1b2c-4d5e-8f90-a1b2c3d4e5f6", Address: "10.0.0.1:4647"}}
	if err := WritePeers(dir, peers); err == nil || !strings.Contains(err.Error(), "no Raft state") {
		t.Errorf("WritePeers without Raft state: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "server", "raft"), 0o700)
	if err := WritePeers(dir, nil); err == nil {
		t.Error("WritePeers of no peers succeeded")
	}
	if err := WritePeers(dir, peers); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(PeersFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	// The form Nomad's outage guide gives for Raft protocol 3.
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil || len(got) != 1 || got[0]["id"] != peers[0].ID || got[0]["address"] != "10.0.0.1:4647" || got[0]["non_voter"] != false {
		t.Errorf("peers.json: %s (%v)", b, err)
	}
	if fi, _ := os.Stat(PeersFile(dir)); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}

	if _, err := ServerNodeID(dir); err == nil {
		t.Error("ServerNodeID without a node-id file succeeded")
	}
	os.WriteFile(filepath.Join(dir, "server", "node-id"), []byte("0F4E2C3A-1B2C-4D5E-8F90-A1B2C3D4E5F6\n"), 0o600)
	if id, err := ServerNodeID(dir); err != nil || id != peers[0].ID {
		t.Errorf("ServerNodeID = %q, %v", id, err)
	}
	os.WriteFile(filepath.Join(dir, "server", "node-id"), []byte("nope"), 0o600)
	if _, err := ServerNodeID(dir); err == nil {
		t.Error("ServerNodeID of a bad ID succeeded")
	}
}
