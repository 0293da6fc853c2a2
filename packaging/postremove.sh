#!/bin/sh
# nomad-bootstrapd post-removal (deb postrm, rpm %postun).
#
# Makes systemd forget the removed unit. Nothing else is deleted, not even on
# purge: /var/lib/nomad-bootstrapd holds the node's identity, the committed
# plan and, on servers, the cluster CA, and /etc/nomad.d, /opt/nomad and
# nomad.service belong to a Nomad that keeps running without this agent.
# Delete them by hand once the node has left the cluster.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
