// Package nomadinstall puts a given Nomad version on this machine for a
// rolling upgrade: from a directory of versioned binaries (nomad-1.6.3),
// or through the system's package manager (apt or dnf) from the
// repositories it is configured with, and checks that the binary it leaves
// reports that version.
package nomadinstall

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"
)

// Timeouts of the package manager's commands.
const (
	queryTimeout   = 2 * time.Minute
	installTimeout = 10 * time.Minute
)

// Installer installs Nomad versions on this machine.
type Installer struct {
	// Dir is a directory of versioned binaries (nomad-1.6.3); empty: the
	// package manager installs Nomad.
	Dir string
	// Binary is where the package manager puts nomad (/usr/bin/nomad).
	Binary string
	// Exec runs a command and returns its combined output; nil runs it
	// with os/exec.
	Exec func(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
	// LookPath finds a command; nil is exec.LookPath.
	LookPath func(string) (string, error)
	// Detect reports the version a nomad binary prints; nil is
	// nomadver.Detect.
	Detect func(ctx context.Context, bin string) (nomadver.Version, error)
}

// BinaryName is the file of version v in a directory of versioned binaries.
func BinaryName(v nomadver.Version) string { return "nomad-" + v.String() }

// Check reports, changing nothing but the package manager's lists, whether
// version v can be installed here, and how.
func (in Installer) Check(ctx context.Context, v nomadver.Version) (string, error) {
	if in.Dir != "" {
		return in.fromDir(ctx, v)
	}
	pm, pkg, err := in.packageOf(ctx, v)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s package nomad %s", pm.name, pkg), nil
}

// Install installs version v and returns the path of the nomad binary
// that reports it.
func (in Installer) Install(ctx context.Context, v nomadver.Version) (string, error) {
	if in.Dir != "" {
		return in.fromDir(ctx, v)
	}
	pm, pkg, err := in.packageOf(ctx, v)
	if err != nil {
		return "", err
	}
	ictx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	if out, err := in.exec(ictx, pm.env, pm.path, pm.install(pkg)...); err != nil {
		return "", fmt.Errorf("nomadinstall: %s could not install nomad %s: %w%s", pm.name, pkg, err, tail(out))
	}
	if err := in.verify(ctx, in.Binary, v); err != nil {
		return "", err
	}
	return in.Binary, nil
}

// fromDir returns Dir's binary of version v once it reports v.
func (in Installer) fromDir(ctx context.Context, v nomadver.Version) (string, error) {
	path := filepath.Join(in.Dir, BinaryName(v))
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("nomadinstall: no Nomad %s in nomad_dir: put its binary at %s", v, path)
	case err != nil:
		return "", fmt.Errorf("nomadinstall: %w", err)
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		return "", fmt.Errorf("nomadinstall: %s is not an executable file", path)
	}
	if err := in.verify(ctx, path, v); err != nil {
		return "", err
	}
	return path, nil
}

func (in Installer) verify(ctx context.Context, path string, v nomadver.Version) error {
	detect := in.Detect
	if detect == nil {
		detect = nomadver.Detect
	}
	got, err := detect(ctx, path)
	if err != nil {
		return fmt.Errorf("nomadinstall: %w", err)
	}
	if got.Compare(v) != 0 {
		return fmt.Errorf("nomadinstall: %s reports Nomad %s, not %s", path, got, v)
	}
	return nil
}

// manager is a package manager.
type manager struct {
	name, path string
	env        []string
	refresh    []string                      // arguments of path that refresh its lists; nil for none
	listPath   string                        // the command that lists nomad's versions
	list       []string                      // its arguments
	parse      func(line string) string      // a version from a line of list's output, or ""
	install    func(version string) []string // arguments of path that install nomad at version
}

func (in Installer) manager() (manager, error) {
	look := in.LookPath
	if look == nil {
		look = exec.LookPath
	}
	if p, err := look("apt-get"); err == nil {
		cache, err := look("apt-cache")
		if err != nil {
			return manager{}, errors.New("nomadinstall: apt-get is installed without apt-cache")
		}
		return manager{
			name: "apt", path: p,
			env:      []string{"DEBIAN_FRONTEND=noninteractive"},
			refresh:  []string{"update", "-q"},
			listPath: cache,
			list:     []string{"madison", "nomad"},
			parse:    parseMadison,
			install: func(ver string) []string {
				return []string{"install", "-y", "-q", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold", "nomad=" + ver}
			},
		}, nil
	}
	for _, name := range []string{"dnf", "yum"} {
		if p, err := look(name); err == nil {
			return manager{
				name: name, path: p,
				listPath: p,
				list:     []string{"list", "--showduplicates", "-q", "nomad"},
				parse:    parseDNF,
				install: func(ver string) []string {
					return []string{"install", "-y", "-q", "nomad-" + ver}
				},
			}, nil
		}
	}
	return manager{}, errors.New(`nomadinstall: neither apt-get nor dnf is installed: install the Nomad version yourself, or run Nomad with supervise = "process" and a nomad_dir of versioned binaries`)
}

// packageOf returns this machine's package manager and the version of its
// nomad package that is Nomad v.
func (in Installer) packageOf(ctx context.Context, v nomadver.Version) (manager, string, error) {
	pm, err := in.manager()
	if err != nil {
		return manager{}, "", err
	}
	pkg, err := in.findPackage(ctx, pm, v)
	return pm, pkg, err
}

// findPackage returns the package version of Nomad v that pm can install.
func (in Installer) findPackage(ctx context.Context, pm manager, v nomadver.Version) (string, error) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if pm.refresh != nil {
		if out, err := in.exec(qctx, pm.env, pm.path, pm.refresh...); err != nil {
			return "", fmt.Errorf("nomadinstall: %s could not refresh its package lists: %w%s", pm.name, err, tail(out))
		}
	}
	out, err := in.exec(qctx, pm.env, pm.listPath, pm.list...)
	if err != nil && pm.name == "apt" {
		return "", fmt.Errorf("nomadinstall: listing nomad's versions: %w%s", err, tail(out))
	}
	// dnf list fails when no package matches; that is "none" here.
	var seen []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		ver := pm.parse(sc.Text())
		if ver == "" {
			continue
		}
		seen = append(seen, ver)
		if upstream(ver) == v.String() {
			return ver, nil
		}
	}
	if len(seen) == 0 {
		return "", fmt.Errorf("nomadinstall: %s knows no nomad package: add HashiCorp's repository (or your mirror of it)", pm.name)
	}
	return "", fmt.Errorf("nomadinstall: %s has no nomad %s; it has %s", pm.name, v, strings.Join(seen, ", "))
}

// parseMadison reads "nomad | 1.6.3-1 | http://... Packages".
func parseMadison(line string) string {
	f := strings.Split(line, "|")
	if len(f) < 3 || strings.TrimSpace(f[0]) != "nomad" {
		return ""
	}
	return strings.TrimSpace(f[1])
}

// parseDNF reads "nomad.x86_64    1.6.3-1    hashicorp".
func parseDNF(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "nomad.") {
		return ""
	}
	return f[1]
}

// upstream returns a package version without its epoch and revision:
// "1:1.6.3-1" is 1.6.3.
func upstream(ver string) string {
	if _, after, ok := strings.Cut(ver, ":"); ok {
		ver = after
	}
	if i := strings.LastIndex(ver, "-"); i > 0 {
		ver = ver[:i]
	}
	return ver
}

func (in Installer) exec(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	if in.Exec != nil {
		return in.Exec(ctx, env, name, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// tail returns the end of a command's output for an error message.
func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	return ": " + s
}
