// Package e2e tests the built nomad-bootstrapd binary as real processes on
// loopback addresses, the way an operator runs it.
package e2e
