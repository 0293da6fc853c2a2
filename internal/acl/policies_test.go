package acl

import (
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl"
)

func TestPoliciesEmbedded(t *testing.T) {
	files, err := fs.Glob(policyFiles, "policies/*")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range Policies() {
		names = append(names, p.Name)
		if !slices.Contains(files, "policies/"+p.Name+".hcl") {
			t.Errorf("%s: no file", p.Name)
		}
	}
	if want := []string{"anonymous", "readonly", "deployer", "ops-admin"}; !slices.Equal(names, want) {
		t.Errorf("policies %v, want %v", names, want)
	}
	if len(files) != len(names) {
		t.Errorf("files %v, want one per policy", files)
	}
}

// TestPoliciesShape checks what can be checked without Nomad: HCL v1 (which
// Nomad uses for policies) decodes each file, only top-level keys that
// every supported Nomad accepts appear (Nomad 1.6.3's grammar, acl/policy.go;
// later lines add keys, such as sentinel, and 1.11 refuses unknown ones),
// names and descriptions fit Nomad's limits. TestRealNomad has Nomad itself
// parse them.
func TestPoliciesShape(t *testing.T) {
	validName := regexp.MustCompile(`^[a-zA-Z0-9-]{1,128}$`) // structs.ValidPolicyName
	grammar := []string{"namespace", "node_pool", "host_volume", "agent", "node", "operator", "quota", "plugin"}
	for _, p := range Policies() {
		if !validName.MatchString(p.Name) {
			t.Errorf("%s: invalid Nomad policy name", p.Name)
		}
		if len(p.Description) > 256 || p.Description == "" {
			t.Errorf("%s: description %q", p.Name, p.Description)
		}
		var m map[string]any
		if err := hcl.Decode(&m, p.Rules); err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		for k := range m {
			if !slices.Contains(grammar, k) {
				t.Errorf("%s: top-level key %q is not in Nomad's policy grammar", p.Name, k)
			}
		}
	}
}

func TestAnonymousIsMinimal(t *testing.T) {
	rules := Policies()[0].Rules
	for _, forbidden := range []string{"write", "submit-job", "read-job", "read-logs", "read-fs", "alloc-", "variables", "agent", "operator"} {
		for line := range strings.Lines(rules) {
			if !strings.HasPrefix(strings.TrimSpace(line), "#") && strings.Contains(line, forbidden) {
				t.Errorf("anonymous policy grants %q: %s", forbidden, strings.TrimSpace(line))
			}
		}
	}
}
