#!/usr/bin/env python
"""Benchmark `graphkit batch` against the emulator's throttling budget (issue 13).

In one run (about a minute):

(a) `graphkit batch` of 10,000 `GET /users/{id}` items (one per seeded user) against
    the emulator in a process of its own with its throttling budget on (`emulator serve
    --throttle BUDGET --throttle-window WINDOW`). Every item must be answered exactly
    once (its id once in the output, status 200, the body the user asked for: zero
    lost, none twice), and the throughput must reach at least 0.9x the budget's
    ceiling: BUDGET resource units per WINDOW / 1 RU per item (`GET /users/{id}` costs
    1 RU: throttling-limits.md, PROTOCOL.md §10).
(b) beside it, in the same run, a one-request-at-a-time loop with graphkit's own
    GraphClient (`client.get` per item) over a fixed subset, the first LOOP_ITEMS of
    the same items, and the ratio of the two throughputs.

The budget is 500 RU per 1 s window (BENCH_BATCH_BUDGET / BENCH_BATCH_WINDOW to
change): a short window keeps the first window's burst (a sliding window starts empty,
so the first BUDGET items go at once) small beside the run; with Graph's own 10 s
window and its smallest budget (3,500 RU) 10,000 items would be three windows, two of
them bursts. The burst's share is reported. Exits 1 if a target is missed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _bench import graphkit_env, make_identity, record, serve  # noqa: E402

ITEMS = int(os.environ.get("BENCH_BATCH_ITEMS", "10000"))
BUDGET = int(os.environ.get("BENCH_BATCH_BUDGET", "500"))  # RU per window
WINDOW = float(os.environ.get("BENCH_BATCH_WINDOW", "1"))  # seconds
LOOP_ITEMS = int(os.environ.get("BENCH_BATCH_LOOP_ITEMS", "1000"))
RU_PER_ITEM = 1  # GET /users/{id}: base cost 1, no modifiers
TARGET = 0.9  # of the ceiling

# graphkit's own client, one request at a time: the loop a script would write.
LOOP = r"""
import json, sys, time
from graphkit.graph import GraphClient
urls = [json.loads(line)["url"] for line in open(sys.argv[1])][: int(sys.argv[2])]
with GraphClient.from_env() as client:
    client.get(urls[0])  # the token and the connection, outside the timing
    start = time.perf_counter()
    ok = sum(1 for url in urls if client.get(url).get("id") == url.rsplit("/", 1)[1])
    seconds = time.perf_counter() - start
print(json.dumps({"items": len(urls), "ok": ok, "seconds": seconds}))
"""


def _check(output: str, expected: dict[str, str]) -> tuple[int, int, int, int]:
    """(answered once with the right user, missing, duplicated, wrong) over the output."""
    seen: dict[str, int] = {}
    right = wrong = 0
    for line in output.splitlines():
        result = json.loads(line)
        ident = str(result["id"])
        seen[ident] = seen.get(ident, 0) + 1
        body = result.get("body") or {}
        if result["status"] == 200 and body.get("id") == expected.get(ident):
            right += 1
        else:
            wrong += 1
    missing = sum(1 for ident in expected if ident not in seen)
    duplicated = sum(n - 1 for n in seen.values() if n > 1)
    return right, missing, duplicated, wrong


def main() -> int:
    graphkit_bin = str(Path(sys.executable).with_name("graphkit"))
    with tempfile.TemporaryDirectory(prefix="graphkit-bench-") as tmp:
        work = Path(tmp)
        _, _, pem, crt = make_identity(work)
        # The emulator in a process of its own, its throttling budget on.
        proc, info = serve(
            "--users", str(ITEMS), "--certificate", str(crt), "--throttle", str(BUDGET),
            "--throttle-window", str(WINDOW),
        )  # fmt: skip
        try:
            env = graphkit_env(info, pem, work / "home")
            # The users' ids (graphkit itself pages them: a few RU), one item per user.
            ids = subprocess.run(
                [graphkit_bin, "query", "/users", "--all", "--top", "999", "--select", "id",
                 "--output", "jsonl"],
                env=env, capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            users = [json.loads(line)["id"] for line in ids][:ITEMS]
            items = work / "items.jsonl"
            expected = {str(n): uid for n, uid in enumerate(users, 1)}
            items.write_text(
                "".join(
                    json.dumps({"id": n, "method": "GET", "url": f"/users/{uid}"}) + "\n"
                    for n, uid in expected.items()
                )
            )
            time.sleep(WINDOW)  # the window empties: the run starts from a full budget

            start = time.perf_counter()
            run = subprocess.run(
                [graphkit_bin, "batch", str(items)],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            summary = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ""
            right, missing, duplicated, wrong = _check(run.stdout, expected)

            time.sleep(WINDOW)
            loop = subprocess.run(
                [sys.executable, "-c", LOOP, str(items), str(LOOP_ITEMS)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            looped = json.loads(loop.stdout)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)

    ceiling = BUDGET / WINDOW / RU_PER_ITEM  # items per second
    rate = len(users) / seconds
    loop_rate = looped["items"] / looped["seconds"]
    exact = right == len(users) == ITEMS and not (missing or duplicated or wrong)
    burst = BUDGET / RU_PER_ITEM / len(users)
    ok_batch = record(
        "bench_batch",
        f"`graphkit batch`, {len(users):,} GET /users/{{id}} against a throttling budget of "
        f"{BUDGET:,} RU per {WINDOW:g} s, items per second",
        value=rate, baseline=ceiling, unit="items/s", target=None, runs=1,
        baseline_label="the budget's ceiling (RU per window / 1 RU per item)",
        passed=exact and rate >= TARGET * ceiling and run.returncode == 0,
        note=f"target >= {TARGET}x the ceiling; {right:,} answered exactly once with the user "
        f"asked for, {missing} lost, {duplicated} twice, {wrong} wrong; exit {run.returncode}; "
        f"{seconds:.1f} s; the first window's burst is {burst:.0%} of the items; {summary}",
    )  # fmt: skip
    ok_loop = record(
        "bench_batch",
        f"one request at a time with graphkit's GraphClient, the first {looped['items']:,} "
        "of the same items, items per second",
        value=loop_rate, baseline=rate, unit="items/s", target=None, runs=1,
        baseline_label="`graphkit batch` above",
        passed=looped["ok"] == looped["items"],
        note=f"batch is {rate / loop_rate:.1f}x the loop; {looped['ok']:,} of "
        f"{looped['items']:,} answered with the user asked for in {looped['seconds']:.1f} s",
    )  # fmt: skip
    print("graphkit batch benchmark (emulator in its own process on 127.0.0.1, throttled)")
    print(
        f"(a) batch: {len(users):,} items in {seconds:.1f} s = {rate:,.0f} items/s; ceiling "
        f"{ceiling:,.0f} items/s ({BUDGET:,} RU per {WINDOW:g} s); ratio {rate / ceiling:.2f}x "
        f"(target >= {TARGET}x) {_verdict(ok_batch)}; {right:,} answered exactly once, "
        f"{missing} lost, {duplicated} twice, {wrong} wrong; first-window burst "
        f"{burst:.0%} of the items"
    )
    print(f"    graphkit's summary: {summary}")
    print(
        f"(b) one at a time (GraphClient.get): {looped['items']:,} items in "
        f"{looped['seconds']:.1f} s = {loop_rate:,.0f} items/s; batch / loop = "
        f"{rate / loop_rate:.1f}x {_verdict(ok_loop)}"
    )
    return 0 if ok_batch and ok_loop else 1


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    sys.exit(main())
