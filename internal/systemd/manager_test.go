package systemd

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// booted reports whether this machine runs systemd as its service manager.
func booted() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

func TestConnectWithoutSystemd(t *testing.T) {
	if booted() {
		t.Skip("systemd runs here")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m, err := Connect(ctx)
	if err == nil {
		m.Close()
		t.Fatal("Connect succeeded without systemd")
	}
	if !strings.Contains(err.Error(), "is this machine booted with systemd?") {
		t.Errorf("error %q does not say why", err)
	}
}
