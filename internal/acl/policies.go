package acl

import (
	"embed"
	"fmt"
)

// Names of the policies this package installs. Nomad policy names allow
// letters, digits and dashes only.
const (
	// PolicyAnonymous is the policy Nomad applies to every request without a
	// token: its anonymous token carries exactly the policy named
	// "anonymous", so writing this policy is how anonymous access is granted.
	PolicyAnonymous = "anonymous"
	// PolicyReadonly is read-only audit access.
	PolicyReadonly = "readonly"
	// PolicyDeployer is what CI/CD needs to release jobs.
	PolicyDeployer = "deployer"
	// PolicyOpsAdmin is the operations administrator's access, short of
	// managing ACLs.
	PolicyOpsAdmin = "ops-admin"
)

//go:embed policies/*.hcl
var policyFiles embed.FS

// Policy is one ACL policy as this package writes it to Nomad.
type Policy struct {
	// Name is the Nomad policy name.
	Name string
	// Description is shown by `nomad acl policy list`.
	Description string
	// Rules is the policy in Nomad's HCL policy language.
	Rules string
}

// policyDescriptions lists the policies in the order they are applied, with
// their descriptions.
var policyDescriptions = []struct{ name, description string }{
	{PolicyAnonymous, "Requests without a token: minimal observability (managed by nomad-bootstrapd)"},
	{PolicyReadonly, "Read-only audit (managed by nomad-bootstrapd)"},
	{PolicyDeployer, "CI/CD releases: submit, dispatch and scale jobs (managed by nomad-bootstrapd)"},
	{PolicyOpsAdmin, "Operations administrator, short of ACL management (managed by nomad-bootstrapd)"},
}

// Policies returns the four policies in the order [Bootstrapper.Apply] writes them:
// anonymous, readonly, deployer, ops-admin. Their rules are the files under
// policies/ in this package.
func Policies() []Policy {
	out := make([]Policy, 0, len(policyDescriptions))
	for _, d := range policyDescriptions {
		rules, err := policyFiles.ReadFile("policies/" + d.name + ".hcl")
		if err != nil {
			// The files are embedded at build time; a missing one is a
			// build mistake that the tests catch.
			panic(fmt.Sprintf("acl: embedded policy %s: %v", d.name, err))
		}
		out = append(out, Policy{Name: d.name, Description: d.description, Rules: string(rules)})
	}
	return out
}

// tokenPolicies are the policies that get a client token each, in order.
var tokenPolicies = []string{PolicyReadonly, PolicyDeployer, PolicyOpsAdmin}

// TokenName returns the name of the client token [Bootstrapper.Apply] keeps for policy,
// "nomad-bootstrapd-<policy>". Apply finds its tokens again by this name.
func TokenName(policy string) string { return "nomad-bootstrapd-" + policy }
