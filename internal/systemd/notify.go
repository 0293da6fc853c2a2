package systemd

import (
	"fmt"

	"github.com/coreos/go-systemd/v22/daemon"
)

// States sent with Notify.
const (
	// Ready tells systemd that the service has started (Type=notify).
	Ready = daemon.SdNotifyReady
	// Stopping tells systemd that the service is shutting down.
	Stopping = daemon.SdNotifyStopping
	// Reloading tells systemd that the service reloads its configuration;
	// send Ready when done.
	Reloading = daemon.SdNotifyReloading
	// Watchdog tells systemd that the service is alive (WatchdogSec=).
	Watchdog = daemon.SdNotifyWatchdog
)

// Notify sends state to systemd, for instance Ready. It reports false, and
// does nothing, when the process was not started by systemd with a
// notification socket (NOTIFY_SOCKET unset), so callers need not check.
func Notify(state string) (bool, error) {
	sent, err := daemon.SdNotify(false, state)
	if err != nil {
		return false, fmt.Errorf("systemd: notify: %w", err)
	}
	return sent, nil
}
