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


# ------------------------------------------------------------------ a served emulator

# A plain requests nextLink loop writing JSON lines: the floor of `query --all -o jsonl`
# (argv: first URL, token file, CA bundle).
FLOOR_LOOP = r"""
import json, sys, requests
url, token_file, ca = sys.argv[1:4]
token = open(token_file).read().strip()
s = requests.Session()
out = sys.stdout
while url:
    r = s.get(url, headers={"Authorization": "Bearer " + token}, verify=ca)
    r.raise_for_status()
    body = r.json()
    for item in body["value"]:
        out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
    url = body.get("@odata.nextLink")
"""


class Served:
    """`graphkit emulator serve` in a process of its own (the harness stays small, and
    the emulator's CPU is not the harness's), with ``users`` users and an app whose
    certificate graphkit signs in with; the environment that points graphkit at it
    (``env``) and a token for the floors (``token_file``), acquired once with msal as a
    hand-written script would keep it. Use as a context manager; ``work`` is a
    temporary directory removed at the end.
    """

    def __init__(self, users: int, *, roles: tuple[str, ...] = ()) -> None:
        self.users, self.roles = users, roles
        self.python = sys.executable
        self.graphkit = str(Path(sys.executable).with_name("graphkit"))

    def __enter__(self) -> Served:
        import signal
        import tempfile

        import msal
        import requests

        from graphkit import crypto

        self._tmp = tempfile.TemporaryDirectory(prefix="graphkit-bench-")
        work = self.work = Path(self._tmp.name)
        key, cert, pem, crt = make_identity(work)
        self._proc, info = serve("--users", str(self.users), "--certificate", str(crt))
        self.info = info
        self._stop = signal.SIGINT
        try:
            self.ca = info["ca_bundle"]
            self.graph_url = info["graph_url"]
            admin = self.admin = requests.Session()
            admin.trust_env = False
            admin.verify = self.ca
            cid = info["app"]["client_id"]
            for role in self.roles:
                grant = admin.post(f"{self.graph_url}/_emulator/apps/{cid}/grants",
                                   json={"role": role})  # fmt: skip
                grant.raise_for_status()
            env = graphkit_env(info, pem, work / "home")
            self.env = env
            app = msal.ConfidentialClientApplication(
                cid,
                authority=info["authority"],
                client_credential={
                    "private_key": crypto.dump_private_key(key).decode(),
                    "public_certificate": crypto.dump_certificate(cert).decode(),
                },
                instance_discovery=False,
                http_client=admin,
            )
            token = app.acquire_token_for_client([info["scope"]])["access_token"]
            self.token_file = work / "token"
            self.token_file.write_text(token)
            self.token_file.chmod(0o600)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.send_signal(self._stop)
        self._proc.wait(timeout=30)
        self._tmp.cleanup()

    def add_fault(self, **fault: Any) -> None:
        """A fault of the emulator's admin API (``kind="latency", delay=0.1, ...``)."""
        self.admin.post(f"{self.graph_url}/_emulator/faults", json=fault).raise_for_status()

    def floor(self, script: str, *args: str) -> list[str]:
        """The command running a floor ``script`` with (first URL, token file, CA)."""
        return [self.python, "-c", script, *args, str(self.token_file), self.ca]


def run(cmd: list[str], env: dict[str, str], stdout: Any) -> float:
    """Wall time of one process; exits the benchmark if it fails."""
    import subprocess
    import time

    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({proc.returncode}): {err[-800:]}")
    return elapsed
