#!/usr/bin/env python
"""`make bench`: run every scripts/bench_*.py and write docs/BENCHMARKS.md.

Every benchmark runs, even when an earlier one misses its target or fails. Each
figure is reported as a ratio to its baseline measured in the same interleaved run,
with the number of runs, the machine and the command that reproduces it. Exits 1 if
any benchmark failed or missed a target, naming which.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPORT = ROOT / "docs" / "BENCHMARKS.md"
sys.path.insert(0, str(HERE))

from _bench import RESULTS_ENV  # noqa: E402


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )


def _cell(entry: dict, key: str) -> str:
    value = entry.get(key)
    if value is None:
        return "-"
    unit = entry["unit"]
    return f"{value:,.1f} {unit}" if unit in ("ms", "MiB") else f"{value:,.2f} {unit}"


def main() -> int:
    scripts = sorted(p for p in HERE.glob("bench_*.py"))
    failed: list[str] = []
    entries: list[dict] = []
    outputs: dict[str, str] = {}
    for script in scripts:
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as results:
            path = results.name
        print(f"== {script.name}", flush=True)
        proc = subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, RESULTS_ENV: path},
            capture_output=True,
            text=True,
            check=False,
        )
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr[-3000:])
        outputs[script.stem] = proc.stdout.strip()
        lines = Path(path).read_text().splitlines()
        os.unlink(path)
        found = [json.loads(line) for line in lines if line.strip()]
        entries += found
        if proc.returncode != 0:
            failed.append(f"{script.name} (exit {proc.returncode})")
        failed += [f"{e['benchmark']}: {e['figure']}" for e in found if not e["passed"]]

    rows = [
        "| benchmark | figure | graphkit | baseline | ratio | target | runs | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        ratio = f"{e['ratio']:.2f}x" if e["ratio"] is not None else "-"
        target = f"<= {e['target']}x" if e["target"] is not None else "-"
        baseline = _cell(e, "baseline")
        if e.get("baseline_label"):
            baseline += f" ({e['baseline_label']})"
        figure = e["figure"] + (f"; {e['note']}" if e.get("note") else "")
        rows.append(
            f"| `{e['command']}` | {figure} | {_cell(e, 'value')} | {baseline} | {ratio} | "
            f"{target} | {e['runs']} | {'PASS' if e['passed'] else 'FAIL'} |"
        )
    text = [
        "# Benchmarks",
        "",
        "Written by `make bench` (scripts/run_benchmarks.py): every scripts/bench_*.py, each",
        "figure a ratio to a baseline measured in the same interleaved run (medians).",
        "Absolute times depend on the machine; the ratios are the targets.",
        "",
        f"- Run: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {_machine()}",
        "- Reproduce: `make bench`, or one script: the command in the first column",
        "",
        *rows,
        "",
        "## Output of each script",
        "",
    ]
    for name, out in outputs.items():
        text += [f"### {name}", "", "```", out or "(no output)", "```", ""]
    if failed:
        text += ["## Missed", "", *[f"- {f}" for f in failed], ""]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(text))
    print(f"\nwrote {REPORT.relative_to(ROOT)}")
    if failed:
        print("bench: missed or failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
