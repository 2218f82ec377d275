#!/usr/bin/env bash
# End to end: requests/s and p50/p99 latency of the release demo (one worker,
# pinned to core 0, on its embedded emulator) under wrk (pinned to core 1),
# public `GET /` against protected `GET /me` with cached tokens, alternating
# over several rounds in one run; prints the median protected/public ratio.
#
#   scripts/load.sh
#   ROUNDS=7 DURATION=10 CONNECTIONS=32 TOKENS=64 scripts/load.sh
#
# 127.0.0.1 only. Installs wrk from the Debian packages if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
TOKENS=${TOKENS:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-18082}
source scripts/common.sh

ensure wrk wrk
build_demo
start_demo taskset -c "$SERVER_CPU"
login_tokens "$TOKENS" "$WORK/tokens"

# wrk: each request carries the next token, round robin.
{
    echo 'local tokens = {'
    sed 's/.*/  "&",/' "$WORK/tokens"
    echo '}'
    cat <<'LUA'
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA
} >"$WORK/tokens.lua"

# Warm up both routes (and the cache: one upstream call per token).
taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "$APP/" >/dev/null
taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d2s -s "$WORK/tokens.lua" "$APP/me" >/dev/null
before=$(stats)

to_us() { # 1.23ms -> 1230
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000; else m = 0.001
        printf "%.0f", n * m }'
}

run() { # run ROUTE [SCRIPT] -> "rps p50_us p99_us non2xx"
    local out
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${@:2}" "$APP$1")
    local rps p50 p99 bad
    rps=$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')
    p50=$(to_us "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
    p99=$(to_us "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
    bad=$(echo "$out" | awk '/Non-2xx/ { print $NF }')
    echo "$rps $p50 $p99 ${bad:-0}"
}

echo "demo: 1 worker on cpu $SERVER_CPU; wrk: 1 thread, $CONNECTIONS connections, ${DURATION}s per run, on cpu $CLIENT_CPU; $TOKENS tokens"
printf '%-6s %12s %9s %9s %12s %9s %9s %7s\n' round 'public r/s' 'p50 us' 'p99 us' 'protect r/s' 'p50 us' 'p99 us' ratio
ratios=()
for r in $(seq 1 "$ROUNDS"); do
    read -r prps pp50 pp99 pbad < <(run /)
    read -r mrps mp50 mp99 mbad < <(run /me -s "$WORK/tokens.lua")
    if [ "$pbad" != 0 ] || [ "$mbad" != 0 ]; then
        echo "non-2xx answers: public $pbad, protected $mbad" >&2
        exit 1
    fi
    ratio=$(awk -v a="$mrps" -v b="$prps" 'BEGIN { printf "%.3f", a / b }')
    ratios+=("$ratio")
    printf '%-6s %12s %9s %9s %12s %9s %9s %7s\n' "$r" "$prps" "$pp50" "$pp99" "$mrps" "$mp50" "$mp99" "$ratio"
done
after=$(stats)
median=$(printf '%s\n' "${ratios[@]}" | median)
echo "median protected/public requests/s: $median (target >= 0.95)"
echo "cache misses during the runs: $(( $(stat_field misses "$after") - $(stat_field misses "$before") )) (0 = every protected request was a hit)"
