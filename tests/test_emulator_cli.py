"""`graphkit emulator serve`: a real subprocess for the happy path, CliRunner for errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from _emulator_helpers import identity, msal_app, no_ca_env, pem_credential, serving

_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)


class _Info:
    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.ca_bundle = data["ca_bundle"]
        self.authority_host = data["authority_host"]
        self.graph_url = data["graph_url"]
        self.graph_scope = data["scope"]

    def authority(self) -> str:
        return str(self.data["authority"])


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_json_then_stop(tmp_path: Path, stop: signal.Signals) -> None:
    ident = identity(tmp_path)
    with serving("--json", "--users", "5", "--certificate", str(ident.combined)) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = _Info(json.loads(line))
        data = info.data
        assert data["app"]["certificates"] == 1
        assert data["environment"]["AZURE_AUTHORITY_HOST"] == info.authority_host
        assert data["upload_url"].endswith(
            f"/_emulator/apps/{data['app']['client_id']}/certificates"
        )
        app = msal_app(info, data["app"]["client_id"], pem_credential(ident))
        token = app.acquire_token_for_client([info.graph_scope])["access_token"]
        count = requests.get(
            f"{info.graph_url}/v1.0/users/$count",
            headers={"Authorization": f"Bearer {token}", "ConsistencyLevel": "eventual"},
            verify=info.ca_bundle,
            timeout=30,
        )
        assert count.text == "5"
        proc.send_signal(stop)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "graphkit emulator stopped" in err
    assert "Traceback" not in err
    assert not Path(info.ca_bundle).exists()


def test_serve_prints_urls_env_and_upload_help(tmp_path: Path) -> None:
    lines: list[str] = []
    with serving("--users", "3") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("  graphkit query"):
                break
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    text = "\n".join(lines)
    assert "https://127.0.0.1:" in text
    assert "CA bundle" in text
    assert "contoso.onmicrosoft.com" in text
    assert "no certificate yet" in text and "/_emulator/apps/" in text
    for name in (
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_AUTHORITY_HOST",
        "GRAPHKIT_GRAPH_URL",
        "GRAPHKIT_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
    ):
        assert f"export {name}=" in text
    assert proc.returncode == 0


def test_the_printed_upload_command_works(tmp_path: Path) -> None:
    # The Python form printed for the upload, run as printed (with a real certificate).
    ident = identity(tmp_path)
    (tmp_path / "my.crt").write_text(ident.cert_pem)
    with serving("--json", "--users", "1") as proc:
        assert proc.stdout is not None
        data = json.loads(proc.stdout.readline())
        r = requests.post(
            data["upload_url"],
            data=(tmp_path / "my.crt").read_bytes(),
            verify=data["ca_bundle"],
            timeout=30,
        )
        assert r.status_code == 201
        info = requests.get(
            f"{data['graph_url']}/_emulator/", verify=data["ca_bundle"], timeout=30
        ).json()
        assert info["app"]["certificates"] == 1
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def _run(args: list[str]) -> Any:
    from typer.testing import CliRunner

    from graphkit.cli import app

    return CliRunner().invoke(app, args)


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "70000"],
        ["--users", "-1"],
        ["--token-lifetime", "0"],
        ["--propagation-delay", "-2"],
    ],
)
def test_bad_options_are_one_line_input_errors(args: list[str]) -> None:
    result = _run(["emulator", "serve", *args])
    assert result.exit_code == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("graphkit: error: ")


def test_port_in_use_is_a_network_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _run(["emulator", "serve", "--port", str(port)])
    assert result.exit_code == 9
    assert f"127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_or_bad_certificate_file_is_an_input_error(tmp_path: Path) -> None:
    result = _run(["emulator", "serve", "--certificate", str(tmp_path / "nope.crt")])
    assert result.exit_code == 3
    assert "nope.crt" in result.stderr
    key_only = tmp_path / "only.key"
    key_only.write_text(identity(tmp_path).key_pem)
    result = _run(["emulator", "serve", "--certificate", str(key_only)])
    assert result.exit_code == 3
    assert "holds no PEM or DER certificate" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_does_not_import_the_emulator() -> None:
    code = (
        "import sys\n"
        "from graphkit.cli import main\n"
        "try:\n    main(['emulator', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print([m for m in ('graphkit.emulator', 'cryptography') if m in sys.modules])"
    )
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _banner(*args: str) -> str:
    lines: list[str] = []
    with serving(*args) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("  graphkit query"):
                break
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    return "\n".join(lines)


def test_banner_exports_are_enough_for_azure_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a combined key+certificate PEM the banner exports AZURE_CLIENT_CERTIFICATE_PATH,
    # and says in one line what the environment cannot carry.
    from azure.identity import DefaultAzureCredential, EnvironmentCredential

    ident = identity(tmp_path)
    lines: list[str] = []
    with serving("--users", "2", "--certificate", str(ident.combined)) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("  graphkit query"):
                break
        exports = dict(ln.split("export ", 1)[1].split("=", 1) for ln in lines if "  export " in ln)
        assert exports["AZURE_CLIENT_CERTIFICATE_PATH"] == str(ident.combined.absolute())
        notes = [ln for ln in lines if "disable_instance_discovery=True" in ln]
        assert len(notes) == 1 and notes[0].lstrip().startswith("# azure-identity:")
        for name in list(os.environ):
            if name.startswith("AZURE_"):
                monkeypatch.delenv(name)
        for name, value in exports.items():
            monkeypatch.setenv(name, value)
        scope = f"{exports['GRAPHKIT_GRAPH_URL']}/.default"
        token = EnvironmentCredential(disable_instance_discovery=True).get_token(scope)
        assert token.token
        default = DefaultAzureCredential(
            disable_instance_discovery=True,
            exclude_managed_identity_credential=True,
            exclude_workload_identity_credential=True,
        )
        assert default.get_token(scope).token
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_banner_without_a_combined_pem_exports_no_certificate_path(tmp_path: Path) -> None:
    ident = identity(tmp_path)
    public = tmp_path / "public.crt"
    public.write_text(ident.cert_pem)
    text = _banner("--users", "1", "--certificate", str(public))
    assert "AZURE_CLIENT_CERTIFICATE_PATH" not in text
    assert "certificate uploaded" in text
    assert "disable_instance_discovery=True" in text
