package nomadkeys

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/hashicorp/nomad/api"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
)

// KeyringFile is where Nomad keeps a server's gossip keyring, under its
// data_dir: a JSON list of keys, the one it encrypts with first. Nomad
// reads it at start, in preference to server.encrypt, and rewrites it with
// every keyring change.
const KeyringFile = "server/serf.keyring"

// Fingerprint names a key in logs and errors without giving it away: the
// first 8 hex characters of its SHA-256.
func Fingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:4])
}

// WriteFile makes the keyring file under Nomad's data directory hold k's
// ring, for a server whose Nomad is not running yet or not gossiping: one
// that was down through a rotation, or is new. A file that already holds
// the current key is left alone, since Nomad keeps it itself. It reports
// whether it wrote the file.
func WriteFile(dataDir string, k Keys, initial string) (bool, error) {
	path := filepath.Join(dataDir, KeyringFile)
	ring := k.Ring(initial)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var held []string
		if json.Unmarshal(b, &held) == nil && slices.Contains(held, k.key(initial)) {
			return false, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("nomadkeys: reading Nomad's keyring: %w", err)
	}
	if body, err := json.Marshal(ring); err == nil && bytes.Equal(b, body) {
		return false, nil
	}
	if err := Replace(dataDir, k, initial); err != nil {
		return false, err
	}
	return true, nil
}

// Replace writes k's ring to the keyring file under Nomad's data
// directory whatever it holds, for a Nomad about to be restarted.
func Replace(dataDir string, k Keys, initial string) error {
	path := filepath.Join(dataDir, KeyringFile)
	body, err := json.Marshal(k.Ring(initial))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("nomadkeys: %w", err)
	}
	return atomicfile.WriteFile(path, body, 0o600)
}

// Current reports whether the keyring file under Nomad's data directory
// shows a server up to k: past installing, encrypting with the current key
// and, once the rotation is done, without the previous one. A missing or
// unreadable file is not current.
func Current(dataDir string, k Keys, initial string) bool {
	if k.Phase == PhaseInstall {
		return true
	}
	b, err := os.ReadFile(filepath.Join(dataDir, KeyringFile))
	if err != nil {
		return false
	}
	var held []string
	if json.Unmarshal(b, &held) != nil || len(held) == 0 || held[0] != k.key(initial) {
		return false
	}
	prev := k.previous(initial)
	return k.Phase == PhaseUse || prev == held[0] || !slices.Contains(held, prev)
}

// Heal brings the Nomad servers that local reaches up to k when the
// rotation to k is past installing and some of them lack the current key,
// or, once it is done, still hold the previous one: a server that was down
// or cut off while the others rotated, whose own agent calls Heal through
// its local Nomad. It reports what it did, "" for nothing.
func Heal(local Keyring, k Keys, initial string) (string, error) {
	if k.Phase == PhaseInstall {
		return "", nil
	}
	resp, err := local.ListKeys()
	if err != nil {
		return "", fmt.Errorf("nomadkeys: listing Nomad's gossip keys: %w", err)
	}
	cur := k.key(initial)
	did := ""
	if resp.Keys[cur] < resp.NumNodes {
		if _, err := call(local.InstallKey, cur, "installing"); err != nil {
			return "", err
		}
		if _, err := call(local.UseKey, cur, "switching to"); err != nil {
			return "", err
		}
		did = "installed and switched to generation " + fmt.Sprint(k.Generation)
		if resp, err = local.ListKeys(); err != nil {
			return did, fmt.Errorf("nomadkeys: listing Nomad's gossip keys: %w", err)
		}
	}
	// Only the previous generation's key, never a key this node does not
	// know: another server may be installing the next one.
	if prev := k.previous(initial); k.Phase == PhaseDone && prev != cur && resp.Keys[prev] > 0 {
		if _, err := call(local.RemoveKey, prev, "removing the old key after switching to"); err != nil {
			return did, err
		}
		if did != "" {
			did += "; "
		}
		did += "removed the previous generation's key"
	}
	return did, nil
}

// removeOthers removes every key but cur that resp lists, and returns how
// many it removed.
func removeOthers(kr Keyring, resp *api.KeyringResponse, cur string) (int, error) {
	n := 0
	for _, key := range slices.Sorted(maps.Keys(resp.Keys)) {
		if key == cur {
			continue
		}
		if _, err := call(kr.RemoveKey, key, "removing an old key after switching to"); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
