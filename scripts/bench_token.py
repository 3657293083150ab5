#!/usr/bin/env python
"""Benchmark a cold `graphkit token` against a plain msal script, on the local emulator.

Cold: no token, no discovery answer and no record of a certificate check in the state
directory (a new GRAPHKIT_HOME for every run), so graphkit loads and checks the
certificate, builds msal's application and asks the token endpoint, as on a first run.
The baseline is the script a user would write by hand: read the same key and
certificate PEM files, `msal.ConfidentialClientApplication(...,
client_credential={"private_key", "public_certificate"})`, `acquire_token_for_client`,
print the expiry. Both talk to the same emulator; runs alternate (interleaved), and
the ratio of medians is reported.                                    target: <= 1.15x

Exits 1 if the target is missed or either side fails.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _bench import record  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "21"))
TARGET = 1.15

MSAL_SCRIPT = r"""
import sys, msal, requests
key_file, cert_file, client_id, authority, scope, ca = sys.argv[1:7]
session = requests.Session()
session.verify = ca
session.trust_env = False  # else REQUESTS_CA_BUNDLE would override verify
app = msal.ConfidentialClientApplication(
    client_id,
    authority=authority,
    client_credential={
        "private_key": open(key_file).read(),
        "public_certificate": open(cert_file).read(),
    },
    http_client=session,
    instance_discovery=False,
)
result = app.acquire_token_for_client(scopes=[scope])
if "access_token" not in result:
    sys.exit(result.get("error_description") or "no token")
print(result["expires_in"])
"""


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed ({proc.returncode}): {proc.stderr}")
    return elapsed


def main() -> int:
    from graphkit import crypto
    from graphkit.emulator import Emulator

    graphkit_bin = str(Path(sys.executable).with_name("graphkit"))
    with tempfile.TemporaryDirectory(prefix="graphkit-bench-") as tmp, Emulator() as emu:
        work = Path(tmp)
        key = crypto.generate_private_key(2048)
        cert = crypto.self_sign(key, crypto.parse_subject(cn="graphkit-bench"))
        key_file, cert_file = work / "bench.key", work / "bench.crt"
        key_file.write_bytes(crypto.dump_private_key(key))
        key_file.chmod(0o600)
        cert_file.write_bytes(crypto.dump_certificate(cert))
        emu.upload_certificate(emu.default_app.client_id, cert)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "GRAPHKIT_"))}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure with bytecode cached, as installed
        env["NO_COLOR"] = "1"
        tenant, client_id = emu.default_tenant.id, emu.default_app.client_id
        gk = [
            graphkit_bin, "token", "--json",
            "--tenant", tenant, "--client-id", client_id,
            "--certificate", str(cert_file), "--private-key", str(key_file),
            "--authority-host", emu.authority_host, "--graph-url", emu.graph_url,
            "--ca-bundle", emu.ca_bundle,
        ]  # fmt: skip
        baseline = [
            sys.executable, "-c", MSAL_SCRIPT,
            str(key_file), str(cert_file), client_id, emu.authority(), emu.graph_scope,
            emu.ca_bundle,
        ]  # fmt: skip

        def cold_env(n: int) -> dict[str, str]:
            return {**env, "GRAPHKIT_HOME": str(work / f"home-{n}")}

        _time(gk, cold_env(-1))  # bytecode written, files in the page cache
        _time(baseline, env)
        emu.clear_requests()
        gk_t, base_t = [], []
        for n in range(RUNS):
            gk_t.append(_time(gk, cold_env(n)))
            base_t.append(_time(baseline, env))
        kinds = [r["kind"] for r in emu.requests()]
        tokens = kinds.count("token")
    gk_med, base_med = statistics.median(gk_t), statistics.median(base_t)
    ratio = gk_med / base_med
    ok = record(
        "bench_token",
        "cold `graphkit token` (new state directory each run)",
        value=gk_med * 1000,
        baseline=base_med * 1000,
        baseline_label="plain msal acquire_token_for_client script, same PEM files",
        unit="ms",
        target=TARGET,
        runs=RUNS,
    )
    ok = ok and tokens == 2 * RUNS
    print("graphkit cold token benchmark (emulator on 127.0.0.1, medians of interleaved runs)")
    print(
        f"cold `graphkit token`: {gk_med * 1000:.0f} ms, plain msal script "
        f"{base_med * 1000:.0f} ms, ratio {ratio:.2f}x (target <= {TARGET}x) "
        f"{'PASS' if ok else 'FAIL'}; {RUNS} runs each, {tokens} token requests"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
