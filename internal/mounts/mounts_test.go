package mounts

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	info := `22 1 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:25 / /tmp/demo/node1/opt/nomad/data/alloc/x/secrets rw - tmpfs tmpfs rw
31 22 0:26 / /tmp/demo/node1/opt/nomad/data/alloc/x/task/private rw - tmpfs tmpfs rw
32 22 0:27 / /tmp/demo/node1/with\040space rw - tmpfs tmpfs rw
33 22 0:28 / /tmp/demo2/other rw - tmpfs tmpfs rw
`
	got, err := parse(strings.NewReader(info), "/tmp/demo/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/tmp/demo/node1/opt/nomad/data/alloc/x/task/private",
		"/tmp/demo/node1/opt/nomad/data/alloc/x/secrets",
		"/tmp/demo/node1/with space",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
}

func TestUnmountUnderNothing(t *testing.T) {
	if err := UnmountUnder(t.TempDir()); err != nil {
		t.Errorf("UnmountUnder on a directory without mounts: %v", err)
	}
}
