package cli

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
)

const completionHelp = `Usage: nomad-bootstrapd completion bash|zsh|fish

Prints a shell completion script for nomad-bootstrapd's commands, flags and
the values of -role, -supervise, -log-level and -pool. The packages install
it for bash, zsh and fish; from a source build, load it by hand.
`

const completionExamples = `  source <(nomad-bootstrapd completion bash)
  nomad-bootstrapd completion bash > /etc/bash_completion.d/nomad-bootstrapd
  nomad-bootstrapd completion zsh > "${fpath[1]}/_nomad-bootstrapd"
  nomad-bootstrapd completion fish > ~/.config/fish/completions/nomad-bootstrapd.fish`

// command describes a command for the usage text and shell completion.
type command struct {
	name    string
	sub     string // the subcommands (token create client, ca csr), space-separated, if any
	summary string
	flags   func(fs *flag.FlagSet) // registers the command's flags
	args    []string               // positional words (completion's shells)
}

// commands lists every command in the order the usage text shows them.
var commands = []command{
	{name: "token", sub: "create client rotate", summary: "print a new server token, a client token of a cluster, or rotate the client token", flags: func(fs *flag.FlagSet) {
		tokenClientFlags(fs)
		fs.Bool("client", false, "")
		fs.Duration("grace", 0, "")
		fs.String("root", "", "")
	}},
	{name: "ca", sub: "csr rotate", summary: "make an intermediate CA request for an offline root, or rotate the CA (on the CA holder)", flags: func(fs *flag.FlagSet) {
		caFlags(fs)
		agentFlags(fs)
		caRotateFlags(fs)
	}},
	{name: "agent", summary: "run the agent on this machine", flags: func(fs *flag.FlagSet) { config.RegisterFlags(fs) }},
	{name: "join", summary: "set this machine up to join a cluster under systemd, and return", flags: func(fs *flag.FlagSet) { config.RegisterFlags(fs) }},
	{name: "status", summary: "show this node, the plan, the members and Nomad's health", flags: func(fs *flag.FlagSet) { statusFlags(fs) }},
	{name: "node", sub: "evict", summary: "evict a node from the cluster for good (on a server)", flags: func(fs *flag.FlagSet) { agentFlags(fs) }},
	{name: "keys", sub: "rotate", summary: "rotate Nomad's gossip key on every server, Nomad running (on a server)", flags: func(fs *flag.FlagSet) { agentFlags(fs) }},
	{name: "snapshot", sub: "save restore", summary: "save Nomad's state and keyring to a file, or restore one (on a server)", flags: func(fs *flag.FlagSet) {
		agentFlags(fs)
		fs.Bool("other-cluster", false, "")
	}},
	{name: "recover", summary: "recover from the loss of a majority of the servers (on a surviving server)", flags: func(fs *flag.FlagSet) {
		agentFlags(fs)
		fs.Bool("confirm", false, "")
	}},
	{name: "upgrade", sub: "nomad status", summary: "roll every node onto another Nomad version, or show the roll (on a server)", flags: func(fs *flag.FlagSet) {
		agentFlags(fs)
		upgradeFlags(fs)
	}},
	{name: "demo", summary: "run a local cluster of agents on 127.0.0.x", flags: func(fs *flag.FlagSet) { demoFlags(fs) }},
	{name: "completion", summary: "print a shell completion script (bash, zsh, fish)", flags: func(*flag.FlagSet) {}, args: []string{"bash", "zsh", "fish"}},
	{name: "version", summary: "print the version", flags: func(*flag.FlagSet) {}},
}

// flagValues are the values completion offers after a flag: those of the
// table of settings.
var flagValues = func() map[string][]string {
	m := map[string][]string{}
	for _, f := range config.Fields() {
		if f.Flag != "" && len(f.Values) > 0 {
			m[f.Flag] = f.Values
		}
	}
	return m
}()

// fileFlags take a path: completion offers files. They are the agent's
// -config and -root, ca csr's -dir and the settings whose value is a path.
var fileFlags = func() []string {
	out := []string{"config", "root", "dir"}
	for _, f := range config.Fields() {
		if f.Flag != "" && f.Path {
			out = append(out, f.Flag)
		}
	}
	return out
}()

// flagNames returns c's flag names, sorted.
func (c command) flagNames() []string {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.flags(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	return names
}

// commandUsage lists the commands with their summaries.
func commandUsage() string {
	var b strings.Builder
	for _, c := range commands {
		name := strings.TrimSpace(c.name + " " + strings.ReplaceAll(c.sub, " ", "|"))
		fmt.Fprintf(&b, "  %-14s %s\n", name, c.summary)
	}
	return b.String()
}

func runCompletion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("completion", completionHelp, completionExamples, stderr)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	switch fs.Arg(0) {
	case "bash":
		fmt.Fprint(stdout, bashCompletion())
	case "zsh":
		fmt.Fprint(stdout, zshCompletion())
	case "fish":
		fmt.Fprint(stdout, fishCompletion())
	default:
		fmt.Fprintf(stderr, "nomad-bootstrapd: completion for %q is not available; choose bash, zsh or fish\n", fs.Arg(0))
		return exitUsage
	}
	return exitOK
}

func commandNames() []string {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	return append(names, "help")
}

func dashed(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "-" + n
	}
	return strings.Join(out, " ")
}

// bashCompletion returns the bash script: commands, each command's
// subcommand and flags, and the values of the flags that have a few.
func bashCompletion() string {
	var b strings.Builder
	b.WriteString(`# bash completion for nomad-bootstrapd: source <(nomad-bootstrapd completion bash)
_nomad_bootstrapd() {
    local cur prev cmd words
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    cmd="${COMP_WORDS[1]}"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "` + strings.Join(commandNames(), " ") + `" -- "$cur"))
        return 0
    fi
    case "$prev" in
`)
	for _, name := range sortedKeys(flagValues) {
		fmt.Fprintf(&b, "        -%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return 0 ;;\n", name, strings.Join(flagValues[name], " "))
	}
	fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -f -- \"$cur\")); return 0 ;;\n", strings.ReplaceAll(dashed(fileFlags), " ", "|"))
	b.WriteString("    esac\n    case \"$cmd\" in\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "        %s)\n", c.name)
		if c.sub != "" {
			fmt.Fprintf(&b, "            if [ \"$COMP_CWORD\" -eq 2 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return 0; fi\n", c.sub)
		}
		words := dashed(c.flagNames())
		if len(c.args) > 0 {
			words = strings.TrimSpace(words + " " + strings.Join(c.args, " "))
		}
		fmt.Fprintf(&b, "            words=%q ;;\n", words)
	}
	b.WriteString(`        *) words="" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    return 0
}
complete -F _nomad_bootstrapd nomad-bootstrapd
`)
	return b.String()
}

// zshCompletion returns a zsh script that runs the bash one through zsh's
// bashcompinit.
func zshCompletion() string {
	return "#compdef nomad-bootstrapd\n# zsh completion for nomad-bootstrapd\n" +
		"autoload -U +X bashcompinit && bashcompinit\n" + bashCompletion()
}

// fishCompletion returns the fish script.
func fishCompletion() string {
	var b strings.Builder
	b.WriteString("# fish completion for nomad-bootstrapd\ncomplete -c nomad-bootstrapd -f\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "complete -c nomad-bootstrapd -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	for _, c := range commands {
		cond := "__fish_seen_subcommand_from " + c.name
		if c.sub != "" {
			fmt.Fprintf(&b, "complete -c nomad-bootstrapd -n '%s; and not __fish_seen_subcommand_from %s' -a '%s'\n", cond, c.sub, c.sub)
		}
		for _, a := range c.args {
			fmt.Fprintf(&b, "complete -c nomad-bootstrapd -n '%s' -a %s\n", cond, a)
		}
		for _, f := range c.flagNames() {
			switch {
			case flagValues[f] != nil:
				fmt.Fprintf(&b, "complete -c nomad-bootstrapd -n '%s' -o %s -x -a %s\n", cond, f, fishQuote(strings.Join(flagValues[f], " ")))
			case slices.Contains(fileFlags, f):
				fmt.Fprintf(&b, "complete -c nomad-bootstrapd -n '%s' -o %s -r -F\n", cond, f)
			default:
				fmt.Fprintf(&b, "complete -c nomad-bootstrapd -n '%s' -o %s\n", cond, f)
			}
		}
	}
	return b.String()
}

func fishQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

func sortedKeys(m map[string][]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
