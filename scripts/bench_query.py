#!/usr/bin/env python
"""Benchmark `graphkit query` against plain-requests floors, on the local emulator.

In one run (a few minutes at most):

(a) warm start: `graphkit query /organization` (a subprocess; the token cache and
    msal's http cache warmed first) against a floor script that does the same GET with
    requests and an already acquired token.                      target: <= 1.25x
(b) throughput: `graphkit query /users --all --top 999 --output jsonl` over 100,000
    emulator users against a plain requests nextLink loop writing the same lines.
                                                                  target: <= 1.25x
(c) memory: graphkit's own peak RSS (VmHWM of its address space, Linux) after 10,000
    and after 100,000 users (`--max-items 10000` on the same emulator, then the full
    run). The emulator runs in a process of its own, and the peak is read inside the
    graphkit process: wait4's ru_maxrss would count what a child inherits from the
    harness at fork.                                  target: flat (<= 1.25x)

Each timing is the median of alternating runs (7 for the bulk run, BENCH_BULK_RUNS to
change). Exits 1 if a target is missed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _bench import FLOOR_LOOP, Served, record, run  # noqa: E402

USERS = int(os.environ.get("BENCH_USERS", "100000"))  # smaller for a quick try
SMALL = USERS // 10
WARM_RUNS = 21
BULK_RUNS = int(os.environ.get("BENCH_BULK_RUNS", "7"))
TARGET_WARM = 1.25
TARGET_BULK = 1.25
TARGET_MEMORY = 1.25

FLOOR_GET = r"""
import json, sys, requests
url, token_file, ca = sys.argv[1:4]
token = open(token_file).read().strip()
r = requests.get(url, headers={"Authorization": "Bearer " + token}, verify=ca)
r.raise_for_status()
sys.stdout.write(json.dumps(r.json()["value"], indent=2) + "\n")
"""

# graphkit's own peak memory: VmHWM of its own address space (Linux), read as it exits.
# (wait4's ru_maxrss would also count what the child inherited from this harness at fork.)
PEAK_WRAPPER = r"""
import atexit, os, sys
def _peak():
    try:
        with open("/proc/self/status") as fh:
            kib = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kib = -1
    with open(os.environ["GRAPHKIT_BENCH_PEAK_FILE"], "w") as out:
        out.write(str(kib))
atexit.register(_peak)
sys.argv = ["graphkit", *sys.argv[1:]]
from graphkit.cli import main
main()
"""


def _peak_mib(args: list[str], env: dict[str, str], work: Path) -> float:
    """graphkit ARGS's own peak RSS in MiB (output discarded)."""
    peak_file = work / "peak"
    run_env = {**env, "GRAPHKIT_BENCH_PEAK_FILE": str(peak_file)}
    with open(os.devnull, "wb") as null:
        run([sys.executable, "-c", PEAK_WRAPPER, *args], run_env, null)
    return int(peak_file.read_text()) / 1024


def main() -> int:
    with Served(USERS, roles=("Organization.Read.All",)) as served:
        env, admin, url = served.env, served.admin, served.graph_url
        # (a) warm /organization
        gk_org = [served.graphkit, "query", "/organization", "--output", "json"]
        floor_org = served.floor(FLOOR_GET, f"{url}/v1.0/organization")
        run(gk_org, env, subprocess.DEVNULL)  # warm the caches
        stats = f"{url}/_emulator/requests"
        admin.delete(stats)
        run(gk_org, env, subprocess.DEVNULL)
        log = admin.get(stats).json()["requests"]
        warm_requests = [r["kind"] for r in log if r["kind"] != "admin"]
        gk_t, floor_t = [], []
        for _ in range(WARM_RUNS):
            gk_t.append(run(gk_org, env, subprocess.DEVNULL))
            floor_t.append(run(floor_org, env, subprocess.DEVNULL))
        gk_warm, floor_warm = statistics.median(gk_t), statistics.median(floor_t)

        # (b) 100k users as JSON lines, interleaved with the floor
        gk_users = [served.graphkit, "query", "/users", "--all", "--top", "999", "--output",
                    "jsonl"]  # fmt: skip
        floor_users = served.floor(FLOOR_LOOP, f"{url}/v1.0/users?$top=999")
        gk_out, floor_out = served.work / "graphkit.jsonl", served.work / "floor.jsonl"
        gk_b, floor_b = [], []
        for _ in range(BULK_RUNS):
            with open(gk_out, "wb") as fh:
                gk_b.append(run(gk_users, env, fh))
            with open(floor_out, "wb") as fh:
                floor_b.append(run(floor_users, env, fh))
        lines = gk_out.read_bytes().count(b"\n")
        same = gk_out.read_bytes() == floor_out.read_bytes()
        gk_bulk, floor_bulk = statistics.median(gk_b), statistics.median(floor_b)

        # (c) graphkit's own peak memory at 10k and at 100k users
        users_args = ["query", "/users", "--all", "--top", "999", "--output", "jsonl"]
        rss_small = _peak_mib([*users_args, "--max-items", str(SMALL)], env, served.work)
        rss_big = _peak_mib(users_args, env, served.work)

    ok_warm = record(
        "bench_query", "warm `graphkit query /organization` (token and discovery cached)",
        value=gk_warm * 1000, baseline=floor_warm * 1000, unit="ms", target=TARGET_WARM,
        runs=WARM_RUNS, baseline_label="one requests GET with a token already in hand",
        note=f"requests on a warm run: {warm_requests}",
    )  # fmt: skip
    ok_bulk = record(
        "bench_query", f"`query /users --all -o jsonl`, {USERS:,} users",
        value=gk_bulk, baseline=floor_bulk, unit="s", target=TARGET_BULK, runs=BULK_RUNS,
        baseline_label="plain requests nextLink loop writing the same lines",
        passed=None if lines == USERS and same else False,
        note=f"{lines:,} lines, identical to the floor's: {same}",
    )  # fmt: skip
    ok_mem = record(
        "bench_query", f"peak RSS of graphkit, {USERS:,} users vs {SMALL:,}",
        value=rss_big, baseline=rss_small, unit="MiB", target=TARGET_MEMORY, runs=1,
        baseline_label=f"the same command stopped at {SMALL:,} items (--max-items)",
        note="graphkit's own VmHWM (the emulator runs in another process)",
    )  # fmt: skip
    print("graphkit query benchmark (emulator in its own process on 127.0.0.1, medians)")
    print(
        f"(a) warm /organization: graphkit {gk_warm * 1000:.0f} ms, floor "
        f"{floor_warm * 1000:.0f} ms, ratio {gk_warm / floor_warm:.2f}x (target <= "
        f"{TARGET_WARM}x) {_verdict(ok_warm)}; requests on a warm run: {warm_requests}"
    )
    print(
        f"(b) {USERS:,} users jsonl: graphkit {gk_bulk:.2f} s, floor {floor_bulk:.2f} s, "
        f"ratio {gk_bulk / floor_bulk:.2f}x over {BULK_RUNS} interleaved runs (target <= "
        f"{TARGET_BULK}x) {_verdict(ok_bulk)}; {lines:,} lines, identical: {same}"
    )
    print(
        f"(c) graphkit's peak RSS: {rss_small:.1f} MiB at {SMALL:,} users, {rss_big:.1f} MiB "
        f"at {USERS:,}, ratio {rss_big / rss_small:.2f}x (target <= {TARGET_MEMORY}x) "
        f"{_verdict(ok_mem)}"
    )
    return 0 if ok_warm and ok_bulk and ok_mem else 1


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    sys.exit(main())
