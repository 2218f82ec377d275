#!/usr/bin/env bash
# Instructions per request, public `GET /` against protected `GET /me` with a
# cached token, on the release-built demo (one worker) under callgrind.
#
#   scripts/callgrind.sh            # N=2000 requests per batch, 3 rounds
#   N=5000 ROUNDS=5 scripts/callgrind.sh
#
# Each batch is N requests on one keep-alive connection (curl -K). Counters
# are zeroed before a batch and dumped after it (callgrind_control), so
# start-up, login and warm-up are not counted; a batch's instruction count
# (all threads: the worker, the embedded emulator's idle threads, the HTTP
# client's runtime) divided by N is the figure. Batches alternate public,
# protected, and public *with* the same Authorization header (a diagnostic:
# the part of the difference that is receiving a bigger request rather than
# the middleware).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18081}
source scripts/common.sh

ensure valgrind valgrind
build_demo
start_demo valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out"
login_tokens 1 "$WORK/tokens"
TOKEN=$(head -1 "$WORK/tokens")

batch() { # batch PATH [HEADER]: N requests on one connection
    local cfg=$WORK/curl.cfg i
    : >"$cfg"
    for i in $(seq 1 "$N"); do
        printf 'url = "%s%s"\noutput = "/dev/null"\n' "$APP" "$1" >>"$cfg"
    done
    if [ $# -gt 1 ]; then
        curl -sf -K "$cfg" -H "$2"
    else
        curl -sf -K "$cfg"
    fi
}

# Warm up: the token verified (one upstream call) and both routes exercised.
N=50 batch / ; N=50 batch /me "Authorization: Bearer $TOKEN"
before=$(stats)

dumps=0
measure() { # measure NAME PATH [HEADER]: prints instructions per request
    callgrind_control -z "$DEMO_PID" >/dev/null 2>&1
    batch "${@:2}"
    callgrind_control -d "$1" "$DEMO_PID" >/dev/null 2>&1
    dumps=$((dumps + 1))
    local f
    f=$(ls -t "$WORK"/cg.out.* | head -1)
    cp "$f" "$WORK/last-$1.out"
    local total
    total=$(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$f" | head -1)
    echo $((total / N))
}

printf '%-6s %16s %16s %16s %8s %8s\n' round 'public Ir/req' 'protected Ir/req' 'public+hdr Ir/req' 'ratio' 'hdr ratio'
ratios=()
for r in $(seq 1 "$ROUNDS"); do
    pub=$(measure public /)
    pro=$(measure protected /me "Authorization: Bearer $TOKEN")
    hdr=$(measure public_header / "Authorization: Bearer $TOKEN")
    ratio=$(awk -v a="$pro" -v b="$pub" 'BEGIN { printf "%.3f", a / b }')
    hratio=$(awk -v a="$pro" -v b="$hdr" 'BEGIN { printf "%.3f", a / b }')
    ratios+=("$ratio")
    printf '%-6s %16s %16s %16s %8s %8s\n' "$r" "$pub" "$pro" "$hdr" "$ratio" "$hratio"
done
after=$(stats)
median=$(printf '%s\n' "${ratios[@]}" | median)
echo "median protected/public instructions per request: $median (target <= 1.08)"
echo "cache misses during the batches: $(( $(stat_field misses "$after") - $(stat_field misses "$before") )) (0 = every protected request was a hit)"

# Where the difference goes: self instructions per request by function,
# protected against public with the same header, then that header's own cost.
echo
echo "protected /me against public / with the same header, by function:"
python3 scripts/callgrind-diff.py "$WORK/last-protected.out" "$WORK/last-public_header.out" "$N" 25
echo
echo "public / with the header against without:"
python3 scripts/callgrind-diff.py "$WORK/last-public_header.out" "$WORK/last-public.out" "$N" 8
if [ -n "${KEEP:-}" ]; then
    cp "$WORK"/last-*.out "$KEEP"/
    echo "callgrind dumps copied to $KEEP"
fi
