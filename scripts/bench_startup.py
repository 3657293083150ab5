"""Startup cost of the command line, compared with the imports it cannot avoid.

Run by ``make bench``. In one run it times, as fresh processes:

* ``graphkit --help``        against ``python -c "import typer"``
* ``graphkit thumbprint CRT`` against ``python -c "import typer, cryptography.x509"``

and prints the medians, the ratios and the target (at most 1.3x each). Timings are
reported, not enforced (machines are noisy), but each ratio is labelled PASS or FAIL.

It also checks, with ``python -X importtime``, that ``--help`` imports none of
cryptography, msal, requests (or rich), and that ``thumbprint`` imports neither msal
nor requests. Those checks are deterministic: the script exits 1 if one fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import record

TARGET = 1.3
HELP_FORBIDDEN = ("cryptography", "msal", "requests")
THUMBPRINT_FORBIDDEN = ("msal", "requests")


def graphkit_command() -> tuple[list[str], str]:
    """The installed console script beside this interpreter, else ``python -m graphkit``.

    Both baselines run the same interpreter, so the comparison is like for like.
    """
    script = Path(sys.executable).with_name("graphkit")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)], str(script)
    return [sys.executable, "-m", "graphkit"], f"{sys.executable} -m graphkit"


def bench_env(pycache: Path) -> dict[str, str]:
    """The environment every timed command runs in.

    Bytecode caching is on, in a private prefix: graphkit, like any installed package,
    starts from .pyc files (PYTHONDONTWRITEBYTECODE=1, set on some machines, would make
    it recompile its own modules on every run while site-packages keep their caches).
    """
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


ENV: dict[str, str] = {}


def run_once(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed: {proc.stderr.decode()[-500:]}")
    return elapsed


def measure(pairs: dict[str, list[str]], runs: int, warmup: int) -> dict[str, list[float]]:
    """Time every command ``runs`` times, interleaved so drift hits them all alike."""
    for argv in pairs.values():
        for _ in range(warmup):
            run_once(argv)
    samples: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(runs):
        for name, argv in pairs.items():
            samples[name].append(run_once(argv))
    return samples


def imported_modules(argv: list[str]) -> set[str]:
    """Top-level package names a run imports, from ``python -X importtime``."""
    env = dict(ENV, PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed: {proc.stderr.decode()[-500:]}")
    names = set()
    for line in proc.stderr.decode().splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":
                names.add(name.split(".")[0])
    return names


def make_certificate(directory: Path) -> Path:
    from cryptography.x509.oid import NameOID  # noqa: F401  (ensures cryptography present)

    from graphkit import crypto

    key = crypto.generate_private_key()
    cert = crypto.self_sign(key, crypto.parse_subject(cn="bench"))
    path = directory / "bench.crt"
    path.write_bytes(crypto.dump_certificate(cert))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs per command")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    args = parser.parse_args()

    gk, gk_label = graphkit_command()
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="graphkit-bench-"))
    ENV.update(bench_env(tmp / "pycache"))
    try:
        crt = make_certificate(tmp)
        commands = {
            "graphkit --help": [*gk, "--help"],
            'python -c "import typer"': [py, "-c", "import typer"],
            "graphkit thumbprint CRT": [*gk, "thumbprint", str(crt)],
            'python -c "import typer, cryptography.x509"': [
                py,
                "-c",
                "import typer, cryptography.x509",
            ],
        }
        failures: list[str] = []
        # PYTHONPROFILEIMPORTTIME is -X importtime for any interpreter, console script too.
        help_mods = imported_modules([*gk, "--help"])
        thumb_mods = imported_modules([*gk, "thumbprint", str(crt)])
        for mod in HELP_FORBIDDEN:
            if mod in help_mods:
                failures.append(f"`graphkit --help` imports {mod}")
        for mod in THUMBPRINT_FORBIDDEN:
            if mod in thumb_mods:
                failures.append(f"`graphkit thumbprint` imports {mod}")

        samples = measure(commands, args.runs, args.warmup)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"graphkit startup ({args.runs} runs each, interleaved; graphkit = {gk_label})")
    med = {name: statistics.median(s) for name, s in samples.items()}
    for name, s in samples.items():
        print(f"  {name:<46} median {med[name] * 1000:7.1f} ms   min {min(s) * 1000:7.1f} ms")
    print()
    for ours, base in (
        ("graphkit --help", 'python -c "import typer"'),
        ("graphkit thumbprint CRT", 'python -c "import typer, cryptography.x509"'),
    ):
        ratio = med[ours] / med[base]
        ratio_min = min(samples[ours]) / min(samples[base])
        ok = record(
            "bench_startup",
            f"`{ours}` start-up",
            value=med[ours] * 1000,
            baseline=med[base] * 1000,
            baseline_label=base,
            unit="ms",
            target=TARGET,
            runs=args.runs,
        )
        if not ok:
            failures.append(f"`{ours}` is {ratio:.2f}x `{base}` (target <= {TARGET}x)")
        verdict = "PASS" if ok else "FAIL"
        print(
            f"  {ours:<24} / {base:<44} {ratio:5.2f}x median, {ratio_min:5.2f}x min "
            f"(target <= {TARGET}x): {verdict}"
        )
    print()
    print(
        "  imports: --help loads "
        + (", ".join(m for m in (*HELP_FORBIDDEN, "rich") if m in help_mods) or "none")
        + " of cryptography/msal/requests/rich; thumbprint loads "
        + (", ".join(m for m in THUMBPRINT_FORBIDDEN if m in thumb_mods) or "none")
        + " of msal/requests"
    )
    record(
        "bench_startup",
        "imports: `--help` loads no cryptography/msal/requests; `thumbprint` no msal/requests",
        value=0,
        baseline=None,
        unit="",
        target=None,
        runs=1,
        passed=not any("imports" in f for f in failures),
    )
    for failure in failures:
        print(f"bench: FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
