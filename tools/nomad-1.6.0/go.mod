// Module tools/nomad-1.6.0 builds Nomad v1.6.0, the release the upgrade
// tests roll from to v1.6.3 (tools/nomad). It needs a module of its own:
// v1.6.0 compiles only against the older dependencies it requires itself
// (golang.org/x/exp's slices before its sort functions changed). The
// replaces are tools/nomad's: Nomad's own, with the api module at the
// v1.6.3 commit, which v1.6.0's command line uses unchanged.
module github.com/nomad-bootstrapd/nomad-bootstrapd/tools/nomad-1.6.0

go 1.20

require github.com/hashicorp/nomad v1.6.0

replace (
	github.com/Microsoft/go-winio => github.com/endocrimes/go-winio v0.4.13-0.20190628114223-fb47a8b41948
	github.com/armon/go-metrics => github.com/armon/go-metrics v0.0.0-20230509193637-d9ca9af9f1f9
	github.com/hashicorp/hcl => github.com/hashicorp/hcl v1.0.1-0.20201016140508-a07e7d50bbee
	github.com/hashicorp/nomad/api => github.com/hashicorp/nomad/api v0.0.0-20231030125810-e0497bff1437
)
