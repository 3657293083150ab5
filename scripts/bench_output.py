#!/usr/bin/env python
"""Benchmark `graphkit query /users --all --top 999` in -o json and -o csv against -o
jsonl, over 100,000 emulator users (the emulator in a process of its own).

Runs alternate (jsonl, json, csv, jsonl, json, csv, ...), output to a file; the figure
is each format's median wall time over jsonl's.              target: <= 1.1x each

The output is checked too: the JSON document parses to the same users as the JSON
lines, and the CSV has a header and one row per user.

BENCH_USERS and BENCH_OUTPUT_RUNS (default 7) change the run. Exits 1 if a target is
missed or an output is wrong.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _bench import Served, record, run  # noqa: E402

USERS = int(os.environ.get("BENCH_USERS", "100000"))
RUNS = int(os.environ.get("BENCH_OUTPUT_RUNS", "7"))
FORMATS = ("jsonl", "json", "csv")
TARGET = 1.1


def _check(work: Path) -> dict[str, str]:
    """What is wrong with each format's output ("" when nothing)."""
    with open(work / "json", encoding="utf-8") as fh:
        users = json.load(fh)
    with open(work / "jsonl", encoding="utf-8") as fh:
        lines = sum(1 for _ in fh)
        fh.seek(0)
        same = lines == len(users) and all(
            json.loads(a) == b for a, b in zip(fh, users, strict=True)
        )
    problems = {"jsonl": "" if lines == USERS else f"{lines:,} lines, not {USERS:,}"}
    problems["json"] = "" if same else "not the users of -o jsonl"
    ids = [u["id"] for u in users]
    del users
    with open(work / "csv", encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, [])
        column = header.index("id") if "id" in header else None
        same = column is not None and [r[column] for r in rows] == ids
    problems["csv"] = "" if same else "not one row per user, in order"
    return problems


def main() -> int:
    with Served(USERS) as served:
        env = served.env
        base = [served.graphkit, "query", "/users", "--all", "--top", "999", "-o"]
        run([*base[:3], "--top", "1"], env, subprocess.DEVNULL)  # the token, the bytecode
        times: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
        for _ in range(RUNS):
            for fmt in FORMATS:
                with open(served.work / fmt, "wb") as fh:
                    times[fmt].append(run([*base, fmt], env, fh))
        problems = _check(served.work)
    med = {fmt: statistics.median(t) for fmt, t in times.items()}
    print(f"graphkit query /users --all --top 999 over {USERS:,} users, {RUNS} interleaved runs")
    ok = not problems["jsonl"]
    for fmt in FORMATS:
        print(f"  -o {fmt:<5} median {med[fmt]:6.2f} s   runs: "
              f"{', '.join(f'{t:.2f}' for t in times[fmt])}")  # fmt: skip
    for fmt in ("json", "csv"):
        passed = record(
            "bench_output", f"`query /users --all -o {fmt}`, {USERS:,} users",
            value=med[fmt], baseline=med["jsonl"], unit="s", target=TARGET, runs=RUNS,
            baseline_label="the same query with -o jsonl",
            passed=False if problems[fmt] or problems["jsonl"] else None,
            note=problems[fmt] or problems["jsonl"] or "output checked against -o jsonl's",
        )  # fmt: skip
        ok = ok and passed
        print(
            f"  {fmt} / jsonl {med[fmt] / med['jsonl']:.2f}x (target <= {TARGET}x) "
            f"{'PASS' if passed else 'FAIL'}{': ' + problems[fmt] if problems[fmt] else ''}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
