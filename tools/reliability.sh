#!/bin/sh
# Runs the fault suite (RELIABILITY.md) with $RELIABILITY_ROUNDS rounds and
# the agreement protocol's simulation with $SIM_SEEDS seeds, and writes the
# figures they print into RELIABILITY.md between the figures marks.
set -eu
: "${GO:=go}"
: "${RELIABILITY_ROUNDS:=20}"
: "${SIM_SEEDS:=20000}"
export RELIABILITY_ROUNDS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
$GO test -count=1 -v -timeout 60m -run '^(TestFault|TestSeparatePoolsMerge|TestServerReplacement|TestAdoptOnlySuccessors|TestSavePlanDiskFullOrReadOnly|TestCAFailover|TestBadInputIsRefusedClearly|TestWrongTokenFailsFast)' ./test/e2e/ ./internal/agent/ >"$log" 2>&1 || status=$?
$GO test -count=1 -v -timeout 60m -run '^TestSimulation$' ./internal/agree/ -sim.seeds "$SIM_SEEDS" >>"$log" 2>&1 || status=$?
grep -E '^(--- (PASS|FAIL)|ok|FAIL)' "$log" || true
figures=$(grep '^RELIABILITY ' "$log" | sed 's/^RELIABILITY /    /' || true)
sim=$(grep -E '^[0-9]+ seeds, [0-9]+ violations$' "$log" | tail -n 1 || true)
figures=$(printf '%s\n    agreement protocol simulation (internal/agree TestSimulation): %s' "$figures" "${sim:-not run}")
if [ "$status" -ne 0 ]; then
	mkdir -p .cache
	cp "$log" .cache/reliability.log
	grep -E -B2 -A40 '^ *--- FAIL' "$log" | head -n 400 || true
	echo "reliability: the suite failed; RELIABILITY.md left as it was; the whole output is in .cache/reliability.log" >&2
	exit "$status"
fi
{
	nomad=$("${NOMAD_BIN:-nomad}" version 2>/dev/null | head -n 1 || true)
	printf '    # %s, RELIABILITY_ROUNDS=%s, %s, %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$RELIABILITY_ROUNDS" "$(uname -m)" "${nomad:-no nomad}"
	printf '%s\n' "$figures"
} >"$log.figures"
awk -v f="$log.figures" '
	/^<!-- figures -->$/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
	/^<!-- \/figures -->$/ { skip = 0 }
	!skip { print }
' RELIABILITY.md >"$log.md"
cat "$log.md" >RELIABILITY.md
rm -f "$log.figures" "$log.md"
printf '%s\n' "$figures"
