// Package nomadconf renders the Nomad agent configuration of one node, the
// files nomad-bootstrapd owns in /etc/nomad.d, from a typed model.
//
// Nomad reads its agent configuration with HCL v1 and rejects unknown keys.
// The files are written with hclwrite, which escapes for HCL2: "${" becomes
// "$${", which HCL v1 does not undo. So Validate refuses every value that
// contains "${", "%{" or a control character before anything is rendered,
// and the tests decode every golden file with HCL v1 and check it with the
// real `nomad config validate`.
//
// Render returns the files; writing them (atomically) is the caller's job.
// The per-pool client policies of PoolDefaults are explained in POOLS.md.
package nomadconf
