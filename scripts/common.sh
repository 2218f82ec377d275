# Shared by scripts/callgrind.sh, scripts/load.sh and scripts/e2e.sh (sourced,
# not run).
#
# median : the median of the numbers on stdin, one a line.
# ensure COMMAND PACKAGE : installs the Debian PACKAGE if COMMAND is missing.
#
# start_demo PREFIX... : starts the release demo (one worker) on $PORT behind
# the given command prefix (e.g. `taskset -c 0`, or valgrind), sets DEMO_PID
# and EMU (the embedded emulator's URL), and waits until it answers.
# login_tokens N FILE : logs N users in (emulator device login, then the
# demo's POST /login code exchange) and writes their tokens, one a line.

TARGET_DIR=${CARGO_TARGET_DIR:-target}
DEMO=$TARGET_DIR/release/examples/demo
PORT=${PORT:-18080}
APP=http://127.0.0.1:$PORT
WORK=$(mktemp -d)

build_demo() {
    cargo build --release --example demo --features emulator >&2
}

start_demo() {
    "$@" "$DEMO" --addr "127.0.0.1:$PORT" --workers 1 >"$WORK/demo.log" 2>&1 &
    DEMO_PID=$!
    trap 'kill $DEMO_PID 2>/dev/null; wait $DEMO_PID 2>/dev/null; rm -rf "$WORK"' EXIT
    for _ in $(seq 1 600); do
        EMU=$(sed -n 's/^Account Kit emulator: *//p' "$WORK/demo.log")
        if [ -n "$EMU" ] && curl -sf -o /dev/null "$APP/"; then
            return 0
        fi
        if ! kill -0 "$DEMO_PID" 2>/dev/null; then
            cat "$WORK/demo.log" >&2
            echo "the demo exited" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "the demo did not start in 300 s" >&2
    return 1
}

login_tokens() {
    local n=$1 file=$2 i code token
    : >"$file"
    for i in $(seq 1 "$n"); do
        code=$(curl -sf -X POST "$EMU/_emulator/login" -H 'content-type: application/json' \
            -d "{\"phone\":\"+1555$(printf '%07d' "$i")\"}" | sed 's/.*"code":"\([^"]*\)".*/\1/')
        token=$(curl -sf -X POST "$APP/login" -H 'content-type: application/json' \
            -d "{\"code\":\"$code\"}" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
        case $token in
            EMAW*) echo "$token" >>"$file" ;;
            *) echo "login $i failed" >&2; return 1 ;;
        esac
    done
}

# The cache counters, as JSON.
stats() {
    curl -sf "$APP/stats"
}

stat_field() { # stat_field NAME JSON
    echo "$2" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

median() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ensure() {
    command -v "$1" >/dev/null || { apt-get update -qq >&2 && apt-get install -y -qq "$2" >&2; }
}
