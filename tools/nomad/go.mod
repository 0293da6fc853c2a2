// Module tools/nomad builds the real Nomad agent that the end-to-end tests,
// the demo and the benchmarks run. It is kept apart from the main module so
// that Nomad's large dependency graph never enters nomad-bootstrapd itself.
module github.com/nomad-bootstrapd/nomad-bootstrapd/tools/nomad

go 1.25.8

require github.com/hashicorp/nomad v1.11.3

replace (
	github.com/Microsoft/go-winio => github.com/endocrimes/go-winio v0.4.13-0.20190628114223-fb47a8b41948
	github.com/hashicorp/hcl => github.com/hashicorp/hcl v1.0.1-nomad-1
	github.com/hashicorp/nomad/api => github.com/hashicorp/nomad/api v0.0.0-20260907080526-08ef8f3d26da
)
