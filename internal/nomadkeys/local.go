package nomadkeys

import (
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
	held, err := heldKeys(dataDir)
	switch {
	case err == nil && slices.Contains(held, k.key(initial)):
		return false, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("nomadkeys: reading Nomad's keyring: %w", err)
	}
	if err := Replace(dataDir, k, initial); err != nil {
		return false, err
	}
	return true, nil
}

// heldKeys returns the keys Nomad's keyring file under dataDir holds; a
// file that does not parse holds none.
func heldKeys(dataDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, KeyringFile))
	if err != nil {
		return nil, err
	}
	var held []string
	json.Unmarshal(b, &held)
	return held, nil
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
	held, err := heldKeys(dataDir)
	if err != nil || len(held) == 0 || held[0] != k.key(initial) {
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
	resp, err := list(local)
	if err != nil {
		return "", err
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
		if resp, err = list(local); err != nil {
			return did, err
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

// list lists the keys of the servers kr reaches.
func list(kr Keyring) (*api.KeyringResponse, error) {
	resp, err := kr.ListKeys()
	if err != nil {
		return nil, fmt.Errorf("nomadkeys: listing Nomad's gossip keys: %w", err)
	}
	return resp, nil
}

// removeOthers removes from the servers kr reaches every key but cur that
// they list.
func removeOthers(kr Keyring, cur string) error {
	resp, err := list(kr)
	if err != nil {
		return err
	}
	for _, key := range slices.Sorted(maps.Keys(resp.Keys)) {
		if key == cur {
			continue
		}
		if _, err := call(kr.RemoveKey, key, "removing an old key after switching to"); err != nil {
			return err
		}
	}
	return nil
}
