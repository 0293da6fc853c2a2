// Package systemd renders and installs the unit files of nomad-bootstrapd and
// Nomad, drives the system's service manager over D-Bus, and tells systemd
// when the agent is ready.
//
// Everything here is a thin layer over github.com/coreos/go-systemd/v22: unit
// files are written with unit.Serialize, the service manager is driven with
// the *Context methods of its dbus package, and readiness is sent with
// daemon.SdNotify, which does nothing outside systemd. Consumers that need to
// fake the service manager define their own small interface over *Manager.
package systemd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
)

// Unit names.
const (
	NomadService = "nomad.service"            // Nomad's agent
	AgentService = "nomad-bootstrapd.service" // this agent
)

// Directories systemd loads system unit files from.
const (
	// EtcDir holds units written by the administrator, and by
	// nomad-bootstrapd when no package shipped nomad.service.
	EtcDir = "/etc/systemd/system"
	// UsrLibDir holds units shipped by packages.
	UsrLibDir = "/usr/lib/systemd/system"
	// LibDir holds units shipped by packages on systems without a merged /usr.
	LibDir = "/lib/systemd/system"
)

const (
	// nomadHeader opens the nomad.service that nomad-bootstrapd writes.
	nomadHeader = "# Managed by nomad-bootstrapd: local changes are overwritten.\n" +
		"# Override settings in a drop-in instead: systemctl edit nomad\n"
	// agentHeader opens the unit shipped in the package.
	agentHeader = "# nomad-bootstrapd: joins this machine to a Nomad cluster and runs Nomad.\n" +
		"# Override settings in a drop-in: systemctl edit nomad-bootstrapd\n"
)

// NomadUnit returns nomad.service as HashiCorp's package ships it, running
// the nomad binary at nomadPath with the configuration directory configDir
// (/usr/bin/nomad and /etc/nomad.d in production). nomad.env in configDir is
// read when it exists. notify makes it Type=notify, for a Nomad that tells
// systemd when it is ready (1.8 and newer); an older Nomad never does, and
// a notify unit would sit in "activating" until systemd's start timeout
// fails it, so its unit is Type=simple.
func NomadUnit(nomadPath, configDir string, notify bool) []byte {
	typ := "simple"
	if notify {
		typ = "notify"
	}
	opts := []*unit.UnitOption{
		{Section: "Unit", Name: "Description", Value: "Nomad"},
		{Section: "Unit", Name: "Documentation", Value: "https://developer.hashicorp.com/nomad/docs"},
		{Section: "Unit", Name: "Wants", Value: "network-online.target"},
		{Section: "Unit", Name: "After", Value: "network-online.target"},

		// Nomad clients must run as root; servers could run as a nomad
		// user, but one node may be both.
		{Section: "Service", Name: "User", Value: "root"},
		{Section: "Service", Name: "Group", Value: "root"},
		{Section: "Service", Name: "Type", Value: typ},
		{Section: "Service", Name: "EnvironmentFile", Value: "-" + escapeSpecifiers(filepath.Join(configDir, "nomad.env"))},
		{Section: "Service", Name: "ExecReload", Value: "/bin/kill -HUP $MAINPID"},
		{Section: "Service", Name: "ExecStart", Value: execLine(nomadPath, "agent", "-config", configDir)},
		// Stopping Nomad must not kill the tasks it runs (raw_exec, exec):
		// only the agent gets the signal, and SIGINT makes it leave gracefully.
		{Section: "Service", Name: "KillMode", Value: "process"},
		{Section: "Service", Name: "KillSignal", Value: "SIGINT"},
		{Section: "Service", Name: "LimitNOFILE", Value: "65536"},
		{Section: "Service", Name: "LimitNPROC", Value: "infinity"},
		{Section: "Service", Name: "Restart", Value: "on-failure"},
		{Section: "Service", Name: "RestartSec", Value: "2"},
		{Section: "Service", Name: "TasksMax", Value: "infinity"},
		// A server killed for memory loses its Raft seat: never pick Nomad.
		{Section: "Service", Name: "OOMScoreAdjust", Value: "-1000"},

		{Section: "Install", Name: "WantedBy", Value: "multi-user.target"},
	}
	return serialize(nomadHeader, opts)
}

// AgentUnit returns nomad-bootstrapd.service running the binary at binPath.
// The agent tells systemd when it is ready (Type=notify); systemd creates
// /run/nomad-bootstrapd (0755) and /var/lib/nomad-bootstrapd (0700) for it,
// and reads /etc/nomad-bootstrapd/agent.env when it exists. It is not
// restarted after it exited with status 3, an evicted node's. The agent starts
// nomad.service itself, so the two units do not depend on each other.
func AgentUnit(binPath string) []byte {
	opts := []*unit.UnitOption{
		{Section: "Unit", Name: "Description", Value: "nomad-bootstrapd: forms and runs a Nomad cluster"},
		{Section: "Unit", Name: "Wants", Value: "network-online.target"},
		{Section: "Unit", Name: "After", Value: "network-online.target"},

		{Section: "Service", Name: "Type", Value: "notify"},
		{Section: "Service", Name: "EnvironmentFile", Value: "-/etc/nomad-bootstrapd/agent.env"},
		{Section: "Service", Name: "ExecStart", Value: execLine(binPath, "agent")},
		{Section: "Service", Name: "Restart", Value: "on-failure"},
		{Section: "Service", Name: "RestartSec", Value: "5"},
		// Exit status 3: the cluster evicted this node; a restart cannot help.
		{Section: "Service", Name: "RestartPreventExitStatus", Value: "3"},
		{Section: "Service", Name: "RuntimeDirectory", Value: "nomad-bootstrapd"},
		{Section: "Service", Name: "RuntimeDirectoryMode", Value: "0755"},
		{Section: "Service", Name: "StateDirectory", Value: "nomad-bootstrapd"},
		{Section: "Service", Name: "StateDirectoryMode", Value: "0700"},

		{Section: "Install", Name: "WantedBy", Value: "multi-user.target"},
	}
	return serialize(agentHeader, opts)
}

func serialize(header string, opts []*unit.UnitOption) []byte {
	body, err := io.ReadAll(unit.Serialize(opts))
	if err != nil {
		// unit.Serialize returns a bytes.Buffer, whose reads never fail.
		panic("systemd: serializing unit: " + err.Error())
	}
	return append([]byte(header+"\n"), body...)
}

// execLine renders a command line for ExecStart= and ExecReload=: each
// argument escaped, and quoted when it contains white space or quotes.
func execLine(args ...string) string {
	out := make([]string, len(args))
	for i, a := range args {
		a = strings.ReplaceAll(a, `\`, `\\`)
		a = escapeSpecifiers(a)
		a = strings.ReplaceAll(a, "$", "$$")
		if a == "" || strings.ContainsAny(a, " \t\n\"'") {
			a = `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// escapeSpecifiers escapes the % that would start a systemd specifier.
func escapeSpecifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// WriteUnit writes the unit file dir/name with content, mode 0644, creating
// dir if needed. It reports whether the file changed: an unchanged file is
// left alone, so callers reload systemd and restart services only when
// changed is true. The write is atomic.
func WriteUnit(dir, name string, content []byte) (changed bool, err error) {
	if name == "" || strings.ContainsRune(name, '/') {
		return false, fmt.Errorf("systemd: invalid unit name %q", name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("systemd: %w", err)
	}
	changed, err = atomicfile.WriteFileIfChanged(filepath.Join(dir, name), content, 0o644)
	if err != nil {
		return false, fmt.Errorf("systemd: writing unit %s: %w", name, err)
	}
	return changed, nil
}

// Managed reports whether the unit file at path was written by
// nomad-bootstrapd (it starts with the header of NomadUnit), so that it may
// be rewritten; a unit written by an administrator is left alone.
func Managed(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.HasPrefix(string(b), nomadHeader)
}

// UnitExists reports whether one of dirs holds a unit file called name, for
// instance whether the nomad package shipped nomad.service. Without dirs it
// looks where packages install units, UsrLibDir and LibDir. A unit masked
// with a link to /dev/null does not count.
func UnitExists(name string, dirs ...string) bool {
	if len(dirs) == 0 {
		dirs = []string{UsrLibDir, LibDir}
	}
	for _, d := range dirs {
		if fi, err := os.Stat(filepath.Join(d, name)); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}
