package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryCommandHasHelpWithExamples runs `<command> -help` for every
// command of the usage text.
func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	var out bytes.Buffer
	if code := Run([]string{"help"}, &out, &out); code != exitOK {
		t.Fatalf("help exited %d", code)
	}
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(out.String(), "  "+strings.TrimSpace(c.name+" "+strings.ReplaceAll(c.sub, " ", "|"))+" ") {
				t.Errorf("the usage text does not list %s:\n%s", c.name, out.String())
			}
			var stdout, stderr bytes.Buffer
			if code := Run([]string{c.name, "-help"}, &stdout, &stderr); code != exitOK {
				t.Errorf("%s -help exited %d:\n%s%s", c.name, code, stdout.String(), stderr.String())
			}
			help := stdout.String() + stderr.String()
			if !strings.Contains(help, "Usage: nomad-bootstrapd "+c.name) {
				t.Errorf("%s -help lacks its usage line:\n%s", c.name, help)
			}
			_, examples, ok := strings.Cut(help, "\nExamples:\n")
			if !ok || !strings.Contains(examples, "nomad-bootstrapd "+c.name) {
				t.Errorf("%s -help has no example of %s:\n%s", c.name, c.name, help)
			}
			if strings.Contains(help, "Flags:\n\n") {
				t.Errorf("%s -help shows an empty list of flags:\n%s", c.name, help)
			}
		})
	}
}

func TestCompletionRefusesUnknownShells(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Run([]string{"completion", "powershell"}, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "bash, zsh or fish") {
		t.Errorf("completion powershell: exit %d, stderr %q", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("completion powershell printed %q", stdout.String())
	}
}

// TestBashCompletion loads the script into a real bash and completes words.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := filepath.Join(t.TempDir(), "completion.bash")
	if err := os.WriteFile(script, []byte(bashCompletion()), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		words []string // the command line; the last word is being completed
		want  string   // COMPREPLY, space-separated
	}{
		{[]string{"st"}, "status"},
		{[]string{"c"}, "ca completion"},
		{[]string{"token", ""}, "create client rotate"},
		{[]string{"ca", "c"}, "csr"},
		{[]string{"agent", "-sup"}, "-supervise"},
		{[]string{"agent", "-role", ""}, "auto server client"},
		{[]string{"join", "-pool", "b"}, "batch"},
		{[]string{"agent", "-log-level", "w"}, "warn"},
		{[]string{"status", "-j"}, "-json"},
		{[]string{"demo", "-no"}, "-nodes -nomad"},
		{[]string{"completion", ""}, "bash zsh fish"},
		{[]string{"nosuch", "-"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.words, " "), func(t *testing.T) {
			words := append([]string{"nomad-bootstrapd"}, tt.words...)
			var quoted []string
			for _, w := range words {
				quoted = append(quoted, "'"+w+"'")
			}
			prog := "source " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\n" +
				"COMP_CWORD=" + string(rune('0'+len(words)-1)) + "\n_nomad_bootstrapd\necho \"${COMPREPLY[*]}\"\n"
			out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Errorf("completing %q: %q, want %q", tt.words, got, tt.want)
			}
		})
	}
}

// TestCompletionScriptsParse checks the zsh and fish scripts with their
// shells' syntax checks where those shells are installed.
func TestCompletionScriptsParse(t *testing.T) {
	for _, tt := range []struct {
		shell, script string
	}{
		{"bash", bashCompletion()},
		{"zsh", zshCompletion()},
		{"fish", fishCompletion()},
	} {
		t.Run(tt.shell, func(t *testing.T) {
			sh, err := exec.LookPath(tt.shell)
			if err != nil {
				t.Skipf("no %s here", tt.shell)
			}
			f := filepath.Join(t.TempDir(), "completion")
			os.WriteFile(f, []byte(tt.script), 0o644)
			if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", tt.shell, err, out)
			}
		})
	}
}
