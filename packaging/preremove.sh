#!/bin/sh
# nomad-bootstrapd pre-removal (deb prerm, rpm %preun).
#
# On removal, stops and disables the agent; on upgrade, leaves it running
# (postinstall restarts it with the new binary). Nomad keeps running either
# way: removing the agent must not take a cluster node's workloads down.
set -e

# deb: remove | upgrade NEW | deconfigure | failed-upgrade OLD;
# rpm: 0 (removal) or 1 (upgrade).
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl stop nomad-bootstrapd.service >/dev/null 2>&1 || true
fi
# Disabling only removes links, so it works without a running systemd too.
systemctl disable nomad-bootstrapd.service >/dev/null 2>&1 || true
exit 0
