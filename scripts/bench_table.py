#!/usr/bin/env python
"""Benchmark the `graphkit query` table against `-o jsonl`, over 100,000 emulator users.

In one run, alternating (table, jsonl, table, jsonl, ...):

* ``graphkit query /users --all`` on a terminal (a pty, 200 columns: the table is the
  default there; the pty is drained as a terminal would be);
* ``graphkit query /users --all -o jsonl`` to a pipe (drained).

It prints the medians of wall time and peak RSS of each, and the ratios
table / jsonl. Targets: peak memory at most 1.2x that of jsonl (the table streams,
widths fixed from the first page); the time ratio is reported (the issue's run was 6x).
Exits 1 when the memory target is missed or a run fails.

    .venv/bin/python scripts/bench_table.py          # BENCH_USERS=20000 for a quick try
"""

from __future__ import annotations

import os
import pty
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _bench import Served, record  # noqa: E402

USERS = int(os.environ.get("BENCH_USERS", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TARGET_MEMORY = 1.2


def _drain(fd: int, counter: list[int]) -> None:
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:  # the pty's other end closed (EIO)
            return
        if not chunk:
            return
        counter[0] += chunk.count(b"\n")


def _run(cmd: list[str], env: dict[str, str], *, terminal: bool) -> tuple[float, int, int]:
    """Wall time, peak RSS (KiB) and lines of output of one process."""
    counter = [0]
    if terminal:
        master, slave = pty.openpty()
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        out_fd, stdout, stderr = master, slave, slave
    else:
        read_end, write_end = os.pipe()
        out_fd, stdout, stderr = read_end, write_end, subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, close_fds=True
    )
    os.close(stdout)
    reader = threading.Thread(target=_drain, args=(out_fd, counter), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    reader.join(30)
    os.close(out_fd)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[1:])} failed with status {code}")
    return elapsed, usage.ru_maxrss, counter[0]


def main() -> int:
    # The emulator in a process of its own: wait4's peak of each child then counts no
    # emulator memory inherited from this harness.
    with Served(USERS) as served:
        graphkit_bin = served.graphkit
        env = dict(served.env)
        env.pop("COLUMNS", None)
        env.pop("NO_COLOR", None)  # the table as a terminal shows it
        table = [graphkit_bin, "query", "/users", "--all"]
        jsonl = [*table, "-o", "jsonl"]
        _run([graphkit_bin, "query", "/users", "--top", "1"], env, terminal=False)  # warm
        results: dict[str, list[tuple[float, int, int]]] = {"table": [], "jsonl": []}
        for _ in range(ROUNDS):
            results["table"].append(_run(table, env, terminal=True))
            results["jsonl"].append(_run(jsonl, env, terminal=False))
    print(f"graphkit query /users --all over {USERS:,} emulator users, {ROUNDS} rounds each")
    med: dict[str, tuple[float, float]] = {}
    for name, runs in results.items():
        t = statistics.median(r[0] for r in runs)
        m = statistics.median(r[1] for r in runs) / 1024
        lines = runs[0][2]
        med[name] = (t, m)
        where = "on a 200-column pty" if name == "table" else "to a pipe"
        print(
            f"  {name:<5} {where:<20} median {t:6.2f} s   peak RSS {m:6.1f} MiB  ({lines:,} lines)"
        )
    time_ratio = med["table"][0] / med["jsonl"][0]
    mem_ratio = med["table"][1] / med["jsonl"][1]
    # Every user's row was on the terminal (header, rule, one line each, notes).
    rows_ok = all(r[2] >= USERS for r in results["table"])
    ok = record(
        "bench_table", f"`query /users --all` table on a pty, {USERS:,} users: peak RSS",
        value=med["table"][1], baseline=med["jsonl"][1], unit="MiB", target=TARGET_MEMORY,
        runs=ROUNDS, baseline_label="-o jsonl to a pipe",
        passed=None if rows_ok else False,
        note="wait4's ru_maxrss of each child" + ("" if rows_ok else "; rows missing"),
    )  # fmt: skip
    record(
        "bench_table", f"`query /users --all` table on a pty, {USERS:,} users: wall time",
        value=med["table"][0], baseline=med["jsonl"][0], unit="s", target=None,
        runs=ROUNDS, baseline_label="-o jsonl to a pipe",
    )  # fmt: skip
    print(
        f"  table / jsonl: time {time_ratio:.2f}x (reported), "
        f"peak memory {mem_ratio:.2f}x (target <= {TARGET_MEMORY}x): {'PASS' if ok else 'FAIL'}"
    )
    if not rows_ok:
        print("  FAIL: the table did not show every user")
    return 0 if ok and rows_ok else 1


if __name__ == "__main__":
    sys.exit(main())
