"""Settings: profiles in TOML, azure-identity environment variables, flags, validation,
and the `graphkit config` commands. No server needed."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import PASSPHRASE, Identity, clean_env, make_identity
from typer.testing import CliRunner

from graphkit import certificates
from graphkit.cli import app
from graphkit.errors import ConfigError, CryptoError, ExitCode
from graphkit.settings import (
    config_dir,
    config_path,
    read_config,
    resolve_settings,
    save_profile,
    state_dir,
    validate,
    write_config,
)

TENANT = "0c5a7e0d-9f0b-4a57-a3a4-3f3e1f7b8c11"
CLIENT = "8d2f4c71-3b6e-4f0e-9a51-0b4c1d2e3f40"
OTHER_CLIENT = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_env(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def ident(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return make_identity(tmp_path_factory.mktemp("ident"))


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {"GRAPHKIT_HOME": str(home), **extra}


# --------------------------------------------------------------- directories


def test_graphkit_home_moves_config_and_state(home: Path) -> None:
    assert config_path() == home / "config.toml"
    assert state_dir() == home
    assert config_dir() == home


def test_without_graphkit_home_platform_dirs_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAPHKIT_HOME", raising=False)
    env: dict[str, str] = {}
    assert config_path(env).name == "config.toml"
    assert "graphkit" in str(config_dir(env))
    assert "graphkit" in str(state_dir(env))
    assert config_dir({"GRAPHKIT_HOME": "/x/y"}) == Path("/x/y")


# ------------------------------------------------------------------ TOML file


def test_toml_written_is_read_back_exactly(home: Path) -> None:
    tricky = 'C:\\certs\\"quoted"\tand\nnewline é \x01'
    data = {
        "default_profile": "a.b-c",
        "profiles": {"a.b-c": {"tenant": TENANT, "certificate": tricky}, "plain": {}},
    }
    path = write_config(data)
    assert tomllib.loads(path.read_text("utf-8")) == data
    assert read_config(path) == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_corrupt_config_is_a_one_line_config_error(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "config.toml").write_text("[profiles\ntenant=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_settings()


def test_unknown_profile_key_is_refused(home: Path) -> None:
    write_config({"profiles": {"w": {"tenant": TENANT, "client-id": CLIENT}}})
    with pytest.raises(ConfigError, match="unknown key 'client-id'"):
        resolve_settings(profile="w")


def test_save_profile_first_is_default_paths_absolute(
    home: Path, ident: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ident.crt.parent)
    save_profile("one", {"tenant": TENANT, "certificate": "app.pem"})
    save_profile("two", {"tenant": "fabrikam.onmicrosoft.com"})
    data = read_config()
    assert data["default_profile"] == "one"
    assert data["profiles"]["one"]["certificate"] == str(ident.combined)
    save_profile("two", {"client_id": CLIENT}, make_default=True)
    data = read_config()
    assert data["default_profile"] == "two"
    assert data["profiles"]["two"] == {"tenant": "fabrikam.onmicrosoft.com", "client_id": CLIENT}
    save_profile("two", {}, unset=["client_id"])
    assert read_config()["profiles"]["two"] == {"tenant": "fabrikam.onmicrosoft.com"}


def test_save_profile_checks_values(home: Path) -> None:
    with pytest.raises(ConfigError, match="not a GUID"):
        save_profile("x", {"client_id": "my-app"})
    with pytest.raises(ConfigError, match="unknown cloud"):
        save_profile("x", {"cloud": "mars"})
    with pytest.raises(ConfigError, match="invalid profile name"):
        save_profile("../evil", {"tenant": TENANT})
    assert not config_path().exists()


def test_relative_profile_paths_are_relative_to_the_config_file(home: Path) -> None:
    write_config({"profiles": {"w": {"certificate": "certs/app.pem"}}})
    settings = resolve_settings(profile="w")
    assert settings.certificate == home / "certs" / "app.pem"


# ------------------------------------------------------------------ precedence


def test_flags_beat_env_beat_profile(home: Path) -> None:
    save_profile(
        "w", {"tenant": "fabrikam.onmicrosoft.com", "client_id": CLIENT, "certificate": "/p.pem"}
    )
    s = resolve_settings(env=_env(home))
    assert (s.profile, s.tenant, s.client_id) == ("w", "fabrikam.onmicrosoft.com", CLIENT)
    assert s.sources["tenant"].startswith("profile:w (")
    assert s.certificate == Path("/p.pem")

    s = resolve_settings(env=_env(home, AZURE_TENANT_ID=TENANT))
    assert s.tenant == TENANT and s.sources["tenant"] == "env:AZURE_TENANT_ID"
    assert s.client_id == CLIENT and s.sources["client_id"].startswith("profile:w")

    s = resolve_settings(
        env=_env(home, AZURE_TENANT_ID=TENANT),
        overrides={"tenant": "contoso.com", "client_id": None},
    )
    assert s.tenant == "contoso.com" and s.sources["tenant"] == "flag"
    assert s.sources["client_id"].startswith("profile:w")


def test_profile_selection_flag_env_default(home: Path) -> None:
    save_profile("a", {"tenant": "a.example.com"})
    save_profile("b", {"tenant": "b.example.com"})
    assert resolve_settings(env=_env(home)).tenant == "a.example.com"
    s = resolve_settings(env=_env(home, GRAPHKIT_PROFILE="b"))
    assert (s.profile, s.tenant, s.sources["profile"]) == (
        "b",
        "b.example.com",
        "env:GRAPHKIT_PROFILE",
    )
    s = resolve_settings(profile="a", env=_env(home, GRAPHKIT_PROFILE="b"))
    assert s.tenant == "a.example.com" and s.sources["profile"] == "flag"
    with pytest.raises(ConfigError, match=r"no profile named 'c'.*known profiles: a, b"):
        resolve_settings(profile="c", env=_env(home))


def test_no_config_file_env_only(home: Path, ident: Identity) -> None:
    s = resolve_settings(
        env=_env(
            home,
            AZURE_TENANT_ID=TENANT,
            AZURE_CLIENT_ID=CLIENT,
            AZURE_CLIENT_CERTIFICATE_PATH=str(ident.pfx),
            AZURE_CLIENT_CERTIFICATE_PASSWORD=PASSPHRASE.decode(),
            AZURE_AUTHORITY_HOST="127.0.0.1:8443",
            GRAPHKIT_GRAPH_URL="https://127.0.0.1:8443/v1.0/",
        )
    )
    assert s.profile is None
    assert s.authority_host == "https://127.0.0.1:8443"
    assert s.graph_url == "https://127.0.0.1:8443"
    assert s.scope == "https://127.0.0.1:8443/.default"
    assert s.passphrase == PASSPHRASE
    assert s.sources["passphrase"] == "env:AZURE_CLIENT_CERTIFICATE_PASSWORD"
    validate(s)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("login.microsoftonline.com", "https://login.microsoftonline.com"),
        ("https://login.microsoftonline.com/", "https://login.microsoftonline.com"),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
        ("127.0.0.1:8443", "https://127.0.0.1:8443"),
        ("HTTPS://Login.Example.ORG:443/", "https://login.example.org:443"),
    ],
)
def test_authority_host_forms(home: Path, value: str, expected: str) -> None:
    s = resolve_settings(env=_env(home, AZURE_AUTHORITY_HOST=value))
    assert s.authority_host == expected


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        ("AZURE_AUTHORITY_HOST", "http://login.example.org", "must use https"),
        ("AZURE_AUTHORITY_HOST", "https://login.example.org/contoso.com", "without a path"),
        ("GRAPHKIT_GRAPH_URL", "https://graph.example.org/v2/x", "without a path"),
        ("GRAPHKIT_GRAPH_URL", "graph.example.org:notaport", "not a valid URL"),
        ("GRAPHKIT_CLOUD", "mars", "unknown cloud 'mars'"),
        ("AZURE_TENANT_ID", "not a tenant", "neither a GUID nor a domain"),
        ("AZURE_TENANT_ID", "contoso", "neither a GUID nor a domain"),
        ("AZURE_CLIENT_ID", "reports-app", "client id 'reports-app' is not a GUID"),
    ],
)
def test_bad_values_are_one_line_errors_naming_their_source(
    home: Path, var: str, value: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        resolve_settings(env=_env(home, **{var: value}))
    text = str(err.value)
    assert "\n" not in text
    assert f"env:{var}" in text


def test_clouds_set_both_hosts(home: Path) -> None:
    s = resolve_settings(overrides={"cloud": "usgovdod"}, env=_env(home))
    assert s.authority_host == "https://login.microsoftonline.us"
    assert s.graph_url == "https://dod-graph.microsoft.us"
    assert s.scope == "https://dod-graph.microsoft.us/.default"
    s = resolve_settings(overrides={"cloud": "AzureChinaCloud"}, env=_env(home))
    assert s.cloud == "china" and s.graph_url == "https://microsoftgraph.chinacloudapi.cn"
    s = resolve_settings(env=_env(home))
    assert (s.cloud, s.authority_host, s.graph_url) == (
        "global",
        "https://login.microsoftonline.com",
        "https://graph.microsoft.com",
    )


def test_azure_authority_host_of_a_cloud_implies_its_graph(home: Path) -> None:
    s = resolve_settings(env=_env(home, AZURE_AUTHORITY_HOST="login.microsoftonline.us"))
    assert s.cloud == "usgov" and s.graph_url == "https://graph.microsoft.us"
    assert "derived from authority_host" in s.sources["cloud"]


def test_cloud_flag_beats_authority_host_from_env(home: Path) -> None:
    env = _env(home, AZURE_AUTHORITY_HOST="https://127.0.0.1:9")
    s = resolve_settings(overrides={"cloud": "china"}, env=env)
    assert s.authority_host == "https://login.chinacloudapi.cn"
    # ... but explicit hosts at the same level or above win over the cloud's.
    s = resolve_settings(
        overrides={"cloud": "china", "authority_host": "https://127.0.0.1:9"}, env=env
    )
    assert s.authority_host == "https://127.0.0.1:9"
    assert s.graph_url == "https://microsoftgraph.chinacloudapi.cn"


def test_passphrase_sources(home: Path, tmp_path: Path) -> None:
    pf = tmp_path / "pass.txt"
    pf.write_bytes(b"from-file\nignored second line\n")
    env = _env(home, GRAPHKIT_KEY_PASSPHRASE="gk", AZURE_CLIENT_CERTIFICATE_PASSWORD="az")
    s = resolve_settings(env=env)
    assert s.passphrase == b"az"
    s = resolve_settings(env=_env(home, GRAPHKIT_KEY_PASSPHRASE="gk"))
    assert s.passphrase == b"gk" and s.sources["passphrase"] == "env:GRAPHKIT_KEY_PASSPHRASE"
    s = resolve_settings(overrides={"passphrase_file": str(pf)}, env=env)
    assert s.passphrase == b"from-file" and s.sources["passphrase"] == "flag"
    save_profile("w", {"passphrase_file": str(pf)})
    assert resolve_settings(env=env).passphrase == b"az"  # env beats profile
    s = resolve_settings(env=_env(home))
    assert s.passphrase == b"from-file" and s.sources["passphrase"].startswith("profile:w")
    pf.unlink()
    with pytest.raises(ConfigError, match="passphrase file"):
        resolve_settings(env=_env(home))


def test_describe_never_shows_the_passphrase(home: Path) -> None:
    s = resolve_settings(env=_env(home, AZURE_CLIENT_CERTIFICATE_PASSWORD="s3cret-pw"))
    assert "s3cret-pw" not in repr(s)
    assert "s3cret-pw" not in json.dumps(s.describe())
    assert ("passphrase", "(set)", "env:AZURE_CLIENT_CERTIFICATE_PASSWORD") in s.describe()


# ------------------------------------------------------------------ validation


def _flags(ident_forms: dict[str, object], **more: object) -> dict[str, object]:
    return {"tenant": TENANT, "client_id": CLIENT, **ident_forms, **more}


@pytest.mark.parametrize("form", ["key+crt", "combined", "pfx", "encrypted-pem"])
def test_every_key_form_validates(home: Path, ident: Identity, form: str) -> None:
    s = resolve_settings(overrides=_flags(ident.forms()[form]), env=_env(home))
    validate(s)
    cert = certificates.load(s)
    assert cert.sha1 == ident.sha1
    assert "BEGIN CERTIFICATE" in cert.certificate_pem
    assert "ENCRYPTED" not in cert.private_key_pem and "PRIVATE KEY" in cert.private_key_pem
    assert "PRIVATE" not in repr(cert)
    assert certificates.load(s) is cert  # memoised


def test_encrypted_combined_pem_needs_the_passphrase(home: Path, ident: Identity) -> None:
    flags = _flags({"certificate": str(ident.enc_combined)})
    s = resolve_settings(overrides=flags, env=_env(home))
    with pytest.raises(CryptoError, match="encrypted") as err:
        validate(s)
    assert "AZURE_CLIENT_CERTIFICATE_PASSWORD" in str(err.value)
    s = resolve_settings(overrides={**flags, "passphrase": b"wrong"}, env=_env(home))
    with pytest.raises(CryptoError, match="wrong passphrase"):
        validate(s)
    s = resolve_settings(overrides={**flags, "passphrase": PASSPHRASE}, env=_env(home))
    validate(s)


def test_missing_settings(home: Path, ident: Identity) -> None:
    with pytest.raises(ConfigError, match="no tenant configured"):
        validate(resolve_settings(env=_env(home)))
    s = resolve_settings(overrides={"tenant": TENANT}, env=_env(home))
    with pytest.raises(ConfigError, match="no client_id configured"):
        validate(s)
    s = resolve_settings(overrides={"tenant": TENANT, "client_id": CLIENT}, env=_env(home))
    with pytest.raises(ConfigError, match="no certificate configured"):
        validate(s)


def test_certificate_missing_names_source(home: Path, tmp_path: Path) -> None:
    env = _env(home, AZURE_CLIENT_CERTIFICATE_PATH=str(tmp_path / "gone.pem"))
    s = resolve_settings(overrides={"tenant": TENANT, "client_id": CLIENT}, env=env)
    with pytest.raises(ConfigError, match=r"gone.pem.*env:AZURE_CLIENT_CERTIFICATE_PATH.*exist"):
        validate(s)


def test_certificate_without_key(home: Path, ident: Identity) -> None:
    s = resolve_settings(overrides=_flags({"certificate": str(ident.crt)}), env=_env(home))
    with pytest.raises(ConfigError, match=r"holds no private key.*--private-key"):
        validate(s)


def test_certificate_not_matching_key(home: Path, ident: Identity, tmp_path: Path) -> None:
    other = make_identity(tmp_path / "other", key_index=1)
    flags = _flags({"certificate": str(ident.crt), "private_key": str(other.key_pem)})
    s = resolve_settings(overrides=flags, env=_env(home))
    with pytest.raises(ConfigError, match=f"does not match certificate .*{ident.sha1}"):
        validate(s)


def test_expired_and_not_yet_valid_certificates(home: Path, tmp_path: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    old = make_identity(tmp_path / "old", days=10, now=past)
    s = resolve_settings(overrides=_flags({"certificate": str(old.combined)}), env=_env(home))
    with pytest.raises(ConfigError, match="expired on") as err:
        validate(s)
    assert "graphkit selfsign" in str(err.value)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    new = make_identity(tmp_path / "new", days=10, now=future)
    s = resolve_settings(overrides=_flags({"certificate": str(new.combined)}), env=_env(home))
    with pytest.raises(ConfigError, match="not valid until"):
        validate(s)


def test_short_rsa_key_is_refused(home: Path, tmp_path: Path) -> None:
    weak = make_identity(tmp_path / "weak", bits=1024)
    s = resolve_settings(overrides=_flags({"certificate": str(weak.combined)}), env=_env(home))
    with pytest.raises(CryptoError, match="1024"):
        validate(s)


def test_expiry_warning_within_30_days(home: Path, tmp_path: Path, ident: Identity) -> None:
    soon = make_identity(
        tmp_path / "soon", days=30, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=22)
    )
    s = resolve_settings(overrides=_flags({"certificate": str(soon.combined)}), env=_env(home))
    warning = certificates.expiry_warning(certificates.load(s))
    assert warning is not None
    assert "expires in 7 days" in warning  # 8 days less the test's minutes, rounded down
    assert soon.sha1 in warning
    s = resolve_settings(overrides=_flags({"certificate": str(ident.combined)}), env=_env(home))
    assert certificates.expiry_warning(certificates.load(s)) is None


def test_missing_ca_bundle(home: Path, ident: Identity, tmp_path: Path) -> None:
    flags = _flags({"certificate": str(ident.combined)}, ca_bundle=str(tmp_path / "ca.pem"))
    s = resolve_settings(overrides=flags, env=_env(home))
    with pytest.raises(ConfigError, match=r"CA bundle .*ca.pem.*does not exist"):
        validate(s)


# ------------------------------------------------------------------ the CLI


runner = CliRunner()


def test_cli_set_list_use_show(home: Path, ident: Identity) -> None:
    r = runner.invoke(
        app,
        [
            "config", "set", "work",
            "--tenant", TENANT,
            "--client-id", CLIENT,
            "--certificate", str(ident.pfx),
            "--authority-host", "127.0.0.1:8443",
            "--graph-url", "https://127.0.0.1:8443",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "Created profile 'work'" in r.stderr
    r = runner.invoke(app, ["config", "set", "lab", "--tenant", "lab.example.com"])
    assert r.exit_code == 0, r.stderr

    r = runner.invoke(app, ["config", "list"])
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "PROFILE",
        "TENANT",
        "CLIENT",
        "ID",
        "CLOUD/AUTHORITY",
        "CERTIFICATE",
        "THUMBPRINT",
        "(SHA-1)",
        "DAYS",
        "LEFT",
    ]
    assert any(line.startswith("* work") for line in lines)
    assert any(line.startswith("  lab") for line in lines)

    r = runner.invoke(app, ["config", "use", "lab"])
    assert r.exit_code == 0
    listed = json.loads(runner.invoke(app, ["config", "list", "--json"]).stdout)
    assert listed["default_profile"] == "lab"
    assert listed["profiles"]["work"]["certificate"] == str(ident.pfx)
    assert listed["profiles"]["lab"]["default"] is True

    r = runner.invoke(app, ["config", "show", "--profile", "work", "--json"])
    assert r.exit_code == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["settings"]["tenant"] == {
        "value": TENANT,
        "source": f"profile:work ({home / 'config.toml'})",
    }
    assert shown["settings"]["profile"]["source"] == "flag"
    assert shown["settings"]["authority_host"]["value"] == "https://127.0.0.1:8443"
    # The PFX needs a passphrase that is not configured: show says so, does not fail.
    assert shown["certificate"]["status"] == "error"
    assert "passphrase" in shown["certificate"]["error"]
    assert shown["state_dir"] == str(home)


def test_cli_show_human_with_env_and_flag(
    home: Path, ident: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(ident.pfx))
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSPHRASE.decode())
    r = runner.invoke(app, ["config", "show", "--client-id", CLIENT])
    assert r.exit_code == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line.strip()}
    assert rows["tenant"][1:] == [TENANT, "env:AZURE_TENANT_ID"]
    assert rows["client_id"][1:] == [CLIENT, "flag"]
    assert rows["passphrase"][1:] == ["(set)", "env:AZURE_CLIENT_CERTIFICATE_PASSWORD"]
    assert PASSPHRASE.decode() not in r.stdout + r.stderr
    assert f"SHA-1 {ident.sha1}" in r.stdout


def test_cli_errors(home: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["config", "use", "nope"])
    assert r.exit_code == ExitCode.CONFIG
    assert r.stderr.count("\n") == 1 and "no profile named 'nope'" in r.stderr
    r = runner.invoke(app, ["config", "set", "x", "--certificate", str(tmp_path / "no.pem")])
    assert r.exit_code == ExitCode.INPUT and "does not exist" in r.stderr
    r = runner.invoke(app, ["config", "set", "x", "--cloud", "mars"])
    assert r.exit_code == ExitCode.CONFIG and "unknown cloud 'mars'" in r.stderr
    r = runner.invoke(app, ["config", "set", "x"])
    assert r.exit_code == ExitCode.USAGE and "nothing to set" in r.stderr
    r = runner.invoke(app, ["config", "show", "--tenant", "bad tenant!"])
    assert r.exit_code == ExitCode.CONFIG
    assert "neither a GUID nor a domain name (set by flag)" in r.stderr
    assert not config_path().exists()


def test_cli_delete_and_unset(home: Path) -> None:
    assert (
        runner.invoke(
            app, ["config", "set", "a", "--tenant", TENANT, "--client-id", CLIENT]
        ).exit_code
        == 0
    )
    r = runner.invoke(app, ["config", "set", "a", "--unset", "client-id"])
    assert r.exit_code == 0, r.stderr
    assert read_config()["profiles"]["a"] == {"tenant": TENANT}
    r = runner.invoke(app, ["config", "delete", "a"])
    assert r.exit_code == 0
    data = read_config()
    assert not data.get("profiles") and "default_profile" not in data


def test_config_file_and_home_are_private(home: Path) -> None:
    assert runner.invoke(app, ["config", "set", "a", "--tenant", TENANT]).exit_code == 0
    assert stat.S_IMODE(os.stat(config_path()).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700


def test_corrupt_key_block_is_explained(home: Path, ident: Identity, tmp_path: Path) -> None:
    text = ident.combined.read_text()
    lines = text.splitlines(keepends=True)
    lines[3] = "!!!!" + lines[3][4:]  # damage the key's base64
    bad = tmp_path / "bad.pem"
    bad.write_text("".join(lines))
    s = resolve_settings(overrides=_flags({"certificate": str(bad)}), env=_env(home))
    with pytest.raises(CryptoError, match="not a readable private key"):
        validate(s)


def test_object_id_is_set_checked_and_shown(home: Path) -> None:
    object_id = "4f0e9a51-0b4c-4d2e-8f40-8d2f4c713b6e"
    r = runner.invoke(
        app, ["config", "set", "work", "--client-id", CLIENT, "--object-id", object_id.upper()]
    )
    assert r.exit_code == 0, r.output
    assert read_config(config_path())["profiles"]["work"]["object_id"].lower() == object_id
    assert resolve_settings(profile="work").object_id == object_id
    shown = runner.invoke(app, ["config", "show", "--profile", "work", "-o", "json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["settings"]["object_id"]["value"] == object_id
    bad = runner.invoke(app, ["config", "set", "work", "--object-id", "not-a-guid"])
    assert bad.exit_code == ExitCode.CONFIG
    assert "object id 'not-a-guid' is not a GUID" in bad.stderr
    unset = runner.invoke(app, ["config", "set", "work", "--unset", "object_id"])
    assert unset.exit_code == 0, unset.output
    assert "object_id" not in read_config(config_path())["profiles"]["work"]


def test_a_deeply_nested_config_runs_no_finaliser_at_the_bottom_of_the_stack(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refusing a config nested thousands deep must not print tracebacks. A garbage
    collection at the parser's deepest would run other objects' finalisers with no
    stack left: they fail, and Python prints "Exception ignored ... RecursionError" on
    stderr (seen once in five full runs, where earlier tests leave such garbage)."""
    import gc
    import sys

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text("a = " + "{b=" * 5000 + "1" + "}" * 5000 + "\n")
    config_path().chmod(0o600)
    deepest = [0]

    def collecting(phase: str, info: dict[str, Any]) -> None:
        depth, frame = 0, sys._getframe()
        while frame is not None:
            depth, frame = depth + 1, frame.f_back
        deepest[0] = max(deepest[0], depth)

    threshold = gc.get_threshold()
    gc.set_threshold(1)  # a collection at (nearly) every allocation, the deepest included
    gc.callbacks.append(collecting)
    try:
        with pytest.raises(ConfigError, match="nest too deeply"):
            read_config()
    finally:
        gc.callbacks.remove(collecting)
        gc.set_threshold(*threshold)
    assert deepest[0] < 100, f"a garbage collection ran {deepest[0]} frames deep"
