package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/golden"
)

// joinRewrite parses args as join's flags, renders the configuration file
// join writes from them and reads it back as the agent does. It returns what
// the flags give and what the file gives, each over the defaults, and the
// file's layer.
func joinRewrite(t *testing.T, args []string) (flags, file config.Config, layer config.Layer) {
	t.Helper()
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	f := config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	given := f.Layer()
	const tokenFile = "/etc/nomad-bootstrapd/token"
	path := filepath.Join(t.TempDir(), "config.hcl")
	if err := os.WriteFile(path, agentConfig(given, tokenFile), 0o600); err != nil {
		t.Fatal(err)
	}
	layer, err := config.ReadFile(path, true)
	if err != nil {
		src, _ := os.ReadFile(path)
		t.Fatalf("the agent cannot read what join wrote: %v\n%s", err, src)
	}
	flags = config.Merge(config.Defaults(), given)
	flags.TokenFile = tokenFile
	return flags, config.Merge(config.Defaults(), layer), layer
}

// joinSetting returns the settings join takes as flags and writes into the
// file: all but the token, which it writes to a file of its own.
func joinSettings() []config.Field {
	var out []config.Field
	for _, f := range config.Fields() {
		if f.Flag != "" && f.Name() != "token" && f.Name() != "token_file" {
			out = append(out, f)
		}
	}
	return out
}

// notDefault returns a flag value for f other than its default.
func notDefault(f config.Field) string {
	switch f.Kind() {
	case config.Int:
		return fmt.Sprint(f.Default().(int) + 7)
	case config.Bool:
		return fmt.Sprint(!f.Default().(bool))
	case config.Duration:
		return (f.Default().(time.Duration) + 42*time.Second).String()
	case config.List:
		return "10.0.0.7,10.0.0.8:4700"
	default:
		return "x-" + f.Key
	}
}

// asFlag returns f's value in c as a flag value.
func asFlag(f config.Field, c config.Config) string {
	if l, ok := f.Get(c).([]string); ok {
		return strings.Join(l, ",")
	}
	return fmt.Sprint(f.Get(c))
}

// TestJoinKeepsEverySetting gives join each setting of the table that has a
// flag, alone and all at once, and checks that the agent reads the same
// settings back from the file join writes.
func TestJoinKeepsEverySetting(t *testing.T) {
	var all []string
	for _, f := range joinSettings() {
		args := []string{"-" + f.Flag + "=" + notDefault(f)}
		all = append(all, args...)
		t.Run(f.Name(), func(t *testing.T) {
			want, got, _ := joinRewrite(t, args)
			if cmp.Equal(f.Get(want), f.Default()) {
				t.Fatalf("-%s %s gives the default", f.Flag, notDefault(f))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("join %s: the file gives (-flags +file):\n%s", args[0], diff)
			}
		})
	}
	t.Run("all", func(t *testing.T) {
		want, got, _ := joinRewrite(t, all)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("join %s: the file gives (-flags +file):\n%s", strings.Join(all, " "), diff)
		}
	})
}

// TestJoinWritesFlagsGivenTheDefault: a flag given its default value is
// written all the same, so it still wins over a default that changes.
func TestJoinWritesFlagsGivenTheDefault(t *testing.T) {
	var args []string
	for _, f := range joinSettings() {
		args = append(args, "-"+f.Flag+"="+asFlag(f, config.Default()))
	}
	want, got, layer := joinRewrite(t, args)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the file gives (-flags +file):\n%s", diff)
	}
	for _, f := range joinSettings() {
		if !layer.Set[f.Name()] {
			t.Errorf("-%s given its default is not in the file", f.Flag)
		}
	}
}

// TestJoinConfigGolden keeps the file join writes for a typical command line.
func TestJoinConfigGolden(t *testing.T) {
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	f := config.RegisterFlags(fs)
	args := []string{"-token", "nbd1_secret", "-join", "10.0.0.5, 10.0.0.6", "-pool", "batch", "-zone", "b",
		"-expect", "3", "-settle", "90s", "-server-replace-after", "30m", "-raw-exec"}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	got := agentConfig(f.Layer(), "/etc/nomad-bootstrapd/token")
	if strings.Contains(string(got), "nbd1_secret") {
		t.Errorf("the file holds the token:\n%s", got)
	}
	golden.Check(t, filepath.Join("testdata", "join-config.hcl"), got)
}
