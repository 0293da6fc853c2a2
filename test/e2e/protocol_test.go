package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

// TestUnreadableMemberIsReported joins a member whose node metadata is of
// a format version no agent of this release reads, as a newer release's
// could be: every agent keeps its plan and says in status that the member
// cannot be read and takes no part; once it leaves, the warning goes.
func TestUnreadableMemberIsReported(t *testing.T) {
	const prefix = "127.22.13"
	token, procs := clusterAt(t, prefix, 3, func(int) []string { return nil })
	before := waitSettled(t, procs, 60*time.Second, "the cluster to settle")
	tok, err := certs.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	meta := append([]byte{99}, make([]byte, 40)...)
	ml := rawMemberlist(t, "future", prefix+".20", tok.GossipKey(), tok.GossipLabel(), junkMeta{meta: meta})
	if n, err := ml.Join([]string{procs[0].addr + ":4650"}); n != 1 {
		t.Fatalf("the member of another format could not join: %v", err)
	}
	warned := func(p *proc) bool {
		s, _ := statusJSON(t, p.root)
		for _, w := range s.Warnings {
			if strings.Contains(w, "member future (") && strings.Contains(w, "cannot read (unknown format version 99)") {
				return true
			}
		}
		return false
	}
	waitForOr(t, 30*time.Second, "every agent to report the member it cannot read", func() bool {
		for _, p := range procs {
			if !warned(p) {
				return false
			}
		}
		return true
	}, explainCluster(t, procs))
	if after := waitSettled(t, procs, 10*time.Second, "the cluster to keep its plan"); after != before {
		t.Errorf("the plan changed: %s, was %s", after, before)
	}
	ml.Leave(time.Second)
	ml.Shutdown()
	waitForOr(t, 30*time.Second, "the warning to go once the member left", func() bool {
		for _, p := range procs {
			if warned(p) {
				return false
			}
		}
		return true
	}, explainCluster(t, procs))
}
