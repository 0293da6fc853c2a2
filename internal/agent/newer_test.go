package agent

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/clusterstate"
)

// TestNewerReleaseIsRefused: a message, a push/pull state and a cluster
// state of a newer protocol or format than this release's are refused, not
// misread: the plan stays, and status names who sent what, until they
// stop.
func TestNewerReleaseIsRefused(t *testing.T) {
	c := newCluster(t)
	c.startN(3, nil)
	plans := c.waitCommitted(c.nodes, 30*time.Second)
	a := c.nodes[0].agent
	h := gossipHandler{a}
	// A commit of protocol 2 names a plan of a later epoch; this agent
	// must not take it.
	p := a.Status().Plan
	h.HandleMessage("n01", []byte(fmt.Sprintf(`{"v":%d,"t":"commit","p":{"epoch":%d}}`, agree.Protocol+1, p.Epoch+5)))
	h.MergeRemoteState([]byte(fmt.Sprintf(`{"v":%d,"plan":{"epoch":99}}`, agree.Protocol+2)), false)
	a.noteNewer("n02", &clusterstate.NewerFormatError{Format: clusterstate.Format + 3})
	want := []string{
		fmt.Sprintf("n01 sent a message of protocol %d, which this agent (protocol %d, state format %d) cannot read: it runs a newer nomad-bootstrapd",
			agree.Protocol+1, agree.Protocol, clusterstate.Format),
		fmt.Sprintf("a member's push/pull sync sent a push/pull state of protocol %d", agree.Protocol+2),
		fmt.Sprintf("n02 sent a cluster state of format %d", clusterstate.Format+3),
	}
	s := a.Status()
	for _, w := range want {
		if !slices.ContainsFunc(s.Warnings, func(got string) bool { return strings.Contains(got, w) }) {
			t.Errorf("no warning %q in %q", w, s.Warnings)
		}
	}
	if s.Plan.Epoch != plans[0].Epoch {
		t.Errorf("the plan moved to epoch %d", s.Plan.Epoch)
	}
	// Errors of this release's own kind are no such news.
	if a.noteNewer("n01", fmt.Errorf("agree: malformed message")) {
		t.Error("a malformed message counted as a newer release's")
	}
	// Shown while they keep coming, gone once they stopped.
	a.mu.Lock()
	for k, n := range a.newer {
		n.at = a.now().Add(-newerShownFor - time.Second)
		a.newer[k] = n
	}
	a.mu.Unlock()
	if s := a.Status(); slices.ContainsFunc(s.Warnings, func(got string) bool { return strings.Contains(got, "newer nomad-bootstrapd") }) {
		t.Errorf("warnings of a newer release outlive it: %q", s.Warnings)
	}
}
