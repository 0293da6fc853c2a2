#!/usr/bin/env bash
# The cluster scenario of `make test-system`, run by test/system/run.sh as its
# SYSTEM_TEST_HOOK once the .deb is installed in every booted node: the
# cloud-init one-liner on each node, then the checks an operator would make.
# Every wait is bounded; the harness tears everything down.
set -euo pipefail

read -ra ADDRS <<<"$NODE_ADDRS"
read -ra ROOTS <<<"$NODE_ROOTS"
n=${#ADDRS[@]}
seeds=$(IFS=,; echo "${ADDRS[*]}")

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; exit 1; }
in_node() { "$NODE_EXEC" "$@"; }

# wait_for SECONDS WHAT CMD...: run CMD every second until it succeeds.
wait_for() {
	local limit=$1 what=$2 deadline=$((SECONDS + $1))
	shift 2
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || fail "$what: not within $limit s"
		sleep 1
	done
}

# fingerprint I: checksums of every file the agent manages on node I, but
# the scheduled snapshots, which come on their own schedule.
fingerprint() {
	local d dirs=()
	for d in etc/nomad.d etc/nomad-bootstrapd var/lib/nomad-bootstrapd etc/systemd/system; do
		[[ -d ${ROOTS[$1 - 1]}/$d ]] && dirs+=("$d")
	done
	(cd "${ROOTS[$1 - 1]}" && find "${dirs[@]}" -path var/lib/nomad-bootstrapd/snapshots -prune -o -type f -exec sha256sum {} + | sort)
}

token=$(in_node 1 nomad-bootstrapd token create 2>/dev/null)
for ((i = 1; i <= n; i++)); do
	in_node "$i" nomad-bootstrapd join -token "$token" -join "$seeds" -advertise "${ADDRS[i - 1]}" -name "node$i" \
		>"$SYSTEM_TEST_DIR/join$i.log" 2>&1 || { cat "$SYSTEM_TEST_DIR/join$i.log"; fail "node$i: join"; }
done
pass "the one-liner on $n nodes"

before=$(fingerprint 1)
in_node 1 nomad-bootstrapd join -token "$token" -join "$seeds" -advertise "${ADDRS[0]}" -name node1 >/dev/null 2>&1 ||
	fail "node1: second join"
[[ $(fingerprint 1) == "$before" ]] || fail "node1: a second identical join changed files"
pass "a second identical join changes nothing"

for ((i = 1; i <= n; i++)); do
	wait_for 300 "node$i: nomad-bootstrapd status exits 0" in_node "$i" nomad-bootstrapd status
done
pass "nomad-bootstrapd status exits 0 on every node"

for ((i = 1; i <= n; i++)); do
	for unit in nomad-bootstrapd nomad; do
		[[ $(in_node "$i" systemctl is-enabled "$unit") == enabled ]] || fail "node$i: $unit is not enabled"
		[[ $(in_node "$i" systemctl is-active "$unit") == active ]] || fail "node$i: $unit is not active"
	done
	json=$(in_node "$i" nomad-bootstrapd status -json | tr -d ' \n')
	peers=$(grep -o '"peers":\[[^]]*\]' <<<"$json" | grep -o ':4647' | wc -l)
	[[ $peers == 3 ]] || fail "node$i: Nomad reports $peers raft peers, want 3"
	grep -q '"leader":"[0-9.]*:4647"' <<<"$json" || fail "node$i: no Nomad leader"
	# The unit follows the installed Nomad: 1.6 and 1.7 never tell systemd
	# they are ready, so their unit is Type=simple; 1.8 and newer notify.
	nomad_version=$(in_node "$i" nomad version | sed -n 's/^Nomad v\([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p')
	grep -q "\"version\":\"$nomad_version\"" <<<"$json" || fail "node$i: status -json does not show Nomad $nomad_version"
	want_type=notify
	case $nomad_version in 1.6.* | 1.7.*) want_type=simple ;; esac
	unit_type=$(in_node "$i" systemctl show -p Type --value nomad)
	[[ $unit_type == "$want_type" ]] || fail "node$i: nomad.service is Type=$unit_type, want $want_type for Nomad $nomad_version"
done
pass "both units enabled and active everywhere; Nomad has a leader and 3 servers; nomad.service is Type=$unit_type for Nomad $nomad_version"

# Restarting the agents, on every node one by one and then on all nodes at
# once, keeps the plan and the certificates and leaves Nomad running: no file
# changes and nomad.service keeps its MainPID.
# plan I: the plan node I's status reports.
plan() { in_node "$1" nomad-bootstrapd status -json | tr -d ' \n' | grep -o '"plan":{[^}]*}'; }
# certs I: checksums of node I's certificates and keys.
certs() { (cd "${ROOTS[$1 - 1]}" && sha256sum etc/nomad.d/tls/*); }
declare -a PLAN FILES CERTS NOMAD_PID
for ((i = 1; i <= n; i++)); do
	PLAN[i]=$(plan "$i") || fail "node$i: no plan in status -json"
	FILES[i]=$(fingerprint "$i")
	CERTS[i]=$(certs "$i")
	NOMAD_PID[i]=$(in_node "$i" systemctl show -p MainPID --value nomad)
	[[ ${NOMAD_PID[i]} =~ ^[1-9][0-9]*$ ]] || fail "node$i: nomad.service has no MainPID"
done
for ((i = 2; i <= n; i++)); do
	[[ ${PLAN[i]} == "${PLAN[1]}" ]] || fail "node$i reports plan ${PLAN[i]}, node1 ${PLAN[1]}"
done
# unchanged WHAT: every node still has its plan, files, certificates and Nomad.
unchanged() {
	local i
	for ((i = 1; i <= n; i++)); do
		wait_for 120 "node$i: status after $1" in_node "$i" nomad-bootstrapd status
	done
	for ((i = 1; i <= n; i++)); do
		[[ $(plan "$i") == "${PLAN[i]}" ]] || fail "node$i: after $1 the plan is $(plan "$i"), was ${PLAN[i]}"
		[[ $(certs "$i") == "${CERTS[i]}" ]] || fail "node$i: $1 changed the certificates"
		[[ $(fingerprint "$i") == "${FILES[i]}" ]] || {
			diff <(echo "${FILES[i]}") <(fingerprint "$i") || true
			fail "node$i: $1 changed files"
		}
		[[ $(in_node "$i" systemctl show -p MainPID --value nomad) == "${NOMAD_PID[i]}" ]] ||
			fail "node$i: $1 restarted Nomad"
	done
}
for ((i = 1; i <= n; i++)); do
	in_node "$i" systemctl restart nomad-bootstrapd
	unchanged "restarting nomad-bootstrapd on node$i"
done
pass "systemctl restart nomad-bootstrapd on each node in turn: same plan, same certificates, no file changed, Nomad not restarted"
pids=()
for ((i = 1; i <= n; i++)); do
	in_node "$i" systemctl restart nomad-bootstrapd &
	pids+=($!)
done
for pid in "${pids[@]}"; do
	wait "$pid" || fail "systemctl restart nomad-bootstrapd on every node at once"
done
unchanged "restarting nomad-bootstrapd on every node at once"
pass "systemctl restart nomad-bootstrapd on every node at once: same plan, same certificates, no file changed, Nomad not restarted"

# Every server saved its first scheduled snapshot, private, as soon as its
# ACLs were set up.
for ((i = 1; i <= n; i++)); do
	wait_for 60 "node$i: a scheduled snapshot" in_node "$i" bash -c \
		'ls /var/lib/nomad-bootstrapd/snapshots/nomad-bootstrapd-*.snap >/dev/null && [[ $(stat -c %a /var/lib/nomad-bootstrapd/snapshots/nomad-bootstrapd-*.snap | sort -u) == 600 ]]'
done
pass "every server keeps a scheduled snapshot of Nomad's state and keyring, mode 0600"

# The agent's Prometheus endpoint answers on the node's loopback.
metrics=$(in_node 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4652 && printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3')
grep -q '^nomad_bootstrapd_phase{phase="running"} 1' <<<"$metrics" || fail "node2: metrics do not show phase running"
grep -q '^nomad_bootstrapd_plan_epoch 1' <<<"$metrics" || fail "node2: metrics do not show plan epoch 1"
pass "the metrics endpoint answers on 127.0.0.1:4652"

# With the agent stopped, status reads what it left, shows the units and exits 2.
in_node 2 systemctl stop nomad-bootstrapd
set +e
out=$(in_node 2 nomad-bootstrapd status 2>&1)
code=$?
set -e
[[ $code == 2 ]] || { echo "$out"; fail "node2: status with the agent stopped exited $code, want 2"; }
for want in "Phase    stopped" "systemctl start nomad-bootstrapd" "nomad-bootstrapd.service is inactive/dead" "nomad.service (active/running)" "Plan     epoch 1"; do
	grep -qF "$want" <<<"$out" || { echo "$out"; fail "node2: status with the agent stopped lacks: $want"; }
done
in_node 2 systemctl start nomad-bootstrapd
wait_for 120 "node2: status after starting the agent again" in_node 2 nomad-bootstrapd status
pass "status with the agent stopped shows the persisted state and the units, and exits 2"

# With NOMAD_UPGRADE_TO set (make test-system: Nomad came from the local
# apt repository at an older version), roll every node onto that version
# with upgrade nomad: each node installs it with apt-get from the repository
# and restarts nomad.service, the servers one at a time.
if [[ -n ${NOMAD_UPGRADE_TO:-} ]]; then
	from=$(in_node 1 nomad version | sed -n 's/^Nomad v\([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p')
	[[ $from != "$NOMAD_UPGRADE_TO" ]] || fail "Nomad $from runs already: nothing to upgrade"
	in_node 1 nomad-bootstrapd snapshot save /root/before-upgrade.snap >/dev/null || fail "node1: snapshot save before the upgrade"
	out=$(TIMEOUT=240 in_node 1 nomad-bootstrapd upgrade nomad -node-timeout 3m "$NOMAD_UPGRADE_TO" 2>&1) || {
		echo "$out"
		fail "node1: upgrade nomad $NOMAD_UPGRADE_TO"
	}
	grep -q "Started the rolling upgrade to Nomad $NOMAD_UPGRADE_TO" <<<"$out" || {
		echo "$out"
		fail "node1: upgrade nomad $NOMAD_UPGRADE_TO did not start a roll"
	}
	roll_over() { in_node 1 nomad-bootstrapd upgrade status -json | tr -d ' \n' | grep -qE '"stage":"(done|failed)"'; }
	wait_for 600 "the rolling upgrade to Nomad $NOMAD_UPGRADE_TO to end" roll_over
	out=$(in_node 1 nomad-bootstrapd upgrade status 2>&1) || true
	grep -q "Upgrade to Nomad $NOMAD_UPGRADE_TO: done" <<<"$out" || {
		echo "$out"
		fail "the rolling upgrade to Nomad $NOMAD_UPGRADE_TO did not finish"
	}
	for ((i = 1; i <= n; i++)); do
		wait_for 120 "node$i: status after the upgrade" in_node "$i" nomad-bootstrapd status
		[[ $(in_node "$i" dpkg-query -W -f='${Version}' nomad) == "$NOMAD_UPGRADE_TO-1" ]] ||
			fail "node$i: the nomad package is $(in_node "$i" dpkg-query -W -f='${Version}' nomad), want $NOMAD_UPGRADE_TO-1"
		[[ $(in_node "$i" nomad version | head -1) == "Nomad v$NOMAD_UPGRADE_TO" ]] || fail "node$i: $(in_node "$i" nomad version | head -1)"
		[[ $(in_node "$i" systemctl is-active nomad) == active ]] || fail "node$i: nomad.service is not active after the upgrade"
		in_node "$i" nomad-bootstrapd status -json | tr -d ' \n' | grep -q "\"version\":\"$NOMAD_UPGRADE_TO\"" ||
			fail "node$i: status -json does not show Nomad $NOMAD_UPGRADE_TO"
	done
	members=$(in_node 1 bash -c '. /etc/profile.d/nomad-bootstrapd.sh && NOMAD_TOKEN=$(cat /var/lib/nomad-bootstrapd/acl/management.token) nomad server members') ||
		fail "node1: nomad server members"
	[[ $(grep -c " $NOMAD_UPGRADE_TO " <<<"$members") == "$n" ]] || {
		echo "$members"
		fail "nomad server members does not show $NOMAD_UPGRADE_TO on $n servers"
	}
	pass "upgrade nomad $NOMAD_UPGRADE_TO under systemd: every node rolled from $from with apt-get from the local repository, nomad.service active, nomad server members shows $NOMAD_UPGRADE_TO on all $n"
fi
