package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/paths"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/systemd"
	"github.com/zclconf/go-cty/cty"
)

const joinHelp = `Usage: nomad-bootstrapd join -token T -join ADDR,... [agent flags]

Sets this machine up to join a cluster and returns: it writes the token to
/etc/nomad-bootstrapd/token (0600) and the agent flags given to
/etc/nomad-bootstrapd/config.hcl, then enables and starts
nomad-bootstrapd.service, which does the rest. Running it again with the same
arguments changes nothing. Made for cloud-init and other provisioning tools.
`

const joinExamples = `  nomad-bootstrapd join -token "$T" -join 10.0.0.5,10.0.0.6
  nomad-bootstrapd join -token-file /run/secrets/nbd-token -join 10.0.0.5 -pool batch -zone b`

// joinManagedHeader starts a configuration file that join wrote.
const joinManagedHeader = "# Written by `nomad-bootstrapd join`; running it again rewrites this file.\n"

func runJoin(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("join", joinHelp, joinExamples, stderr)
	flags := config.RegisterFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	given := flags.Layer()
	cfg := config.Merge(config.Defaults(), config.Env(os.Getenv), given)
	fail := func(err error) int {
		fmt.Fprintf(stderr, "nomad-bootstrapd: %v\n", err)
		return exitError
	}
	if len(cfg.Join) == 0 {
		fmt.Fprintln(stderr, "nomad-bootstrapd: join needs -join with the seed addresses")
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		return fail(err)
	}
	token, err := loadToken(&cfg, nil)
	if err != nil {
		return fail(err)
	}

	p := paths.New(flags.Root)
	if err := os.MkdirAll(p.ConfigDir(), 0o755); err != nil {
		return fail(err)
	}
	tokenFile := filepath.Join(p.ConfigDir(), "token")
	if _, err := atomicfile.WriteFileIfChanged(tokenFile, []byte(token.Encode()+"\n"), 0o600); err != nil {
		return fail(err)
	}
	// The agent reads the token from the real path, even under -root.
	agentTokenFile := filepath.Join("/etc/nomad-bootstrapd", "token")
	if flags.Root != "/" && flags.Root != "" {
		agentTokenFile = tokenFile
	}
	changed, err := writeJoinConfig(p.ConfigFile(), agentConfig(given, agentTokenFile))
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "wrote %s and %s for cluster %s\n", p.ConfigFile(), tokenFile, token.ClusterIDString())
	if flags.Root != "/" && flags.Root != "" {
		fmt.Fprintln(stdout, "-root is set: not starting nomad-bootstrapd.service")
		return exitOK
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := startAgentUnit(ctx, changed); err != nil {
		return fail(err)
	}
	fmt.Fprintln(stdout, "nomad-bootstrapd.service is enabled and running; follow it with: nomad-bootstrapd status")
	return exitOK
}

// agentConfig renders the settings given on the command line as the agent's
// configuration file, in the order of config.Fields, with token_file naming
// the file join wrote the token to.
func agentConfig(given config.Layer, tokenFile string) []byte {
	f := hclwrite.NewEmptyFile()
	body := f.Body()
	body.SetAttributeValue("token_file", cty.StringVal(tokenFile))
	for _, fd := range config.Fields() {
		switch {
		case fd.Name() == "token" || fd.Name() == "token_file":
			continue // the token is in tokenFile
		case fd.Block != "":
			continue // only the file sets these
		case given.Set[fd.Name()]:
			body.SetAttributeValue(fd.Key, hclValue(fd.Get(given.Config)))
		}
	}
	return append([]byte(joinManagedHeader), f.Bytes()...)
}

// hclValue returns a setting's value (config.Field.Get) as the file holds
// it: durations as strings such as "1m30s".
func hclValue(v any) cty.Value {
	switch v := v.(type) {
	case int:
		return cty.NumberIntVal(int64(v))
	case bool:
		return cty.BoolVal(v)
	case time.Duration:
		return cty.StringVal(v.String())
	case []string:
		if len(v) == 0 {
			return cty.ListValEmpty(cty.String)
		}
		vals := make([]cty.Value, len(v))
		for i, s := range v {
			vals[i] = cty.StringVal(s)
		}
		return cty.ListVal(vals)
	default:
		return cty.StringVal(fmt.Sprint(v))
	}
}

// writeJoinConfig writes the configuration file, keeping a copy of one that
// join did not write (such as the package's commented default).
func writeJoinConfig(path string, content []byte) (bool, error) {
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, err
	case bytes.Equal(old, content):
		return false, nil
	case !strings.HasPrefix(string(old), joinManagedHeader):
		if err := atomicfile.WriteFile(path+".bak", old, 0o600); err != nil {
			return false, err
		}
	}
	return atomicfile.WriteFileIfChanged(path, content, 0o600)
}

// startAgentUnit enables and starts nomad-bootstrapd.service, restarting it
// when its configuration changed while it ran.
func startAgentUnit(ctx context.Context, changed bool) error {
	m, err := systemd.Connect(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	_, err = m.Ensure(ctx, systemd.Service{
		Name:    systemd.AgentService,
		Dir:     systemd.EtcDir,
		Shipped: []string{systemd.UsrLibDir, systemd.LibDir},
		Content: systemd.AgentUnit(exe),
	}, changed)
	return err
}
