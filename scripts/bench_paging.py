#!/usr/bin/env python
"""Benchmark paging that hides the network: `graphkit query /users --all --top 999 -o
jsonl` over 100,000 emulator users with 100 ms of latency added to every Graph request
(101 pages), the emulator in a process of its own.

In one run, interleaved (graphkit, chain, loop, graphkit, chain, loop, ...):

* graphkit, which asks for page N+1 as soon as page N's nextLink has arrived (the
  emulator, like Graph, writes it before the items) and writes page N meanwhile;
* the chain: the same 101 GETs one after another and nothing else (each page's body
  read whole and its nextLink found, no item decoded or written): what the network
  and the server take for a client that waits for each page before it follows the
  nextLink;
* the loop: a plain requests nextLink loop writing the same lines (bench_query's
  floor), which waits for each page before writing it.

Figures (medians):
(a) graphkit / the chain.                                          target: <= 1.05x
(b) graphkit / pages x latency (101 x 100 ms = 10.1 s), the issue's floor, which leaves
    out the time each request takes besides the latency (the client's and the
    emulator's; reported: chain - pages x latency).
                                                                   target: <= 1.05x
(c) graphkit / the loop: what fetching ahead gains.                reported

BENCH_USERS, BENCH_PAGING_RUNS (default 5) and BENCH_LATENCY (seconds) change the run.
Exits 1 if a target is missed or graphkit's lines differ from the loop's.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _bench import FLOOR_LOOP, Served, record, run  # noqa: E402

USERS = int(os.environ.get("BENCH_USERS", "100000"))
RUNS = int(os.environ.get("BENCH_PAGING_RUNS", "5"))
LATENCY = float(os.environ.get("BENCH_LATENCY", "0.1"))
TOP = 999
TARGET = 1.05

# The network's and the server's share alone: each page fetched in turn, its nextLink
# found in the raw body (the emulator writes it before "value"), nothing
# decoded or written.
CHAIN = r"""
import json, re, sys, time, requests
url, token_file, ca = sys.argv[1:4]
token = open(token_file).read().strip()
s = requests.Session()
link = re.compile(rb'"@odata\.nextLink":"([^"]*)"')
pages, start = 0, time.perf_counter()
while url:
    r = s.get(url, headers={"Authorization": "Bearer " + token}, verify=ca)
    r.raise_for_status()
    pages += 1
    m = link.search(r.content)
    url = json.loads(b'"' + m.group(1) + b'"') if m else None
print(pages, time.perf_counter() - start)
"""


def main() -> int:
    pages = math.ceil(USERS / TOP)
    nominal = pages * LATENCY
    with Served(USERS) as served:
        env, url = served.env, served.graph_url
        gk = [served.graphkit, "query", "/users", "--all", "--top", str(TOP), "-o", "jsonl"]
        chain = served.floor(CHAIN, f"{url}/v1.0/users?$top={TOP}")
        loop = served.floor(FLOOR_LOOP, f"{url}/v1.0/users?$top={TOP}")
        warm = [served.graphkit, "query", "/users", "--top", "1"]
        run(warm, env, subprocess.DEVNULL)  # the token cached, the bytecode written
        served.add_fault(kind="latency", endpoint="graph", every=1, delay=LATENCY)
        gk_out, loop_out, chain_out = (served.work / n for n in ("gk", "loop", "chain"))
        times: dict[str, list[float]] = {"graphkit": [], "chain": [], "loop": []}
        for _ in range(RUNS):
            for name, cmd, path in (("graphkit", gk, gk_out), ("chain", chain, chain_out),
                                    ("loop", loop, loop_out)):  # fmt: skip
                with open(path, "wb") as fh:
                    times[name].append(run(cmd, env, fh))
        lines = gk_out.read_bytes().count(b"\n")
        same = gk_out.read_bytes() == loop_out.read_bytes()
        chain_pages, chain_inside = chain_out.read_text().split()
    med = {name: statistics.median(t) for name, t in times.items()}
    # The emulator's own time per page, in ms (from the last chain's GETs, without the
    # start-up of its process).
    own = (float(chain_inside) - nominal) / pages * 1000
    good = lines == USERS and same and int(chain_pages) == pages
    ok_chain = record(
        "bench_paging", f"`query /users --all -o jsonl`, {USERS:,} users, {pages} pages, "
        f"{LATENCY * 1000:.0f} ms latency per request",
        value=med["graphkit"], baseline=med["chain"], unit="s", target=TARGET, runs=RUNS,
        baseline_label=f"the {pages} GETs alone, in sequence, nothing written",
        passed=None if good else False,
        note=f"{lines:,} lines, identical to the loop's: {same}",
    )  # fmt: skip
    ok_nominal = record(
        "bench_paging", f"the same run against pages x latency ({pages} x "
        f"{LATENCY * 1000:.0f} ms)",
        value=med["graphkit"], baseline=nominal, unit="s", target=TARGET, runs=RUNS,
        baseline_label="pages x latency",
        note=f"this floor leaves out the emulator's own {own:.0f} ms per page "
        f"(the chain of GETs took {med['chain']:.2f} s)",
    )  # fmt: skip
    record(
        "bench_paging", "the same run against a client that waits for each page",
        value=med["graphkit"], baseline=med["loop"], unit="s", target=None, runs=RUNS,
        baseline_label="plain requests nextLink loop writing the same lines",
    )  # fmt: skip
    print(
        f"graphkit query /users --all over {USERS:,} users, {pages} pages, "
        f"{LATENCY * 1000:.0f} ms latency per Graph request, {RUNS} interleaved runs (medians)"
    )
    for name, label in (("graphkit", "graphkit (fetches ahead)"),
                        ("chain", "the GETs alone"), ("loop", "waits for each page")):  # fmt: skip
        print(
            f"  {label:<26} {med[name]:6.2f} s   runs: {', '.join(f'{t:.2f}' for t in times[name])}"
        )
    print(
        f"  (a) graphkit / chain {med['graphkit'] / med['chain']:.2f}x (target <= {TARGET}x) "
        f"{'PASS' if ok_chain else 'FAIL'}; {lines:,} lines, identical to the loop's: {same}"
    )
    print(
        f"  (b) graphkit / pages x latency ({nominal:.1f} s) {med['graphkit'] / nominal:.2f}x "
        f"(target <= {TARGET}x) {'PASS' if ok_nominal else 'FAIL'}: the emulator's own time "
        f"is {own:.0f} ms per page"
    )
    print(f"  (c) graphkit / loop {med['graphkit'] / med['loop']:.2f}x (reported)")
    return 0 if ok_chain and ok_nominal else 1


if __name__ == "__main__":
    sys.exit(main())
