"""Shared by the benchmarks: each figure as a ratio to a baseline measured in the same
interleaved run, recorded for `make bench`'s report (scripts/run_benchmarks.py).

A benchmark calls :func:`record` for every figure it measures. When
``GRAPHKIT_BENCH_RESULTS`` names a file, one JSON line per figure is appended to it;
``run_benchmarks.py`` turns them into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
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


def make_identity(work: Path) -> tuple[Any, Any, Path, Path]:
    """A new RSA key and self-signed certificate: (key, cert, key+cert PEM (0600), .crt)."""
    from graphkit import crypto

    key = crypto.generate_private_key(2048)
    cert = crypto.self_sign(key, crypto.parse_subject(cn="graphkit-bench"))
    pem = work / "bench.pem"
    pem.write_bytes(crypto.dump_combined_pem(key, cert))
    pem.chmod(0o600)
    crt = work / "bench.crt"
    crt.write_bytes(crypto.dump_certificate(cert))
    return key, cert, pem, crt


def serve(*options: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """`graphkit emulator serve --json OPTIONS` in a process of its own (the harness
    stays small), and the connection details it prints. Stop it with SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphkit", "emulator", "serve", "--json", *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def graphkit_env(info: dict[str, Any], pem: Path, home: Path) -> dict[str, str]:
    """This environment without the machine's AZURE_*/GRAPHKIT_* settings, pointed at the
    emulator's default app signing in with ``pem``, its state in ``home``.

    Bytecode caching stays on: graphkit is measured as installed (pip compiles it at
    install; the first run writes it here), not recompiled from source on each run.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "GRAPHKIT_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        GRAPHKIT_HOME=str(home),
        AZURE_TENANT_ID=info["tenant"]["id"],
        AZURE_CLIENT_ID=info["app"]["client_id"],
        AZURE_CLIENT_CERTIFICATE_PATH=str(pem),
        AZURE_AUTHORITY_HOST=info["authority_host"],
        GRAPHKIT_GRAPH_URL=info["graph_url"],
        GRAPHKIT_CA_BUNDLE=info["ca_bundle"],
        NO_COLOR="1",
    )
    return env
