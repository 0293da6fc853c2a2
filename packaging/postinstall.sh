#!/bin/sh
# nomad-bootstrapd post-installation (deb postinst, rpm %post).
#
# Creates the agent's directories and makes systemd read the new unit. It
# never starts the service: the agent needs the cluster's join token first.
# On upgrade it restarts the agent only if it was running; that restarts
# neither Nomad nor anything Nomad runs.
set -e

# deb: configure [old-version]; rpm: 1 (install) or 2 (upgrade).
case "$1" in
configure)
	upgrade=${2:+yes}
	;;
1) upgrade= ;;
[0-9]*) upgrade=yes ;;
*) exit 0 ;; # deb: abort-upgrade, abort-remove, abort-deconfigure
esac

install -d -m 0755 /etc/nomad-bootstrapd
install -d -m 0700 /var/lib/nomad-bootstrapd

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if [ -n "$upgrade" ]; then
		systemctl try-restart nomad-bootstrapd.service >/dev/null 2>&1 || true
	fi
fi

if [ -z "$upgrade" ] && [ ! -e /etc/nomad-bootstrapd/token ]; then
	cat <<'HINT'
nomad-bootstrapd is installed but not started: it needs the cluster's join token.
  1. Once per cluster, anywhere:  nomad-bootstrapd token create
  2. Put the token in /etc/nomad-bootstrapd/token (chmod 600) and the seed
     addresses in /etc/nomad-bootstrapd/config.hcl (join = ["10.0.0.5", ...]).
  3. systemctl enable --now nomad-bootstrapd
Or in one step:
  nomad-bootstrapd join -token-file /etc/nomad-bootstrapd/token -join 10.0.0.5,10.0.0.6
HINT
fi
exit 0
