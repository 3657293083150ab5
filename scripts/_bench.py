"""Shared by the benchmarks: each figure as a ratio to a baseline measured in the same
interleaved run, recorded for `make bench`'s report (scripts/run_benchmarks.py).

A benchmark calls :func:`record` for every figure it measures. When
``GRAPHKIT_BENCH_RESULTS`` names a file, one JSON line per figure is appended to it;
``run_benchmarks.py`` turns them into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

RESULTS_ENV = "GRAPHKIT_BENCH_RESULTS"


def record(
    benchmark: str,
    figure: str,
    *,
    value: float,
    baseline: float | None,
    unit: str,
    target: float | None,
    runs: int,
    baseline_label: str = "",
    passed: bool | None = None,
    note: str = "",
) -> bool:
    """Record one figure; returns whether it meets its target (ratio <= target).

    Args:
        benchmark: the script's name (``bench_query``).
        figure: what was measured.
        value: graphkit's median (in ``unit``).
        baseline: the baseline's median, measured in the same run (None: no ratio).
        unit: ``ms``, ``s``, ``MiB``...
        target: the largest acceptable ratio (None: reported only).
        runs: timed runs of each side.
        baseline_label: what the baseline is.
        passed: override the verdict (for checks that are not ratios).
        note: anything else worth reporting.
    """
    ratio = value / baseline if baseline else None
    if passed is None:
        passed = True if target is None or ratio is None else ratio <= target
    entry: dict[str, Any] = {
        "benchmark": benchmark,
        "figure": figure,
        "value": value,
        "baseline": baseline,
        "baseline_label": baseline_label,
        "ratio": ratio,
        "unit": unit,
        "target": target,
        "runs": runs,
        "passed": passed,
        "note": note,
        "command": f"{os.path.basename(sys.executable)} scripts/{benchmark}.py",
    }
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
    return passed
