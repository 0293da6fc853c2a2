package config

import (
	"flag"
	"strings"
	"time"
)

// Flags are the agent's command-line flags, registered on a FlagSet: one for
// each setting of Fields that has a Flag, and -config, -root and -dry-run.
// After parsing, Layer returns the settings that were given.
type Flags struct {
	fs   *flag.FlagSet
	vals Config
	// ConfigFile is -config: the configuration file to load.
	ConfigFile string
	// Root is -root: the directory every path is relative to.
	Root string
	// DryRun is -dry-run.
	DryRun bool
}

// RegisterFlags registers the agent flags on fs, each with its setting's
// default.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, vals: Default()}
	fs.StringVar(&f.ConfigFile, "config", "", "configuration `file` (default <root>/etc/nomad-bootstrapd/config.hcl)")
	fs.StringVar(&f.Root, "root", "/", "`dir`ectory every path is relative to (tests and the demo run many nodes on one machine)")
	fs.BoolVar(&f.DryRun, "dry-run", false, "show what would be done and exit without changing anything")
	for _, fd := range fields {
		if fd.Flag == "" {
			continue
		}
		switch p := fd.ptr(&f.vals).(type) {
		case *string:
			fs.StringVar(p, fd.Flag, *p, fd.Usage)
		case *int:
			fs.IntVar(p, fd.Flag, *p, fd.Usage)
		case *bool:
			fs.BoolVar(p, fd.Flag, *p, fd.Usage)
		case *time.Duration:
			fs.DurationVar(p, fd.Flag, *p, fd.Usage)
		case *[]string:
			fs.Var((*listValue)(p), fd.Flag, fd.Usage)
		}
	}
	return f
}

// Layer returns the settings given on the command line: the flags that
// were set, even to their default value.
func (f *Flags) Layer() Layer { return FlagLayer(f.fs, f.vals) }

// FlagLayer returns the settings of c whose flags (Field.Flag) were set on
// fs, for commands that register some of the flags themselves.
func FlagLayer(fs *flag.FlagSet, c Config) Layer {
	l := Layer{Source: "flags", Config: c}
	byFlag := map[string]string{}
	for _, fd := range fields {
		if fd.Flag != "" {
			byFlag[fd.Flag] = fd.Name()
		}
	}
	fs.Visit(func(fl *flag.Flag) {
		if name, ok := byFlag[fl.Name]; ok {
			l.set(name)
		}
	})
	return l
}

// listValue is a List setting's flag: a comma-separated list.
type listValue []string

func (v *listValue) String() string {
	if v == nil {
		return ""
	}
	return strings.Join(*v, ",")
}

func (v *listValue) Set(s string) error {
	*v = SplitList(s)
	return nil
}
