#!/usr/bin/env python
"""Benchmark `graphkit query` against plain-requests floors, on the local emulator.

In one run (a few minutes at most):

(a) warm start: `graphkit query /organization` (a subprocess; the token cache and
    msal's http cache warmed first) against a floor script that does the same GET with
    requests and an already acquired token.                      target: <= 1.5x
(b) throughput: `graphkit query /users --all --top 999 --output jsonl` over 100,000
    emulator users against a plain requests nextLink loop writing the same lines.
                                                                  target: <= 1.25x
(c) memory: peak RSS of the graphkit process after 10,000 and after 100,000 users
    (`--max-items 10000` on the same emulator, then the full run).
                                                      target: flat (<= 1.25x)

Each timing is the median of several alternating runs. Exits 1 if a target is missed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

USERS = int(os.environ.get("BENCH_USERS", "100000"))  # smaller for a quick try
SMALL = USERS // 10
WARM_RUNS = 15
BULK_RUNS = 3
TARGET_WARM = 1.5
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


def _run(cmd: list[str], env: dict[str, str], stdout: Any) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({proc.returncode}): {err.strip()}")
    return elapsed, usage.ru_maxrss


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    from graphkit import crypto
    from graphkit.emulator import Emulator
    from graphkit.settings import resolve_settings
    from graphkit.tokens import CertificateCredential

    graphkit_bin = str(Path(sys.executable).with_name("graphkit"))
    python = sys.executable
    with (
        tempfile.TemporaryDirectory(prefix="graphkit-bench-") as tmp,
        Emulator(users=USERS, seed=0) as emu,
    ):
        work = Path(tmp)
        key = crypto.generate_private_key(2048)
        cert = crypto.self_sign(key, crypto.parse_subject(cn="graphkit-bench"))
        pem = work / "bench.pem"
        pem.write_bytes(crypto.dump_combined_pem(key, cert))
        pem.chmod(0o600)
        emu.upload_certificate(emu.default_app.client_id, cert)
        emu.grant(emu.default_app.client_id, "Organization.Read.All")
        env = dict(os.environ)
        for name in list(env):
            if name.startswith(("AZURE_", "GRAPHKIT_")):
                del env[name]
        # Measure graphkit as installed: with its bytecode cached (pip compiles it at
        # install; here the warm-up run writes it), not recompiled from source each run.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            GRAPHKIT_HOME=str(work / "home"),
            AZURE_TENANT_ID=emu.default_tenant.id,
            AZURE_CLIENT_ID=emu.default_app.client_id,
            AZURE_CLIENT_CERTIFICATE_PATH=str(pem),
            AZURE_AUTHORITY_HOST=emu.authority_host,
            GRAPHKIT_GRAPH_URL=emu.graph_url,
            GRAPHKIT_CA_BUNDLE=emu.ca_bundle,
            NO_COLOR="1",
        )
        # The floors' token: acquired once, as a script would keep it.
        settings = resolve_settings(env=env)
        token = CertificateCredential(settings, cache_dir=work / "floor-cache").get_token()
        token_file = work / "token"
        token_file.write_text(token.token)
        token_file.chmod(0o600)

        # (a) warm /organization
        gk_org = [graphkit_bin, "query", "/organization", "--output", "json"]
        floor_org = [
            python,
            "-c",
            FLOOR_GET,
            f"{emu.graph_url}/v1.0/organization",
            str(token_file),
            emu.ca_bundle,
        ]
        _run(gk_org, env, subprocess.DEVNULL)  # warm the caches
        emu.clear_requests()
        _run(gk_org, env, subprocess.DEVNULL)
        warm_requests = [r["kind"] for r in emu.requests()]
        gk_t, floor_t = [], []
        for _ in range(WARM_RUNS):
            gk_t.append(_run(gk_org, env, subprocess.DEVNULL)[0])
            floor_t.append(_run(floor_org, env, subprocess.DEVNULL)[0])
        gk_warm, floor_warm = statistics.median(gk_t), statistics.median(floor_t)
        warm_ratio = gk_warm / floor_warm

        # (b) + (c) 100k users as JSON lines
        gk_users = [graphkit_bin, "query", "/users", "--all", "--top", "999", "--output", "jsonl"]
        floor_users = [
            python,
            "-c",
            FLOOR_LOOP,
            f"{emu.graph_url}/v1.0/users?$top=999",
            str(token_file),
            emu.ca_bundle,
        ]
        gk_out, floor_out = work / "graphkit.jsonl", work / "floor.jsonl"
        with open(os.devnull, "wb") as null:
            _, rss_small = _run([*gk_users, "--max-items", str(SMALL)], env, null)
        gk_b, floor_b, rss_big = [], [], 0
        for _ in range(BULK_RUNS):
            with open(gk_out, "wb") as fh:
                t, rss = _run(gk_users, env, fh)
            gk_b.append(t)
            rss_big = max(rss_big, rss)
            with open(floor_out, "wb") as fh:
                floor_b.append(_run(floor_users, env, fh)[0])
        lines = gk_out.read_bytes().count(b"\n")
        same = gk_out.read_bytes() == floor_out.read_bytes()
        gk_bulk, floor_bulk = statistics.median(gk_b), statistics.median(floor_b)
        bulk_ratio = gk_bulk / floor_bulk
        mem_ratio = rss_big / rss_small

    ok_warm = warm_ratio <= TARGET_WARM
    ok_bulk = bulk_ratio <= TARGET_BULK and lines == USERS and same
    ok_mem = mem_ratio <= TARGET_MEMORY
    print("graphkit query benchmark (emulator on 127.0.0.1, medians)")
    print(
        f"(a) warm /organization: graphkit {gk_warm * 1000:.0f} ms, floor "
        f"{floor_warm * 1000:.0f} ms, ratio {warm_ratio:.2f}x (target <= {TARGET_WARM}x) "
        f"{_verdict(ok_warm)}; requests on a warm run: {warm_requests}"
    )
    print(
        f"(b) {USERS:,} users jsonl: graphkit {gk_bulk:.2f} s, floor {floor_bulk:.2f} s, "
        f"ratio {bulk_ratio:.2f}x (target <= {TARGET_BULK}x) {_verdict(ok_bulk)}; "
        f"{lines:,} lines, identical to the floor's: {same}"
    )
    print(
        f"(c) peak RSS: {rss_small / 1024:.1f} MiB at {SMALL:,} users, "
        f"{rss_big / 1024:.1f} MiB at {USERS:,}, ratio {mem_ratio:.2f}x "
        f"(target <= {TARGET_MEMORY}x) {_verdict(ok_mem)}"
    )
    return 0 if ok_warm and ok_bulk and ok_mem else 1


if __name__ == "__main__":
    sys.exit(main())
