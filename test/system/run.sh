#!/usr/bin/env bash
# System test: the .deb in three booted Debian bookworm systems with real
# systemd as PID 1, joined by a bridge, on one machine. Needs root.
#
#   DEB=dist/nomad-bootstrapd_….deb NOMAD_BIN=/path/to/nomad test/system/run.sh
#
# Each node is an overlay (or copy) of a cached debootstrap rootfs, booted with
# systemd as PID 1 in its own PID, mount, UTS, IPC, network and cgroup
# namespaces, with its own cgroup in every hierarchy. Node i (1..3) is called
# node<i>, has address 198.18.0.1<i>/24 on eth0, a veth whose other end is on
# the bridge nbd-br0 (198.18.0.1) in the host, and a default route through
# it; the host does not forward the nodes' packets anywhere else. Every node
# gets NOMAD_BIN as /usr/bin/nomad and the .deb installed with dpkg -i; or,
# with NOMAD_REPO set, an apt repository of `nomad` .debs at /srv/nomad-repo
# as its only package source, and NOMAD_REPO_VERSION installed from it.
#
# Then, if SYSTEM_TEST_HOOK names an executable, it runs with:
#   NODE_PIDS="p1 p2 p3"    host PIDs of the nodes' systemd (nsenter -t PID)
#   NODE_ROOTS="r1 r2 r3"   the nodes' root directories, seen from the host
#   NODE_ADDRS="198.18.0.11 198.18.0.12 198.18.0.13"
#   NODE_NAMES="node1 node2 node3"  the nodes' hostnames
#   NODE_EXEC=path          `$NODE_EXEC I CMD...` runs CMD as root in node I
#                           (1-based) with a clean environment
#   SYSTEM_TEST_DIR=dir     scratch directory, removed at the end
# Its exit status is the test's; it must finish within SYSTEM_TEST_HOOK_TIMEOUT
# seconds (default 900). Without a hook a smoke scenario runs instead.
#
# Everything started here is stopped by PID, and everything set up is torn
# down, when the script exits, however it exits. Every wait is bounded.
#
# Environment: DEB, NOMAD_BIN (required); NOMAD_REPO, a directory of
# `nomad` .debs and their Packages index, with NOMAD_REPO_VERSION, the
# Nomad version to install from it (make nomad-repo builds both); ROOTFS_CACHE (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/nomad-bootstrapd/rootfs-bookworm);
# DEBIAN_MIRROR (default: the bookworm mirror of /etc/apt/sources.list*);
# KEEP_LOGS=1 keeps the work directory's logs.

set -euo pipefail

NODES=3
BRIDGE=nbd-br0
NET_PREFIX=198.18.0
BOOT_TIMEOUT=60
SUITE=bookworm
INCLUDE=systemd,systemd-sysv,dbus,iproute2,ca-certificates
CACHE_STAMP="debootstrap --variant=minbase --include=$INCLUDE $SUITE (nbd rootfs v1)"
ROOTFS_CACHE=${ROOTFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nomad-bootstrapd/rootfs-$SUITE}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

T0=$SECONDS
log() { printf '==> [%3ds] %s\n' $((SECONDS - T0)) "$*"; }
pass() { printf 'PASS: %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*"
	FAILED=1
}
die() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}
FAILED=0

[[ $(id -u) == 0 ]] || die "must run as root (namespaces, mounts, debootstrap)"
[[ -n ${DEB:-} && -f $DEB ]] || die "DEB must name the .deb to test (make package builds it)"
[[ -n ${NOMAD_BIN:-} && -x $NOMAD_BIN ]] || die "NOMAD_BIN must name the nomad binary (make nomad builds it)"
DEB=$(realpath "$DEB")
NOMAD_BIN=$(realpath "$NOMAD_BIN")
if [[ -n ${NOMAD_REPO:-} ]]; then
	[[ -f $NOMAD_REPO/Packages && -n ${NOMAD_REPO_VERSION:-} ]] ||
		die "NOMAD_REPO must hold a Packages index, and NOMAD_REPO_VERSION name the Nomad to install from it (make nomad-repo)"
	NOMAD_REPO=$(realpath "$NOMAD_REPO")
fi
for tool in unshare nsenter ip findmnt flock timeout; do
	command -v "$tool" >/dev/null || die "$tool is missing"
done

# One run at a time: the bridge and namespace names are fixed.
exec 9>/run/nomad-bootstrapd-system-test.lock
flock -n 9 || die "another system test holds /run/nomad-bootstrapd-system-test.lock"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nbd-system.XXXXXX")
declare -a PIDS=() UNSHARE_PIDS=() ROOTS=() OVERLAYS=() CGROUPS=()
BG_PID=        # the long command run waits for
ROOTFS_TMP=    # a rootfs being built

# run CMD...: run CMD and wait for it. CMD runs in the background so that a
# signal to this script is handled at once, not when CMD ends; teardown
# stops CMD by its PID.
run() {
	local rc=0
	"$@" &
	BG_PID=$!
	wait "$BG_PID" || rc=$?
	BG_PID=
	return "$rc"
}

# ---------------------------------------------------------------- teardown

# wait_gone PID SECONDS: wait until PID has exited; false on timeout.
wait_gone() {
	local pid=$1 deadline=$((SECONDS + $2))
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# del_netns NAME: delete a network namespace. ip netns del sometimes leaves
# its mount behind (EBUSY) right after the namespace's last process died.
del_netns() {
	[[ -e /run/netns/$1 ]] || return 0
	ip netns del "$1" 2>/dev/null && return 0
	umount -l "/run/netns/$1" 2>/dev/null
	rm -f "/run/netns/$1"
	[[ ! -e /run/netns/$1 ]] || echo "cannot delete network namespace $1"
}

teardown() {
	local rc=$? i pid
	trap - EXIT INT TERM
	set +e
	log "tearing down"
	if [[ -n $BG_PID ]] && kill -0 "$BG_PID" 2>/dev/null; then
		kill -TERM "$BG_PID" 2>/dev/null
		wait_gone "$BG_PID" 10 || kill -KILL "$BG_PID" 2>/dev/null
		wait "$BG_PID" 2>/dev/null
	fi
	# Power each node off (SIGRTMIN+4 is systemd's poweroff; SIGTERM would
	# only make it re-execute itself), then SIGKILL what is left. When PID 1
	# of a PID namespace dies the kernel kills the rest of the namespace.
	for pid in "${PIDS[@]}"; do
		kill -s RTMIN+4 "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		if ! wait_gone "$pid" 20; then
			echo "node PID $pid did not power off in 20 s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null
			wait_gone "$pid" 10 || echo "node PID $pid survived SIGKILL"
		fi
	done
	for pid in "${UNSHARE_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait_gone "$pid" 10
		wait "$pid" 2>/dev/null
	done
	# The nodes' cgroups, deepest first.
	for cg in "${CGROUPS[@]}"; do
		[[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
		[[ -d $cg ]] && echo "cannot remove cgroup $cg"
	done
	for ((i = 1; i <= NODES; i++)); do
		del_netns "nbd-node$i"
	done
	ip link del "$BRIDGE" 2>/dev/null
	if [[ -n $ROOTFS_TMP && -d $ROOTFS_TMP ]]; then
		findmnt -rn -o TARGET | grep "^$ROOTFS_TMP/" | sort -r | xargs -r -n1 umount -l
		rm -rf --one-file-system "$ROOTFS_TMP"
	fi
	for m in "${OVERLAYS[@]}"; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	if findmnt -rn -o TARGET | grep -q "^$WORK"; then
		echo "mounts left under $WORK; not removing it"
	elif [[ ${KEEP_LOGS:-} == 1 ]]; then
		find "$WORK" -mindepth 1 -maxdepth 1 ! -name '*.log' -exec rm -rf --one-file-system {} +
		echo "logs kept in $WORK"
	else
		rm -rf --one-file-system "$WORK"
	fi
	log "done"
	exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- rootfs

# mirror prints the Debian mirror that serves $SUITE according to apt's
# sources (one-line .list and deb822 .sources), or deb.debian.org.
mirror() {
	local f line uris suites
	if [[ -n ${DEBIAN_MIRROR:-} ]]; then
		echo "$DEBIAN_MIRROR"
		return
	fi
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		while read -r line; do
			# deb [options] URI SUITE COMPONENTS...
			line=$(sed -E 's/\[[^]]*\]//' <<<"$line")
			read -r -a w <<<"$line"
			if [[ ${w[0]:-} == deb && ${w[2]:-} == "$SUITE" ]]; then
				echo "${w[1]}"
				return
			fi
		done <"$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		# Paragraphs separated by blank lines; print the URI of the first
		# whose Suites include $SUITE itself.
		awk -v suite="$SUITE" '
			BEGIN { RS = ""; FS = "\n" }
			{
				uri = ""; ok = 0; enabled = 1
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); uri = a[2] }
					if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
					if ($i ~ /^Enabled:[ \t]*no/) enabled = 0
				}
				if (ok && enabled && uri != "") { print uri; exit }
			}' "$f" | grep . && return
	done
	echo http://deb.debian.org/debian
}

build_rootfs() {
	if [[ -f $ROOTFS_CACHE/.nbd-rootfs && $(cat "$ROOTFS_CACHE/.nbd-rootfs") == "$CACHE_STAMP" ]]; then
		log "reusing the rootfs in $ROOTFS_CACHE"
		return
	fi
	if ! command -v debootstrap >/dev/null; then
		log "installing debootstrap"
		timeout 600 apt-get update -qq && timeout 600 apt-get install -y debootstrap >/dev/null
	fi
	local m tmp t
	m=$(mirror)
	mkdir -p "$(dirname "$ROOTFS_CACHE")"
	tmp=$(mktemp -d "$ROOTFS_CACHE.tmp.XXXXXX")
	ROOTFS_TMP=$tmp
	log "debootstrap $SUITE from $m into $tmp (a few minutes, once)"
	t=$SECONDS
	if ! run timeout 1800 debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$tmp" "$m" >"$WORK/debootstrap.log" 2>&1; then
		tail -20 "$WORK/debootstrap.log"
		die "debootstrap failed (log above)"
	fi
	# Every node gets its own machine ID and hostname at boot (below).
	: >"$tmp/etc/machine-id"
	# Nodes have no console: no gettys.
	for u in console-getty.service getty@.service serial-getty@.service getty.target; do
		ln -sf /dev/null "$tmp/etc/systemd/system/$u"
	done
	rm -f "$tmp"/var/cache/apt/archives/*.deb
	echo "$CACHE_STAMP" >"$tmp/.nbd-rootfs"
	rm -rf --one-file-system "$ROOTFS_CACHE"
	mv "$tmp" "$ROOTFS_CACHE"
	ROOTFS_TMP=
	log "debootstrap took $((SECONDS - t)) s ($(du -sh "$ROOTFS_CACHE" | cut -f1))"
}

# ---------------------------------------------------------------- cgroups

# cgroup_layout prints one line per cgroup hierarchy of this process:
# "MOUNTPOINT OUR-PATH FSTYPE OPTIONS", e.g.
# "/sys/fs/cgroup/memory /process_api/x cgroup memory".
cgroup_layout() {
	local id ctrls path target opts fstype want ok c
	while IFS=: read -r id ctrls path; do
		if [[ -z $ctrls ]]; then
			target=$(findmnt -rn -t cgroup2 -o TARGET | head -1)
			[[ -n $target ]] && echo "$target $path cgroup2 -"
			continue
		fi
		while read -r target opts; do
			ok=1
			IFS=, read -r -a want <<<"$ctrls"
			for c in "${want[@]}"; do
				[[ ,$opts, == *,$c,* ]] || ok=0
			done
			if ((ok)); then
				# Keep the hierarchy's own options, drop generic mount flags.
				opts=$(tr , '\n' <<<"$opts" | grep -vxE 'rw|ro|relatime|noatime|nosuid|nodev|noexec|release_agent=.*' | paste -sd, -)
				echo "$target $path cgroup $opts"
				break
			fi
		done < <(findmnt -rn -t cgroup -o TARGET,OPTIONS)
	done </proc/self/cgroup
}

# ---------------------------------------------------------------- nodes

# The script run in each node's new namespaces: mount the node's filesystems
# and exec systemd (DESIGN §7, with a private /dev, a read-only /sys and
# /proc/sys, the node's own cgroups, and a file for its console).
cat >"$WORK/boot.sh" <<'BOOT'
#!/usr/bin/env bash
set -euo pipefail
R=$1 LAYOUT=$2 CONSOLE=$3
exec </dev/null
mount --bind "$R" "$R"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount --rbind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
# cgroups: fresh mounts in our cgroup namespace show our own cgroup as the root.
if [[ $(findmnt -rn -o FSTYPE /sys/fs/cgroup) == cgroup2 ]]; then
	mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
else
	mount -t tmpfs -o mode=755,nosuid,nodev,noexec cgroup "$R/sys/fs/cgroup"
	while read -r target _ fstype opts; do
		d=$R/sys/fs/cgroup/${target#/sys/fs/cgroup/}
		mkdir -p "$d"
		if [[ $fstype == cgroup2 ]]; then
			mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$d"
		else
			mount -t cgroup -o "nosuid,nodev,noexec,$opts" cgroup "$d"
		fi
	done <"$LAYOUT"
	mount -o remount,ro "$R/sys/fs/cgroup"
fi
# A private /dev: the host's devices and console stay the host's.
mount -t tmpfs -o mode=755,nosuid dev "$R/dev"
for n in null zero full random urandom tty; do
	touch "$R/dev/$n"
	mount --bind "/dev/$n" "$R/dev/$n"
done
touch "$R/dev/console"
mount --bind "$CONSOLE" "$R/dev/console"
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$R/dev/shm"
mount -t mqueue -o nosuid,nodev,noexec mqueue "$R/dev/mqueue"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=755,nosuid,nodev run "$R/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$R/tmp"
exec chroot "$R" /usr/bin/env -i container=other PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd
BOOT

# in_node I CMD...: run CMD as root in node I with a clean environment.
cat >"$WORK/in-node" <<'EXEC'
#!/usr/bin/env bash
set -euo pipefail
i=$1
shift
read -r -a pids <<<"$NODE_PIDS"
pid=${pids[$((i - 1))]:?no node $i}
exec nsenter -t "$pid" -m -u -i -n -p -C -r -w \
	/usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
EXEC
chmod +x "$WORK/in-node"
in_node() { timeout "${TIMEOUT:-60}" "$WORK/in-node" "$@"; }

build_rootfs

log "network: bridge $BRIDGE $NET_PREFIX.1/24"
for ((i = 1; i <= NODES; i++)); do del_netns "nbd-node$i"; done
ip link del "$BRIDGE" 2>/dev/null || true
ip link add "$BRIDGE" type bridge
ip addr add "$NET_PREFIX.1/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Packets from the nodes go nowhere but to each other and this host.
echo 0 >"/proc/sys/net/ipv4/conf/$BRIDGE/forwarding"

cgroup_layout >"$WORK/cgroups"
[[ -s $WORK/cgroups ]] || die "no cgroup hierarchy found"

ADDRS=() NAMES=()
boot_start=$SECONDS
for ((i = 1; i <= NODES; i++)); do
	name=node$i addr=$NET_PREFIX.1$i ns=nbd-node$i
	NAMES+=("$name")
	ADDRS+=("$addr")

	# Root: an overlay over the cached rootfs, or a copy.
	root=$WORK/$name/root
	mkdir -p "$root" "$WORK/$name/upper" "$WORK/$name/work"
	if mount -t overlay overlay -o "lowerdir=$ROOTFS_CACHE,upperdir=$WORK/$name/upper,workdir=$WORK/$name/work" "$root" 2>/dev/null; then
		OVERLAYS+=("$root")
	else
		((i > 1)) || log "overlayfs unavailable: copying the rootfs"
		cp -a "$ROOTFS_CACHE/." "$root/"
	fi
	ROOTS+=("$root")
	echo "$name" >"$root/etc/hostname"
	{
		echo "127.0.0.1 localhost"
		echo "::1 localhost ip6-localhost ip6-loopback"
		for ((j = 1; j <= NODES; j++)); do echo "$NET_PREFIX.1$j node$j"; done
	} >"$root/etc/hosts"
	od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
	echo >>"$root/etc/machine-id"
	if [[ -n ${NOMAD_REPO:-} ]]; then
		# The repository is the node's only package source: nothing is
		# fetched from anywhere else.
		mkdir -p "$root/srv/nomad-repo"
		cp "$NOMAD_REPO"/*.deb "$NOMAD_REPO/Packages" "$root/srv/nomad-repo/"
		rm -f "$root"/etc/apt/sources.list.d/*
		echo "deb [trusted=yes] file:/srv/nomad-repo ./" >"$root/etc/apt/sources.list"
	else
		install -m 0755 "$NOMAD_BIN" "$root/usr/bin/nomad"
	fi

	# Network namespace with eth0 on the bridge.
	ip netns add "$ns"
	ip link add "nbd-veth$i" type veth peer name eth0 netns "$ns"
	ip link set "nbd-veth$i" master "$BRIDGE" up
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "$addr/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "$NET_PREFIX.1"

	# The node's own cgroup in every hierarchy.
	while read -r target path fstype _; do
		cg=$target${path%/}/nbd-$name
		mkdir -p "$cg"
		CGROUPS+=("$cg")
		if [[ -f $cg/cpuset.cpus ]]; then
			cat "$(dirname "$cg")/cpuset.cpus" >"$cg/cpuset.cpus"
			cat "$(dirname "$cg")/cpuset.mems" >"$cg/cpuset.mems"
		fi
	done <"$WORK/cgroups"

	: >"$WORK/$name-console.log"
	# Boot: a subshell moves itself into the node's cgroups, then becomes
	# unshare, whose child is the node's PID 1.
	(
		while read -r target path _; do
			echo "$BASHPID" >"$target${path%/}/nbd-$name/cgroup.procs"
		done <"$WORK/cgroups"
		# (unshare --net=FILE would make a new network namespace, not enter one.)
		exec nsenter --net="/run/netns/$ns" \
			unshare --pid --fork --kill-child --mount --propagation private --uts --ipc --cgroup \
			bash "$WORK/boot.sh" "$root" "$WORK/cgroups" "$WORK/$name-console.log"
	) >"$WORK/$name.log" 2>&1 &
	upid=$!
	UNSHARE_PIDS+=("$upid")

	# PID 1 of the node is unshare's only child.
	deadline=$((SECONDS + 10)) pid=
	while [[ -z $pid ]]; do
		pid=$(cat "/proc/$upid/task/$upid/children" 2>/dev/null | awk '{print $1}') || true
		[[ -n $pid ]] && break
		kill -0 "$upid" 2>/dev/null || { cat "$WORK/$name.log"; die "$name: unshare exited"; }
		((SECONDS < deadline)) || die "$name: no PID 1 after 10 s"
		sleep 0.1
	done
	PIDS+=("$pid")
	# unshare itself goes back to our cgroups, leaving the node's to systemd.
	while read -r target path _; do
		echo "$upid" >"$target$path/cgroup.procs" 2>/dev/null || true
	done <"$WORK/cgroups"
	log "$name: PID $pid, $addr, root $root"
done

export NODE_PIDS="${PIDS[*]}" NODE_ROOTS="${ROOTS[*]}" NODE_ADDRS="${ADDRS[*]}" NODE_NAMES="${NAMES[*]}"
export NODE_EXEC=$WORK/in-node SYSTEM_TEST_DIR=$WORK

for ((i = 1; i <= NODES; i++)); do
	deadline=$((SECONDS + BOOT_TIMEOUT)) state=
	while :; do
		state=$(TIMEOUT=10 in_node "$i" systemctl is-system-running 2>"$WORK/node$i.wait.log") || true
		[[ $state == running || $state == degraded ]] && break
		if ((SECONDS >= deadline)); then
			cat "$WORK/node$i.log" "$WORK/node$i.wait.log"
			tail -20 "$WORK/node$i-console.log"
			die "node$i: systemd not up after $BOOT_TIMEOUT s (is-system-running: ${state:-no answer})"
		fi
		sleep 0.5
	done
	if [[ $state == degraded ]]; then
		echo "node$i is degraded; failed units:"
		in_node "$i" systemctl --failed --no-legend || true
	fi
done
boot_time=$((SECONDS - boot_start))
pass "$NODES nodes booted systemd as PID 1 in $boot_time s (is-system-running: running or degraded)"

if [[ -n ${NOMAD_REPO:-} ]]; then
	for ((i = 1; i <= NODES; i++)); do
		if TIMEOUT=300 run in_node "$i" bash -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nomad=$NOMAD_REPO_VERSION-1" \
			>"$WORK/node$i-apt.log" 2>&1; then
			pass "node$i: apt-get install nomad=$NOMAD_REPO_VERSION-1 from the local repository"
		else
			cat "$WORK/node$i-apt.log"
			die "node$i: apt-get install nomad=$NOMAD_REPO_VERSION-1 failed"
		fi
	done
fi

for ((i = 1; i <= NODES; i++)); do
	cp "$DEB" "${ROOTS[i - 1]}/var/tmp/nomad-bootstrapd.deb"
	if TIMEOUT=120 run in_node "$i" dpkg -i /var/tmp/nomad-bootstrapd.deb >"$WORK/node$i-dpkg.log" 2>&1; then
		pass "node$i: dpkg -i $(basename "$DEB")"
	else
		cat "$WORK/node$i-dpkg.log"
		die "node$i: dpkg -i failed"
	fi
done

# ---------------------------------------------------------------- scenario

if [[ -n ${SYSTEM_TEST_HOOK:-} ]]; then
	[[ -x $SYSTEM_TEST_HOOK ]] || die "SYSTEM_TEST_HOOK=$SYSTEM_TEST_HOOK is not executable"
	log "running $SYSTEM_TEST_HOOK"
	rc=0
	run timeout "${SYSTEM_TEST_HOOK_TIMEOUT:-900}" "$SYSTEM_TEST_HOOK" || rc=$?
	if ((rc == 0)); then
		pass "$SYSTEM_TEST_HOOK"
	elif ((rc == 124)); then
		fail "$SYSTEM_TEST_HOOK did not finish in ${SYSTEM_TEST_HOOK_TIMEOUT:-900} s"
	else
		fail "$SYSTEM_TEST_HOOK exited with $rc"
	fi
else
	log "smoke scenario"
	# The nodes reach each other: a refused connection proves the route.
	for ((i = 2; i <= NODES; i++)); do
		if out=$(TIMEOUT=10 in_node 1 bash -c "exec 3<>/dev/tcp/${ADDRS[i - 1]}/9" 2>&1) ||
			[[ $out == *"Connection refused"* ]]; then
			pass "node1 reaches node$i at ${ADDRS[i - 1]}"
		else
			fail "node1 cannot reach node$i at ${ADDRS[i - 1]}: $out"
		fi
	done

	# systemd manages units: enable --now a trivial service.
	printf '[Unit]\nDescription=nomad-bootstrapd system test\n\n[Service]\nExecStart=/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n' \
		>"${ROOTS[0]}/etc/systemd/system/nbd-smoke.service"
	if in_node 1 systemctl enable --now nbd-smoke.service >/dev/null 2>&1 &&
		[[ $(in_node 1 systemctl is-active nbd-smoke.service) == active ]] &&
		[[ $(in_node 1 systemctl is-enabled nbd-smoke.service) == enabled ]]; then
		pass "node1: systemctl enable --now nbd-smoke.service: enabled and active"
	else
		fail "node1: nbd-smoke.service is not enabled and active"
		in_node 1 systemctl status nbd-smoke.service || true
	fi

	# The package installed the unit and did not start it: no token yet.
	for ((i = 1; i <= NODES; i++)); do
		show=$(in_node "$i" systemctl show -p LoadState -p ActiveState -p UnitFileState -p FragmentPath nomad-bootstrapd.service) || true
		if grep -qx LoadState=loaded <<<"$show" && grep -qx ActiveState=inactive <<<"$show" &&
			grep -qx UnitFileState=disabled <<<"$show" &&
			grep -qxE 'FragmentPath=(/usr)?/lib/systemd/system/nomad-bootstrapd.service' <<<"$show"; then
			pass "node$i: nomad-bootstrapd.service is loaded, disabled and not started"
		else
			fail "node$i: nomad-bootstrapd.service: $(tr '\n' ' ' <<<"$show")"
		fi
	done
	status=$(in_node 1 systemctl status nomad-bootstrapd.service 2>&1) && rc=0 || rc=$?
	if [[ $rc == 3 && $status == *"Loaded: loaded ("*"/lib/systemd/system/nomad-bootstrapd.service; disabled"* ]]; then
		pass "node1: systemctl status nomad-bootstrapd: installed, inactive (exit 3)"
	else
		fail "node1: systemctl status nomad-bootstrapd (exit $rc): $status"
	fi
	modes=$(in_node 1 stat -c '%n %a' /etc/nomad-bootstrapd /var/lib/nomad-bootstrapd) || true
	if [[ $modes == $'/etc/nomad-bootstrapd 755\n/var/lib/nomad-bootstrapd 700' ]]; then
		pass "node1: postinstall made /etc/nomad-bootstrapd (0755) and /var/lib/nomad-bootstrapd (0700)"
	else
		fail "node1: directories: $modes"
	fi
	if in_node 1 dpkg-query -W -f='${Conffiles}\n' nomad-bootstrapd | grep -q '^ /etc/nomad-bootstrapd/config.hcl '; then
		pass "node1: config.hcl is a conffile"
	else
		fail "node1: config.hcl is not a conffile"
	fi
	if [[ $(in_node 1 nomad version | head -1) == Nomad\ v* ]]; then
		pass "node1: $(in_node 1 nomad version | head -1) at /usr/bin/nomad"
	else
		fail "node1: /usr/bin/nomad does not run"
	fi

	# Upgrade (reinstall) keeps the unit enabled; removal stops and disables it
	# and keeps the state directory.
	in_node 2 systemctl enable nomad-bootstrapd.service >/dev/null 2>&1 || true
	TIMEOUT=120 in_node 2 dpkg -i /var/tmp/nomad-bootstrapd.deb >>"$WORK/node2-dpkg.log" 2>&1 || true
	if [[ $(in_node 2 systemctl is-enabled nomad-bootstrapd.service) == enabled ]]; then
		pass "node2: reinstalling the .deb keeps nomad-bootstrapd enabled"
	else
		fail "node2: reinstalling the .deb disabled nomad-bootstrapd"
	fi
	echo marker >"${ROOTS[1]}/var/lib/nomad-bootstrapd/keep" || true
	TIMEOUT=120 in_node 2 dpkg -r nomad-bootstrapd >>"$WORK/node2-dpkg.log" 2>&1 || true
	if [[ $(in_node 2 systemctl is-enabled nomad-bootstrapd.service 2>&1) != enabled ]] &&
		[[ ! -e ${ROOTS[1]}/etc/systemd/system/multi-user.target.wants/nomad-bootstrapd.service ]] &&
		[[ -f ${ROOTS[1]}/var/lib/nomad-bootstrapd/keep ]] &&
		[[ ! -e ${ROOTS[1]}/usr/bin/nomad-bootstrapd ]]; then
		pass "node2: dpkg -r disables the unit and keeps /var/lib/nomad-bootstrapd"
	else
		fail "node2: after dpkg -r: $(in_node 2 systemctl is-enabled nomad-bootstrapd.service 2>&1)"
	fi
fi

# internal/systemd's Manager against this systemd, over D-Bus, with the
# scenario or the hook.
if command -v go >/dev/null; then
	if run env -C "$REPO" CGO_ENABLED=0 timeout 300 go test -c -tags systemd -o "$WORK/systemd.test" ./internal/systemd >"$WORK/go-test-build.log" 2>&1; then
		install -m 0755 "$WORK/systemd.test" "${ROOTS[0]}/var/tmp/systemd.test"
		if TIMEOUT=120 run in_node 1 /var/tmp/systemd.test -test.run 'Booted' -test.v >"$WORK/systemd-test.log" 2>&1 &&
			grep -q -- '--- PASS: TestManagerBooted' "$WORK/systemd-test.log" &&
			grep -q -- '--- PASS: TestEnsureBooted' "$WORK/systemd-test.log"; then
			pass "node1: internal/systemd Manager over D-Bus (go test -tags systemd)"
		else
			fail "node1: internal/systemd Manager over D-Bus"
			cat "$WORK/systemd-test.log"
		fi
	else
		cat "$WORK/go-test-build.log"
		fail "building the internal/systemd test binary"
	fi
else
	echo "SKIP: go is not installed: internal/systemd's D-Bus test"
fi

log "total $((SECONDS - T0)) s (boot $boot_time s)"
if ((FAILED)); then
	echo "FAIL: system test"
	exit 1
fi
echo "PASS: system test"
