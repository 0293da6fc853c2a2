//go:build tools

// Package tools pins the Nomad version built by `make nomad`.
package tools

import _ "github.com/hashicorp/nomad"
