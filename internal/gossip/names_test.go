package gossip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// A peer holding the key but announcing a name no node may have (control
// characters, too long, not UTF-8) is never a member.
func TestMembersWithBadNamesAreRefused(t *testing.T) {
	good := startNode(t, "good")
	for _, name := range []string{
		"evil\x1b[2Jname",
		"two\nlines",
		strings.Repeat("n", MaxNameLen+1),
		"bad\xffutf8",
	} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			// A rogue speaking memberlist with the cluster's key, its own
			// checks of names turned off.
			rogue := startNode(t, "rogue", func(c *Config) {
				c.Tuning = func(mc *memberlist.Config) {
					mc.Name = name
					mc.Alive = nil
				}
			})
			rogue.Join([]string{good.addr()})
			time.Sleep(300 * time.Millisecond) // a few gossip rounds
			for _, m := range good.Members() {
				if m.Name != "good" {
					t.Errorf("member %q admitted", m.Name)
				}
			}
		})
	}
}
