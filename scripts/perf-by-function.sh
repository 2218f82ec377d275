#!/usr/bin/env bash
# Where each server's cycles go, per request, from a `PERF=record
# scripts/e2e.sh` run: by DSO (kernel, the server binary, libc), then the
# top functions of the server binary and libc, each as cycles per request
# (its share of the samples × the run's cycle count ÷ the requests wrk
# completed). Sampling: a function's figure is good to ~10 % when it is
# above ~100 cycles per request.
#
#   scripts/perf-by-function.sh OUT [ROUND] [TOP]     # OUT as given to e2e.sh
set -euo pipefail
OUT=${1:?usage: perf-by-function.sh OUT [ROUND] [TOP]}
ROUND=${2:-1}
TOP=${3:-30}
# per EVENTS REQUESTS: perf report's "share% name" lines as count per request
per() { awk -v c="$1" -v n="$2" '{ p = $1; sub("%", "", p); $1 = ""; printf "%8.0f %s\n", p / 100 * c / n, $0 }'; }
for data in "$OUT"/round"$ROUND"-*.txt.perf.data; do
    server=${data#"$OUT/round$ROUND-"}
    server=${server%.txt.perf.data}
    requests=$(awk -F'\t' -v r="$ROUND" -v s="$server" '$1 == r && $2 == s { print $3 }' "$OUT/results.tsv")
    cycles=$(perf report -i "$data" --stdio 2>/dev/null | sed -n 's/.*Event count (approx.): *\([0-9]*\).*/\1/p' | head -1)
    [ -n "$requests" ] && [ -n "$cycles" ] || { echo "$data: no requests or no samples" >&2; continue; }
    echo "== $server, round $ROUND: $((cycles / requests)) cycles per request"
    perf report -i "$data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -4 | per "$cycles" "$requests"
    echo "   top functions (server binary and libc), cycles per request:"
    perf report -i "$data" --no-children --dsos bench_server,libc.so.6 --sort symbol --stdio 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -"$TOP" | per "$cycles" "$requests" | cut -c1-160
done
