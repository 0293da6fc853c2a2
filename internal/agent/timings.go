package agent

import (
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
)

// Timings are the agent's intervals, timeouts and backoffs, the agreement
// protocol's among them. [DefaultTimings] are those the daemon runs with;
// the tests run with shorter ones for nodes that all run on one machine, as
// memberlist's DefaultLocalConfig is to its DefaultLANConfig.
type Timings struct {
	// JoinBackoffMin and JoinBackoffMax bound the wait between attempts of
	// the first join, which doubles from the one to the other.
	JoinBackoffMin, JoinBackoffMax time.Duration
	// DeadNodeReclaim is how long memberlist waits before a dead node's
	// name may be taken by another address (a node back on a new address).
	DeadNodeReclaim time.Duration
	// RejoinMin is how often the agent looks for seeds that are not alive
	// members; while one stays missing, the wait doubles up to RejoinMax.
	RejoinMin, RejoinMax time.Duration
	// SeedLookup bounds resolving a seed given as a host name.
	SeedLookup time.Duration
	// PipelineFast is how often the pipeline looks at Nomad while Nomad is
	// starting, PipelineCalm once it runs.
	PipelineFast, PipelineCalm time.Duration
	// PipelineHandover bounds the wait for a pipeline to stop when a
	// successor plan starts the next one.
	PipelineHandover time.Duration
	// StepRetryMin and StepRetryMax bound the wait between attempts of a
	// pipeline step that failed, which doubles from the one to the other.
	StepRetryMin, StepRetryMax time.Duration
	// CARequest bounds one certificate request to a CA holder.
	CARequest time.Duration
	// WantCA spaces a server's requests for the escrowed CA key.
	WantCA time.Duration
	// ACLAttempt bounds one attempt of the ACL setup on a server.
	ACLAttempt time.Duration
	// ClusterSync is how often a server reads the cluster state from Nomad
	// and carries out its evictions on Nomad's nodes.
	ClusterSync time.Duration
	// KeyWait bounds how long a rotation of Nomad's gossip key waits for
	// every server to hold the new key, and then to hold it only.
	KeyWait time.Duration
	// Agree are the agreement protocol's timings.
	Agree agree.Timings
}

// DefaultTimings returns the timings the daemon runs with.
func DefaultTimings() Timings {
	return Timings{
		JoinBackoffMin:  100 * time.Millisecond,
		JoinBackoffMax:  5 * time.Second,
		DeadNodeReclaim: 10 * time.Second,
		RejoinMin:       5 * time.Second,
		RejoinMax:       30 * time.Second,
		SeedLookup:      2 * time.Second,
		PipelineFast:    250 * time.Millisecond,
		PipelineCalm:    2 * time.Second,
		// A pipeline stops within one Nomad API call or certificate
		// request; a minute is far past either.
		PipelineHandover: time.Minute,
		// Starts short: right after a commit the CA holder may not listen
		// yet, and a refused connection costs nothing to retry.
		StepRetryMin: 100 * time.Millisecond,
		StepRetryMax: 30 * time.Second,
		CARequest:    10 * time.Second,
		WantCA:       2 * time.Second,
		ACLAttempt:   30 * time.Second,
		// Changes reach the members over gossip at once; the read from
		// Nomad only catches up a server that was away and puts back a
		// state that Nomad lost, so it need not be frequent.
		ClusterSync: time.Minute,
		// Serf spreads a keyring change to every server it reaches at
		// once; a minute is ample for the listing to show it.
		KeyWait: time.Minute,
		Agree:   agree.DefaultTimings(),
	}
}
