#!/usr/bin/env bash
# End to end, side by side, in one run: the same `GET /hello` served by
#
#   bare       actix-web, no authentication (the ceiling)
#   crate      behind AccountKit (middleware + VerifiedAccount extractor)
#   peer       the hand-built peer: actix-web-httpauth + moka::future + reqwest
#   peer-copy  the same peer binary again: the A/A noise control
#
# (examples/bench_server), `peer` and `crate` verifying against the crate's
# own emulator (examples/emulator, with appsecret_proof). Every server runs
# one actix worker pinned to core 0; wrk (-t1) is pinned to core 1; all
# traffic is on 127.0.0.1. Each round measures every server once, adjacent
# in time (order bare crate peer peer-copy, reversed every other round), so
# the figures to quote are the medians of the per-round ratios. Every
# measured request must be a 2xx cache hit: no non-2xx, no socket error, and
# 0 upstream calls (the emulator's `/me` counter) during the measured runs;
# otherwise the run is reported INVALID and exits 1. Server CPU per request
# is utime+stime of the server process (/proc/PID/stat) over the measured
# window, divided by the requests wrk completed.
#
#   scripts/e2e.sh                               # 9 rounds of 10 s
#   ROUNDS=11 DURATION=10 CONNECTIONS=64 TOKENS=1000 scripts/e2e.sh
#   OUT=docs/bench/e2e-run1 scripts/e2e.sh        # keep the raw outputs there
#   PERF=1 scripts/e2e.sh                         # + hardware counters per request
#   PERF=record ROUNDS=1 scripts/e2e.sh           # + where each server's cycles go
#   MODE=callgrind scripts/e2e.sh                 # instructions per request
#   MODE=callgrind N=2000 ROUNDS=3 KEEP=/tmp/cg scripts/e2e.sh
#
# PERF=1 also counts, with `perf stat -p` on each server process over each
# measured run, its cycles, instructions, cache misses and L1 data-cache
# load misses (user and kernel, all threads), per request completed: native
# instruction counts (SHA-NI included), and whether a gap is work or waiting
# on memory. Needs hardware counters (`perf stat -e instructions true`).
# PERF=record samples each server's cycles instead (`perf record -p`, user
# and kernel) over every measured run, keeps the samples in OUT, and prints
# each server's cycles per request by DSO and by function in round 1
# (scripts/perf-by-function.sh): native cost, which callgrind cannot give
# for SHA-NI or the kernel. Keep OUT to look again. PERF_RECORD_EVENT=
# instructions samples instructions instead of cycles.
#
# MODE=callgrind runs bare, peer and crate under valgrind's callgrind, then
# per round and server zeroes the counters, sends N requests with one cached
# token on one keep-alive connection (curl), dumps the counters and prints
# the instructions per request (all the server's threads), then where the
# crate's instructions go, by function, against bare and against the peer
# (scripts/callgrind-diff.py). Valgrind does not expose SHA-NI: SHA-256 is
# counted as the software implementation.
#
# Installs wrk / valgrind from the Debian packages if missing. Every process
# started here is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-wrk}
case $MODE in
    wrk) ROUNDS=${ROUNDS:-9} ;;
    callgrind) ROUNDS=${ROUNDS:-3} ;;
    *) echo "MODE must be wrk or callgrind" >&2; exit 2 ;;
esac
DURATION=${DURATION:-10}        # seconds per measured wrk run
WARMUP=${WARMUP:-3}             # seconds of wrk per server before measuring
CONNECTIONS=${CONNECTIONS:-64}
TOKENS=${TOKENS:-1000}          # distinct tokens, sent round robin (all cached)
N=${N:-2000}                    # callgrind: requests per batch
PERF=${PERF:-0}                 # 1: hardware counters per request (perf stat); record: samples
PERF_EVENTS=cycles,instructions,cache-misses,L1-dcache-load-misses
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BASE_PORT=${BASE_PORT:-18190}   # emulator; the servers on the next ports
APP_ID=${APP_ID:-1234}
export BENCH_APP_SECRET=${BENCH_APP_SECRET:-e2e-bench-app-secret}
source scripts/common.sh
BIN=$TARGET_DIR/release/examples
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
CLK=$(getconf CLK_TCK)

ensure wrk wrk
[ "$MODE" = callgrind ] && ensure valgrind valgrind
case $PERF in
    0 | 1 | record) ;;
    *) echo "PERF must be 0, 1 or record" >&2; exit 2 ;;
esac
if [ "$PERF" != 0 ]; then
    ensure perf linux-perf
    if ! perf stat -x, -e "$PERF_EVENTS" true 2>&1 >/dev/null | grep -Eq '^[0-9]+,,instructions(:u)?,'; then
        echo "PERF=$PERF: this machine's perf cannot count hardware events" >&2
        exit 2
    fi
fi
cargo build --release --example bench_server --example emulator --features emulator >&2

# ------------------------------------------------------------ processes
declare -A PID PORT
PIDS=()
stop_all() { # SIGINT (the emulator waits for Ctrl-C), SIGKILL after 10 s
    local pid _
    for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    rm -rf "$WORK"
}
trap stop_all EXIT

launch() { # launch NAME COMMAND... (the command execs the process we track)
    local name=$1
    shift
    "$@" >"$OUT/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=($!)
}

wait_http() { # wait_http URL PID: until URL answers (any status)
    local _
    for _ in $(seq 1 600); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ] && return 0
        kill -0 "$2" 2>/dev/null || { echo "$1: the server exited" >&2; return 1; }
        sleep 0.2
    done
    echo "$1 did not answer in 120 s" >&2
    return 1
}

EMU=http://127.0.0.1:$BASE_PORT
launch emulator taskset -c "$CLIENT_CPU" "$BIN/emulator" --addr "127.0.0.1:$BASE_PORT" \
    --app-id "$APP_ID" --app-secret "$BENCH_APP_SECRET" --require-appsecret-proof
wait_http "$EMU/_emulator/stats" "${PID[emulator]}"
me_calls() { curl -sf "$EMU/_emulator/stats" | sed -n 's/.*"me":\([0-9]*\).*/\1/p'; }

if [ "$MODE" = wrk ]; then
    SERVERS=(bare crate peer peer-copy)
    PREFIX=(taskset -c "$SERVER_CPU")
else
    SERVERS=(bare crate peer)
    PREFIX=(valgrind --tool=callgrind)
fi
port=$BASE_PORT
for s in "${SERVERS[@]}"; do
    port=$((port + 1))
    PORT[$s]=$port
    kind=${s%-copy}
    cg=()
    [ "$MODE" = callgrind ] && cg=(--callgrind-out-file="$WORK/cg-$s.out")
    launch "$s" "${PREFIX[@]}" "${cg[@]}" "$BIN/bench_server" --kind "$kind" \
        --addr "127.0.0.1:$port" --workers 1 --upstream "$EMU" --app-id "$APP_ID"
done
for s in "${SERVERS[@]}"; do wait_http "http://127.0.0.1:${PORT[$s]}/hello" "${PID[$s]}"; done

# ------------------------------------------------------------ tokens
[ "$MODE" = callgrind ] && TOKENS=1
TOKEN_FILE=$WORK/tokens
: >"$TOKEN_FILE"
for i in $(seq 1 "$TOKENS"); do
    token=$(curl -sf -X POST "$EMU/_emulator/login" -H 'content-type: application/json' \
        -d "{\"phone\":\"+1555$(printf '%07d' "$i")\"}" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    case $token in
        EMAW*) echo "$token" >>"$TOKEN_FILE" ;;
        *) echo "login $i failed" >&2; exit 1 ;;
    esac
done
FIRST=$(head -1 "$TOKEN_FILE")

# ------------------------------------------------------------ sanity
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
for s in "${SERVERS[@]}"; do
    url=http://127.0.0.1:${PORT[$s]}/hello
    ok=$(status -H "Authorization: Bearer $FIRST" "$url")
    if [ "$s" = bare ]; then
        none=401 bogus=401
    else
        none=$(status "$url")
        bogus=$(status -H "Authorization: Bearer EMAWnotatoken" "$url")
    fi
    if [ "$ok$none$bogus" != 200401401 ]; then
        echo "$s: valid token -> $ok, none -> $none, bogus -> $bogus (expected 200, 401, 401)" >&2
        exit 1
    fi
done
body_of() { curl -sf -H "Authorization: Bearer $FIRST" "http://127.0.0.1:${PORT[$1]}/hello"; }
if [ "$(body_of crate)" != "$(body_of peer)" ]; then
    echo "crate and peer answer differently: $(body_of crate) / $(body_of peer)" >&2
    exit 1
fi

{
    echo "date: $(date -Is)"
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src examples || echo ' (modified)')"
    echo "host: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(uname -r)"
    echo "rustc: $(rustc --version)"
    echo "config: MODE=$MODE PERF=$PERF ROUNDS=$ROUNDS DURATION=${DURATION}s WARMUP=${WARMUP}s CONNECTIONS=$CONNECTIONS TOKENS=$TOKENS N=$N servers on cpu $SERVER_CPU (1 worker), wrk -t1 on cpu $CLIENT_CPU"
    echo "loadavg before: $(cat /proc/loadavg)"
} | tee "$OUT/env.txt"

# ------------------------------------------------------------ callgrind
if [ "$MODE" = callgrind ]; then
    batch() { # batch SERVER COUNT: COUNT requests on one connection
        local cfg=$WORK/curl.cfg i
        : >"$cfg"
        for i in $(seq 1 "$2"); do
            printf 'url = "http://127.0.0.1:%s/hello"\noutput = "/dev/null"\n' "${PORT[$1]}" >>"$cfg"
        done
        curl -sf -K "$cfg" -H "Authorization: Bearer $FIRST"
    }
    for s in "${SERVERS[@]}"; do batch "$s" 50; done
    calls0=$(me_calls)
    printf '%-6s %10s %10s %10s %11s %11s %11s\n' round bare crate peer crate/bare peer/bare crate/peer |
        tee "$OUT/callgrind.txt"
    declare -A IR
    for r in $(seq 1 "$ROUNDS"); do
        for s in "${SERVERS[@]}"; do
            callgrind_control -z "${PID[$s]}" >/dev/null
            batch "$s" "$N"
            callgrind_control -d "r$r" "${PID[$s]}" >/dev/null
            dump=$(ls -t "$WORK/cg-$s.out".* | head -1)
            cp "$dump" "$WORK/last-$s.out"
            IR[$s]=$(($(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$dump" | head -1) / N))
        done
        awk -v r="$r" -v b="${IR[bare]}" -v c="${IR[crate]}" -v p="${IR[peer]}" 'BEGIN {
            printf "%-6s %10d %10d %10d %11.3f %11.3f %11.3f\n", r, b, c, p, c / b, p / b, c / p }' |
            tee -a "$OUT/callgrind.txt"
    done
    echo "upstream calls during the batches: $(($(me_calls) - calls0)) (0 = every request a cache hit)" |
        tee -a "$OUT/callgrind.txt"
    for other in bare peer; do
        echo
        echo "crate against $other, self instructions per request by function (last round):"
        python3 scripts/callgrind-diff.py "$WORK/last-crate.out" "$WORK/last-$other.out" "$N" 30
    done | tee -a "$OUT/callgrind.txt"
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP" && cp "$WORK"/last-*.out "$KEEP"/
        echo "callgrind dumps copied to $KEEP"
    fi
    exit 0
fi

# ------------------------------------------------------------ wrk
run_wrk() { # run_wrk SERVER SECONDS OUTFILE
    E2E_TOKENS=$TOKEN_FILE timeout $(($2 + 60)) taskset -c "$CLIENT_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"$2s" -s scripts/e2e.lua "http://127.0.0.1:${PORT[$1]}/hello" >"$3" 2>&1
    grep -q '^E2E ' "$3" || { echo "wrk printed no E2E line:" >&2; cat "$3" >&2; exit 1; }
}
field() { sed -n "s/^E2E .*\b$2=\([0-9.]*\).*/\1/p" "$1"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for s in "${SERVERS[@]}"; do
    c0=$(me_calls)
    run_wrk "$s" "$WARMUP" "$OUT/warmup-$s.txt"
    echo "warm-up $s: $(field "$OUT/warmup-$s.txt" rps) req/s, upstream calls $(($(me_calls) - c0))"
done | tee -a "$OUT/env.txt"

# perf_start SERVER FILE / perf_stop: count the server's hardware events
perf_start() {
    PERF_PID=
    case $PERF in
        1) perf stat -x, -o "$2" -e "$PERF_EVENTS" -p "${PID[$1]}" & ;;
        record) perf record -q -e "${PERF_RECORD_EVENT:-cycles}" -F 1999 -o "$2.data" -p "${PID[$1]}" 2>/dev/null & ;;
        *) return 0 ;;
    esac
    PERF_PID=$!
}
perf_stop() {
    [ -n "$PERF_PID" ] || return 0
    kill -INT "$PERF_PID"
    wait "$PERF_PID" || true
}
per_request() { # per_request FILE EVENT REQUESTS: the event's count / requests, or -
    [ "$PERF" = 1 ] || { echo -; return; }
    awk -F, -v e="$2" -v n="$3" '($3 == e || $3 == e ":u") && $1 ~ /^[0-9]+$/ { printf "%.0f", $1 / n; found = 1 }
        END { if (!found) print "-" }' "$1"
}

RESULTS=$OUT/results.tsv
printf 'round\tserver\trequests\trps\tp50_us\tp99_us\tnon2xx\tsocket_errors\tcpu_s\tcpu_us_per_req\tupstream_calls\tcycles_per_req\tinstructions_per_req\tcache_misses_per_req\tl1d_misses_per_req\n' >"$RESULTS"
invalid=0
for r in $(seq 1 "$ROUNDS"); do
    order=("${SERVERS[@]}")
    if ((r % 2 == 0)); then
        order=()
        for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do order+=("${SERVERS[$i]}"); done
    fi
    for s in "${order[@]}"; do
        f=$OUT/round$r-$s.txt
        c0=$(me_calls)
        t0=$(cpu_ticks "${PID[$s]}")
        perf_start "$s" "$f.perf"
        run_wrk "$s" "$DURATION" "$f"
        perf_stop
        t1=$(cpu_ticks "${PID[$s]}")
        calls=$(($(me_calls) - c0))
        n=$(field "$f" requests)
        bad=$(field "$f" non2xx)
        errors=$(field "$f" socket_errors)
        if [ "$bad" != 0 ] || [ "$errors" != 0 ] || [ "$calls" != 0 ]; then
            invalid=1
        fi
        awk -v OFS='\t' -v r="$r" -v s="$s" -v n="$n" -v rps="$(field "$f" rps)" \
            -v p50="$(field "$f" p50_us)" -v p99="$(field "$f" p99_us)" -v bad="$bad" \
            -v errors="$errors" -v ticks=$((t1 - t0)) -v clk="$CLK" -v calls="$calls" \
            -v cyc="$(per_request "$f.perf" cycles "$n")" -v ins="$(per_request "$f.perf" instructions "$n")" \
            -v cm="$(per_request "$f.perf" cache-misses "$n")" \
            -v l1="$(per_request "$f.perf" L1-dcache-load-misses "$n")" 'BEGIN {
            cpu = ticks / clk
            print r, s, n, rps, p50, p99, bad, errors, sprintf("%.2f", cpu), sprintf("%.3f", cpu * 1e6 / n), calls,
                cyc, ins, cm, l1 }' |
            tee -a "$RESULTS" >&2
        sleep 1
    done
done
echo "loadavg after: $(cat /proc/loadavg)" | tee -a "$OUT/env.txt"

# ------------------------------------------------------------ summary
col() { awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $2 == s { print $c }' "$RESULTS"; }
pairs() { # pairs A B COLUMN: A/B per round, in round order
    awk -F'\t' -v a="$1" -v b="$2" -v c="$3" 'NR > 1 { v[$1 " " $2] = $c; if ($1 > n) n = $1 }
        END { for (r = 1; r <= n; r++) printf "%.3f\n", v[r " " a] / v[r " " b] }' "$RESULTS"
}
{
    echo
    echo "| server | req/s (median) | p50 µs | p99 µs | server CPU µs/req | req/s per round |"
    echo "|---|---:|---:|---:|---:|---|"
    for s in "${SERVERS[@]}"; do
        printf '| %s | %s | %s | %s | %s | %s |\n' "$s" "$(col "$s" 4 | median)" "$(col "$s" 5 | median)" \
            "$(col "$s" 6 | median)" "$(col "$s" 10 | median)" "$(col "$s" 4 | cut -d. -f1 | paste -sd' ')"
    done
    echo
    echo "| ratio, median of per-round pairs | req/s | server CPU per request | per-round req/s ratios |"
    echo "|---|---:|---:|---|"
    for pair in "crate bare" "crate peer" "peer-copy peer" "peer bare"; do
        set -- $pair
        printf '| %s/%s | **%s** | %s | %s |\n' "$1" "$2" "$(pairs "$1" "$2" 4 | median)" \
            "$(pairs "$1" "$2" 10 | median)" "$(pairs "$1" "$2" 4 | paste -sd' ')"
    done
    if [ "$PERF" = record ]; then
        echo
        scripts/perf-by-function.sh "$OUT" 1 30
    fi
    if [ "$PERF" = 1 ]; then
        echo
        echo "| per request (perf stat, median) | cycles | instructions | cache misses | L1d load misses |"
        echo "|---|---:|---:|---:|---:|"
        for s in "${SERVERS[@]}"; do
            printf '| %s | %s | %s | %s | %s |\n' "$s" "$(col "$s" 12 | median)" "$(col "$s" 13 | median)" \
                "$(col "$s" 14 | median)" "$(col "$s" 15 | median)"
        done
        for pair in "crate bare" "crate peer"; do
            set -- $pair
            printf '| %s/%s, median of per-round pairs | %s | %s | %s | %s |\n' "$1" "$2" \
                "$(pairs "$1" "$2" 12 | median)" "$(pairs "$1" "$2" 13 | median)" \
                "$(pairs "$1" "$2" 14 | median)" "$(pairs "$1" "$2" 15 | median)"
        done
    fi
    echo
    echo "targets (issue 12): crate/bare req/s >= 0.95, crate/peer req/s >= 1.15, crate/bare CPU per request <= 1.06;"
    echo "peer-copy/peer is the A/A control (the same binary): its distance from 1.000 is this run's noise."
    total=$(awk -F'\t' 'NR > 1 { t += $11 } END { print t + 0 }' "$RESULTS")
    bad=$(awk -F'\t' 'NR > 1 { t += $7 + $8 } END { print t + 0 }' "$RESULTS")
    echo "upstream calls during the measured runs: $total; non-2xx answers and socket errors: $bad"
    if [ "$invalid" = 1 ]; then
        echo "INVALID: not every measured request was a 2xx cache hit"
    fi
} | tee "$OUT/summary.md"
exit "$invalid"
