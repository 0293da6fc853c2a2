package nomadinstall

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadver"
)

var v163 = nomadver.Version{Major: 1, Minor: 6, Patch: 3}

// script writes an executable that prints "Nomad v<version>".
func script(t *testing.T, dir, name, version string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho 'Nomad v"+version+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFromDir(t *testing.T) {
	dir := t.TempDir()
	good := script(t, dir, "nomad-1.6.3", "1.6.3")
	script(t, dir, "nomad-1.6.2", "1.6.0") // misnamed
	if err := os.WriteFile(filepath.Join(dir, "nomad-1.6.1"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := Installer{Dir: dir}
	path, err := in.Install(context.Background(), v163)
	if err != nil || path != good {
		t.Fatalf("install: %q %v", path, err)
	}
	tests := []struct {
		v    nomadver.Version
		want string
	}{
		{nomadver.Version{Major: 1, Minor: 6, Patch: 4}, "put its binary at " + filepath.Join(dir, "nomad-1.6.4")},
		{nomadver.Version{Major: 1, Minor: 6, Patch: 2}, "reports Nomad 1.6.0, not 1.6.2"},
		{nomadver.Version{Major: 1, Minor: 6, Patch: 1}, "not an executable file"},
	}
	for _, tt := range tests {
		if _, err := in.Check(context.Background(), tt.v); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.v, err, tt.want)
		}
	}
}

// fakeSystem is a machine with a package manager and a nomad binary.
type fakeSystem struct {
	t         *testing.T
	commands  []string
	installed string // the version /usr/bin/nomad reports
	listing   string // what the manager lists
	failing   string // a command that fails
}

func (f *fakeSystem) installer(managers ...string) Installer {
	return Installer{
		Binary: "/usr/bin/nomad",
		LookPath: func(name string) (string, error) {
			if slices.Contains(managers, name) {
				return "/usr/bin/" + name, nil
			}
			return "", errors.New("not found")
		},
		Exec: func(_ context.Context, env []string, name string, args ...string) ([]byte, error) {
			cmd := strings.Join(append([]string{filepath.Base(name)}, args...), " ")
			f.commands = append(f.commands, cmd)
			if f.failing != "" && strings.HasPrefix(cmd, f.failing) {
				return []byte("E: something broke"), errors.New("exit status 100")
			}
			if strings.HasPrefix(cmd, "apt-get install") && !slices.Contains(env, "DEBIAN_FRONTEND=noninteractive") {
				f.t.Errorf("apt-get install without DEBIAN_FRONTEND=noninteractive: %v", env)
			}
			switch {
			case strings.Contains(cmd, "madison"), strings.Contains(cmd, " list "):
				return []byte(f.listing), nil
			case strings.Contains(cmd, " install "):
				f.installed = "1.6.3"
			}
			return nil, nil
		},
		Detect: func(_ context.Context, bin string) (nomadver.Version, error) {
			return nomadver.Parse(f.installed)
		},
	}
}

func TestPackageManagers(t *testing.T) {
	const madison = "     nomad |    1.6.30-1 | file:/repo ./ Packages\n     nomad |    1.6.3-1 | file:/repo ./ Packages\n     nomad |    1.6.0-1 | file:/repo ./ Packages\n"
	const dnf = "Available Packages\nnomad.x86_64                1.6.0-1                 hashicorp\nnomad.x86_64                1.6.3-1                 hashicorp\n"
	tests := []struct {
		name     string
		managers []string
		listing  string
		failing  string
		want     []string // commands run
		err      string
	}{
		{name: "apt", managers: []string{"apt-get", "apt-cache"}, listing: madison,
			want: []string{"apt-get update -q", "apt-cache madison nomad", "apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold nomad=1.6.3-1"}},
		{name: "dnf", managers: []string{"dnf", "yum"}, listing: dnf,
			want: []string{"dnf list --showduplicates -q nomad", "dnf install -y -q nomad-1.6.3-1"}},
		{name: "version missing", managers: []string{"apt-get", "apt-cache"}, listing: "     nomad |    1.6.0-1 | file:/repo ./ Packages\n",
			want: []string{"apt-get update -q", "apt-cache madison nomad"}, err: "apt has no nomad 1.6.3; it has 1.6.0-1"},
		{name: "no package", managers: []string{"dnf"}, listing: "",
			want: []string{"dnf list --showduplicates -q nomad"}, err: "knows no nomad package"},
		{name: "no manager", err: "neither apt-get nor dnf"},
		{name: "install fails", managers: []string{"apt-get", "apt-cache"}, listing: madison, failing: "apt-get install",
			want: []string{"apt-get update -q", "apt-cache madison nomad", "apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold nomad=1.6.3-1"},
			err:  "apt could not install nomad 1.6.3-1: exit status 100: E: something broke"},
		{name: "update fails", managers: []string{"apt-get", "apt-cache"}, listing: madison, failing: "apt-get update",
			want: []string{"apt-get update -q"}, err: "could not refresh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSystem{t: t, installed: "1.6.0", listing: tt.listing, failing: tt.failing}
			path, err := f.installer(tt.managers...).Install(context.Background(), v163)
			switch {
			case tt.err == "" && (err != nil || path != "/usr/bin/nomad"):
				t.Fatalf("install: %q %v", path, err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if !slices.Equal(f.commands, tt.want) {
				t.Fatalf("commands\n%q\nwant\n%q", f.commands, tt.want)
			}
		})
	}
}

// TestPackageThatLies: a package that installs another version than it
// claims is caught.
func TestPackageThatLies(t *testing.T) {
	f := &fakeSystem{t: t, installed: "1.6.0", listing: "nomad | 1.6.3-1 | x\n"}
	in := f.installer("apt-get", "apt-cache")
	inner := in.Exec
	in.Exec = func(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
		out, err := inner(ctx, env, name, args...)
		f.installed = "1.6.0"
		return out, err
	}
	if _, err := in.Install(context.Background(), v163); err == nil || !strings.Contains(err.Error(), "reports Nomad 1.6.0, not 1.6.3") {
		t.Fatalf("error %v", err)
	}
}

func TestUpstream(t *testing.T) {
	for in, want := range map[string]string{"1.6.3-1": "1.6.3", "1:1.6.3-1": "1.6.3", "1.6.3": "1.6.3", "1.6.3-beta.1-2": "1.6.3-beta.1"} {
		if got := upstream(in); got != want {
			t.Errorf("upstream(%q) = %q, want %q", in, got, want)
		}
	}
}
