#!/usr/bin/env python3
"""Replays the hit-rate simulator's traces with libCacheSim's research policies.

    pip install libcachesim                # PyPI: the Python bindings of libCacheSim
    cargo run --release --example hitrate -- --traces target/traces
    python3 scripts/libcachesim.py target/traces docs/bench/hitrate-lcs.csv
    cargo run --release --example hitrate  # merges the CSV into its table

Reads `traces.json` (written by `examples/hitrate.rs --traces DIR`): the
workloads, one trace file each (the verified requests' keys, one per line),
the warm-up length and the capacities. For each workload, capacity and
policy (ARC, LIRS, S3-FIFO, W-TinyLFU, with libCacheSim's defaults; every
object of size 1, so the cache size is a number of entries) it counts the
hits after the warm-up, as the simulator does: hits over the whole trace
minus hits over the warm-up alone (a fresh cache fed the same prefix), over
the requests after the warm-up.

Writes CSV rows `workload,capacity,policy,hit_rate,fingerprint,warmup`; the
simulator keeps those whose trace fingerprint and warm-up match its own run.
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

# This file's name is the package's: keep its own folder off the import path
# so that `import libcachesim` finds the package, not this script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

POLICIES = ["ARC", "LIRS", "S3FIFO", "WTinyLFU"]


def hits_in(policy, capacity, path, n_req):
    """Hits of a fresh cache over the first n_req requests (-1: all)."""
    import libcachesim as lcs

    params = lcs.ReaderInitParam()
    params.obj_id_is_num = True
    params.obj_id_is_num_set = True
    reader = lcs.TraceReader(path, lcs.TraceType.PLAIN_TXT_TRACE, params)
    cache = getattr(lcs, policy)(capacity)
    miss_ratio, _ = cache.process_trace(reader, 0, n_req)
    return miss_ratio


def job(args):
    workload, path, total, warmup, capacity, policy = args
    started = time.time()
    miss_all = hits_in(policy, capacity, path, -1)
    miss_warm = hits_in(policy, capacity, path, warmup) if warmup > 0 else 0.0
    hits_all = round((1.0 - miss_all) * total)
    hits_warm = round((1.0 - miss_warm) * warmup)
    rate = (hits_all - hits_warm) / (total - warmup)
    return workload, capacity, policy, rate, time.time() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("traces", help="directory with traces.json")
    ap.add_argument("out", help="CSV to write")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--only", help="comma-separated workloads")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()

    with open(os.path.join(a.traces, "traces.json")) as f:
        meta = json.load(f)
    warmup = meta["warmup"]
    only = set(a.only.split(",")) if a.only else None
    jobs = []
    prints = {}
    for w in meta["workloads"]:
        if only and w["name"] not in only:
            continue
        prints[w["name"]] = w["fingerprint"]
        path = os.path.join(a.traces, w["file"])
        for capacity in meta["capacities"]:
            for policy in a.policies.split(","):
                jobs.append((w["name"], path, w["requests"], warmup, capacity, policy))

    rows = []
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        for workload, capacity, policy, rate, secs in pool.map(job, jobs):
            print(f"{workload:<16} {capacity:>6} {policy:<9} {100 * rate:6.2f} %  ({secs:.1f} s)", flush=True)
            rows.append((workload, capacity, policy, rate))

    # Keep the rows of other workloads already in the file (a partial run).
    kept = []
    if os.path.exists(a.out):
        with open(a.out) as f:
            for line in f.read().splitlines()[1:]:
                cells = line.split(",")
                if len(cells) == 6 and cells[0] not in prints:
                    kept.append(line)
    with open(a.out, "w") as f:
        f.write("workload,capacity,policy,hit_rate,fingerprint,warmup\n")
        for line in kept:
            f.write(line + "\n")
        for workload, capacity, policy, rate in rows:
            f.write(f"{workload},{capacity},{policy},{rate:.6f},{prints[workload]},{warmup}\n")
    print(f"wrote {len(rows)} results to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
