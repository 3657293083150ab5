"""The warm path: a cached token found without msal, a certificate checked without
cryptography, and nothing else changed.

- :func:`graphkit.token_cache.find_cached_token` is compared with msal's own
  ``acquire_token_for_client`` on the same caches (hits, misses and near misses).
- CertificateCredential serves from the persisted cache without building msal's
  application, falls back to msal whenever that is not certain, and ``force_refresh``
  still reaches the token endpoint.
- ``certificates.check`` reuses a full check only for byte-identical files,
  never for a passphrase, and every failure a full check reports is still reported.
- Real processes: a warm ``graphkit token`` makes no request and imports neither msal
  nor cryptography; a warm ``graphkit query`` makes exactly one Graph request.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import (
    PASSPHRASE,
    Identity,
    clean_env,
    emu_settings,
    emulator_env,
    make_identity,
    token_cache_file,
)
from typer.testing import CliRunner

from graphkit import certificates, crypto, token_cache, tokens
from graphkit.cli import app as cli_app
from graphkit.errors import ConfigError, CryptoError, ExitCode
from graphkit.settings import Settings, validate

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(tokens, "_notice_handler", None)  # CLI tests leave theirs set
    return clean_env(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def ident(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return make_identity(tmp_path_factory.mktemp("ident"))


def _kinds(emu: Any) -> list[str]:
    return [r["kind"] for r in emu.requests()]


# ------------------------------------------------- find_cached_token against msal


class MsalOracle:
    """msal's own ConfidentialClientApplication on the emulator, to ask what it serves."""

    def __init__(self, emu: Any, ident: Identity) -> None:
        import msal

        self.emu = emu
        self.scopes = [f"{emu.graph_url}/.default"]
        cert = certificates.load(
            Settings(
                tenant=emu.default_tenant.id,
                client_id=emu.default_app.client_id,
                certificate=ident.combined,
            )
        )
        self.app = msal.ConfidentialClientApplication(
            emu.default_app.client_id,
            authority=f"{emu.authority_host}/{emu.default_tenant.id}",
            client_credential={
                "private_key": cert.private_key_pem,
                "public_certificate": cert.certificate_pem,
            },
            token_cache=msal.SerializableTokenCache(),
            http_client=tokens._make_session(emu.ca_bundle, (10.0, 30.0)),
            instance_discovery=False,
        )
        first = self.app.acquire_token_for_client(scopes=self.scopes)
        assert first.get("token_source") == "identity_provider", first
        self.base: dict[str, Any] = json.loads(self.app.token_cache.serialize())
        ((self.key, _entry),) = self.base["AccessToken"].items()

    def serve(self, cache: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(find_cached_token's entry, msal's answer) for the same cache and moment."""
        self.app.token_cache.deserialize(json.dumps(cache))
        self.emu.clear_requests()
        now = time.time()
        fast = token_cache.find_cached_token(
            cache,
            client_id=self.app.client_id,
            environment=self.app.authority.instance,
            realm=self.app.authority.tenant,
            scopes=self.scopes,
            now=now,
        )
        result = self.app.acquire_token_for_client(scopes=self.scopes)
        assert "access_token" in result, result
        return fast, result


@pytest.fixture(scope="module")
def oracle(ident: Identity) -> Iterator[MsalOracle]:
    from graphkit.emulator import Emulator

    with Emulator(users=5, seed=0) as emu:
        emu.upload_certificate(emu.default_app.client_id, ident.cert)
        yield MsalOracle(emu, ident)


OTHER_TENANT = "0c5a7e0d-9f0b-4a57-a3a4-3f3e1f7b8c11"
OTHER_CLIENT = "8d2f4c71-3b6e-4f0e-9a51-0b4c1d2e3f40"


def _rekey(entry: dict[str, Any]) -> str:
    """The key msal itself files an entry under (TokenCache.key_makers)."""
    parts = [
        entry.get("home_account_id") or "",
        entry.get("environment") or "",
        "atext" if entry.get("ext_cache_key") else "AccessToken",
        entry.get("client_id") or "",
        entry.get("realm") or "",
        entry.get("target") or "",
    ]
    if entry.get("ext_cache_key"):
        parts.append(entry["ext_cache_key"])
    return "-".join(parts).lower()


def _refile(cache: dict[str, Any], key: str, changes: dict[str, Any]) -> None:
    """Change the entry and file it under the key msal would have used."""
    entry = cache["AccessToken"].pop(key)
    entry.update(changes)
    cache["AccessToken"][_rekey(entry)] = entry


def _keep_key(cache: dict[str, Any], key: str, changes: dict[str, Any]) -> None:
    """Change the entry but leave it under its original key."""
    cache["AccessToken"][key].update(changes)


def _add_other(cache: dict[str, Any], entry: dict[str, Any], changes: dict[str, Any]) -> None:
    """Add a changed copy under an unrelated key: only msal's scan can find it."""
    other = {**copy.deepcopy(entry), **changes}
    cache["AccessToken"]["some-unrelated-key"] = other


def _now_plus(seconds: int) -> str:
    return str(int(time.time()) + seconds)


def _apply(case: str, cache: dict[str, Any], key: str, scope: str) -> None:
    entry = copy.deepcopy(cache["AccessToken"][key])
    wider = " ".join(sorted([scope, "https://a.example/.default"]))
    if case == "unchanged":
        pass
    elif case == "empty cache":
        cache["AccessToken"] = {}
    elif case == "other tenant (realm)":
        _refile(cache, key, {"realm": OTHER_TENANT})
    elif case == "other client":
        _refile(cache, key, {"client_id": OTHER_CLIENT})
    elif case == "other environment":
        _refile(cache, key, {"environment": "login.example.org"})
    elif case == "other scope":
        _refile(cache, key, {"target": "https://graph.example.org/.default"})
    elif case == "wider target":
        _refile(cache, key, {"target": wider})
    elif case == "expired":
        _refile(cache, key, {"expires_on": _now_plus(-30)})
    elif case == "under msal's 5-minute margin":
        _refile(cache, key, {"expires_on": _now_plus(200)})
    elif case == "just over the margin":
        _refile(cache, key, {"expires_on": _now_plus(420)})
    elif case == "refresh_on passed":
        _refile(cache, key, {"refresh_on": _now_plus(-60)})
    elif case == "refresh_on ahead":
        _refile(cache, key, {"refresh_on": _now_plus(600)})
    elif case == "a user's token":
        _refile(cache, key, {"home_account_id": "uid.utid"})
    elif case == "ext_cache_key under its own key":
        _refile(cache, key, {"ext_cache_key": "abc"})
    elif case == "ext_cache_key under the plain key":
        _keep_key(cache, key, {"ext_cache_key": "abc"})
    elif case == "under an unrelated key":
        cache["AccessToken"] = {}
        _add_other(cache, entry, {})
    elif case == "exact entry too old, another fresh":
        _keep_key(cache, key, {"expires_on": _now_plus(100)})
        _add_other(cache, entry, {})
    elif case == "exact entry expired, another with a wider target":
        _keep_key(cache, key, {"expires_on": _now_plus(-5)})
        _add_other(cache, entry, {"target": wider})
    elif case == "only another tenant's, under an unrelated key":
        cache["AccessToken"] = {}
        _add_other(cache, entry, {"realm": OTHER_TENANT})
    elif case == "only an expired one, under an unrelated key":
        cache["AccessToken"] = {}
        _add_other(cache, entry, {"expires_on": _now_plus(-5)})
    else:  # pragma: no cover
        raise AssertionError(case)


# (case, msal serves it from the cache)
CASES = [
    ("unchanged", True),
    ("empty cache", False),
    ("other tenant (realm)", False),
    ("other client", False),
    ("other environment", False),
    ("other scope", False),
    ("wider target", True),
    ("expired", False),
    ("under msal's 5-minute margin", False),
    ("just over the margin", True),
    ("refresh_on passed", False),
    ("refresh_on ahead", True),
    ("a user's token", False),
    ("ext_cache_key under its own key", False),
    ("ext_cache_key under the plain key", True),
    ("under an unrelated key", True),
    ("exact entry too old, another fresh", True),
    ("exact entry expired, another with a wider target", True),
    ("only another tenant's, under an unrelated key", False),
    ("only an expired one, under an unrelated key", False),
]


@pytest.mark.parametrize(("case", "hit"), CASES, ids=[c[0] for c in CASES])
def test_find_cached_token_serves_what_msal_serves(
    oracle: MsalOracle, case: str, hit: bool
) -> None:
    cache = copy.deepcopy(oracle.base)
    _apply(case, cache, oracle.key, oracle.scopes[0])
    fast, result = oracle.serve(cache)
    from_cache = result.get("token_source") == "cache"
    # The expectation is msal's behaviour, written down; the comparison is the test.
    assert from_cache is hit, f"{case}: msal {'hit' if from_cache else 'missed'}"
    if from_cache:
        assert fast is not None, case
        assert fast["secret"] == result["access_token"]
        assert oracle.emu.requests() == []
    else:
        assert fast is None, case
        assert "token" in _kinds(oracle.emu)


def test_find_cached_token_tolerates_garbage() -> None:
    kw: dict[str, Any] = {
        "client_id": OTHER_CLIENT,
        "environment": "login.microsoftonline.com",
        "realm": OTHER_TENANT,
        "scopes": ["https://graph.microsoft.com/.default"],
    }
    for cache in (
        {},
        {"AccessToken": []},
        {"AccessToken": {"k": "not an entry"}},
        {"AccessToken": {"k": {"expires_on": "soon"}}},
        {"AccessToken": {"k": {"client_id": OTHER_CLIENT}}},
    ):
        assert token_cache.find_cached_token(cache, **kw) is None


# ------------------------------------------------------- the credential's warm path


def _warm(emu: Any, ident: Identity, **kw: Any) -> tokens.AccessToken:
    """A first token through msal, persisted; the request log cleared after it."""
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    credential = tokens.CertificateCredential(emu_settings(emu, ident, **kw))
    token = credential.get_token()
    if credential.cache_encrypted:
        pytest.skip("this machine has an encrypted token store: the warm path is not used")
    emu.clear_requests()
    return token


@pytest.mark.parametrize("tenant", ["id", "domain"])
def test_warm_credential_serves_the_cached_token_without_msal(
    graphkit_emulator: Any, ident: Identity, home: Path, tenant: str
) -> None:
    emu = graphkit_emulator
    kw = {"tenant": emu.default_tenant.domain} if tenant == "domain" else {}
    first = _warm(emu, ident, **kw)
    credential = tokens.CertificateCredential(emu_settings(emu, ident, **kw))
    token = credential.get_token()
    assert credential._app is None  # msal's application was never built
    assert token.from_cache is True and token.token == first.token
    assert token.expires_on == first.expires_on and token.claims == first.claims
    assert credential.cache_encrypted is False
    assert emu.requests() == []
    # msal, asked from the same files, serves the very same token.
    through_msal = tokens.CertificateCredential(emu_settings(emu, ident, **kw))
    msal_app = through_msal._build_app()
    answer = msal_app.acquire_token_for_client(scopes=[f"{emu.graph_url}/.default"])
    assert answer["token_source"] == "cache" and answer["access_token"] == token.token
    assert emu.requests() == []
    index = json.loads((home / token_cache.AUTHORITY_INDEX_FILE).read_text())
    assert index["authorities"][through_msal.settings.authority] == {
        "environment": msal_app.authority.instance,
        "realm": msal_app.authority.tenant,
    }
    assert msal_app.authority.tenant == emu.default_tenant.id  # not the domain
    assert stat.S_IMODE((home / token_cache.AUTHORITY_INDEX_FILE).stat().st_mode) == 0o600


def test_force_refresh_still_goes_to_the_token_endpoint(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    first = _warm(emu, ident)
    emu.advance(5)  # the next token differs (iat)
    credential = tokens.CertificateCredential(emu_settings(emu, ident))
    fresh = credential.get_token(force_refresh=True)
    assert fresh.from_cache is False and fresh.token != first.token
    assert _kinds(emu) == ["token"]
    emu.clear_requests()
    again = tokens.CertificateCredential(emu_settings(emu, ident))
    assert again.get_token().token == fresh.token  # the refreshed token was saved
    assert again._app is None and emu.requests() == []


def test_other_client_or_scope_is_not_served_from_another_entry(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    first = _warm(emu, ident)
    other = emu.create_app(emu.default_tenant, "second app")
    emu.upload_certificate(other.client_id, ident.cert)
    credential = tokens.CertificateCredential(emu_settings(emu, ident, client_id=other.client_id))
    token = credential.get_token()
    assert token.from_cache is False and token.token != first.token
    assert token.claims["appid"] == other.client_id
    assert _kinds(emu) == ["token"]  # discovery came from the persisted http cache


@pytest.mark.parametrize(
    "problem", ["no index", "index others could write", "encrypted store", "expired", "lifetime"]
)
def test_msal_decides_whenever_the_warm_path_is_unsure(
    graphkit_emulator: Any, ident: Identity, home: Path, problem: str
) -> None:
    emu = graphkit_emulator
    first = _warm(emu, ident)
    index_file = home / token_cache.AUTHORITY_INDEX_FILE
    cache_file = token_cache_file(home)
    if problem == "no index":
        index_file.unlink()
    elif problem == "index others could write":
        index_file.chmod(0o666)
    elif problem == "encrypted store":
        index = json.loads(index_file.read_text())
        index["token_cache"] = "encrypted"
        index_file.write_text(json.dumps(index))
    else:
        cache = json.loads(cache_file.read_text())
        for entry in cache["AccessToken"].values():
            left = -10 if problem == "expired" else 120
            entry["expires_on"] = str(int(time.time()) + left)
        cache_file.write_text(json.dumps(cache))
    credential = tokens.CertificateCredential(emu_settings(emu, ident))
    token = credential.get_token()
    assert credential._app is not None  # msal was asked
    if problem in ("no index", "index others could write", "encrypted store"):
        assert token.from_cache is True and token.token == first.token
        assert emu.requests() == []
    else:
        assert token.from_cache is False
        assert _kinds(emu) == ["token"]
    if problem in ("no index", "index others could write"):
        # Written again by msal's path, privately.
        assert stat.S_IMODE(index_file.stat().st_mode) == 0o600


def test_plaintext_notice_is_still_shown_once_on_the_warm_path(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    _warm(emu, ident)  # made without on_notice: the notice is still due
    notices: list[str] = []
    credential = tokens.CertificateCredential(emu_settings(emu, ident), on_notice=notices.append)
    credential.get_token()
    tokens.CertificateCredential(emu_settings(emu, ident), on_notice=notices.append).get_token()
    assert credential._app is None
    assert len(notices) == 1 and "0600" in notices[0]


# -------------------------------------------------------------- certificate checks


def _count_full_loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record each time a certificate file is really parsed."""
    loads: list[Path] = []
    real = certificates._load

    def counting(settings: Settings, **kw: Any) -> Any:
        loads.append(Path(str(settings.certificate)))
        return real(settings, **kw)

    monkeypatch.setattr(certificates, "_load", counting)
    return loads


def _fresh(settings: Settings) -> Settings:
    """The same settings, with nothing loaded in this process yet (as in a new one)."""
    certificates._LOADED.clear()
    return Settings(
        **{k: getattr(settings, k) for k in ("tenant", "client_id", "certificate")},
        private_key=settings.private_key,
        passphrase=settings.passphrase,
    )


def _base(ident: Identity, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "tenant": OTHER_TENANT,
        "client_id": OTHER_CLIENT,
        "certificate": ident.combined,
    }
    values.update(kw)
    return Settings(**values)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_the_documented_minimum_key_size_holds_on_the_fast_path_too(tmp_path: Path) -> None:
    # README: "RSA, at least 2048 bits". Just under it is refused by the full check and
    # again when a check record exists (the fast path has its own copy of the limit);
    # exactly at it is accepted both times.
    from _readme import readme_text

    found = re.search(r"RSA, at least (\d+) bits", readme_text())
    assert found
    minimum = int(found.group(1))
    short = make_identity(tmp_path / "short", bits=minimum - 8, key_index=7)
    state = tmp_path / "state"
    for _ in range(2):
        with pytest.raises(CryptoError, match=str(minimum)):
            validate(_fresh(_base(short)), cache_dir=state)
    enough = make_identity(tmp_path / "enough", bits=minimum, key_index=7)
    for _ in range(2):
        validate(_fresh(_base(enough)), cache_dir=state)


@pytest.mark.parametrize("form", ["combined", "key+crt", "pfx without passphrase"])
def test_a_full_check_is_reused_for_identical_files(
    ident: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    state = tmp_path / "state"
    if form == "key+crt":
        settings = _base(ident, certificate=ident.crt, private_key=ident.key_pem)
    elif form == "pfx without passphrase":
        pfx = tmp_path / "plain.pfx"
        pfx.write_bytes(crypto.dump_pfx(ident.key, ident.cert, None))
        settings = _base(ident, certificate=pfx)
    else:
        settings = _base(ident)
    loads = _count_full_loads(monkeypatch)
    validate(_fresh(settings), cache_dir=state)
    assert len(loads) == 1
    assert stat.S_IMODE((state / certificates.CERTIFICATE_CHECKS_FILE).stat().st_mode) == 0o600
    fresh = _fresh(settings)
    validate(fresh, cache_dir=state)
    facts = certificates.check(fresh, cache_dir=state)
    assert len(loads) == 1  # nothing parsed the second time
    assert isinstance(facts, certificates.CertificateFacts)
    full = certificates.load(_fresh(settings))
    assert facts.sha1 == full.sha1 == ident.sha1
    assert facts.not_after == full.not_after and facts.not_before == full.not_before
    assert facts.key_bits == full.key_bits and facts.holds_key == full.holds_key
    assert facts.path == settings.certificate
    # Nothing secret is recorded.
    text = (state / certificates.CERTIFICATE_CHECKS_FILE).read_text()
    assert "PRIVATE" not in text and "BEGIN" not in text


def test_changed_files_are_checked_again(
    ident: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    work = tmp_path / "files"
    work.mkdir()
    crt, key = work / "app.crt", work / "app.key"
    crt.write_bytes(ident.crt.read_bytes())
    key.write_bytes(ident.key_pem.read_bytes())
    settings = _base(ident, certificate=crt, private_key=key)
    validate(_fresh(settings), cache_dir=state)
    # A certificate that does not match the key, with the key unchanged.
    other = make_identity(tmp_path / "other", key_index=3)
    crt.write_bytes(other.crt.read_bytes())
    with pytest.raises(ConfigError, match="does not match certificate"):
        validate(_fresh(settings), cache_dir=state)
    # The right certificate again, but another key file.
    crt.write_bytes(ident.crt.read_bytes())
    key.write_bytes(other.key_pem.read_bytes())
    with pytest.raises(ConfigError, match="does not match certificate"):
        validate(_fresh(settings), cache_dir=state)
    # An expired certificate for the same key.
    key.write_bytes(ident.key_pem.read_bytes())
    import datetime as dt

    old = crypto.self_sign(
        ident.key,
        crypto.parse_subject(cn="old"),
        days=2,
        now=dt.datetime.now(dt.UTC) - dt.timedelta(days=10),
    )
    crt.write_bytes(crypto.dump_certificate(old))
    with pytest.raises(ConfigError, match="expired on"):
        validate(_fresh(settings), cache_dir=state)
    crt.unlink()
    with pytest.raises(ConfigError, match="cannot be read"):
        validate(_fresh(settings), cache_dir=state)


def test_recorded_dates_are_checked_against_the_clock(
    ident: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    state = tmp_path / "state"
    settings = _base(ident)
    validate(_fresh(settings), cache_dir=state)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)  # past the 365-day validity
    monkeypatch.setattr(certificates, "_now", lambda: later)
    with pytest.raises(ConfigError, match="expired on"):
        validate(_fresh(settings), cache_dir=state)


def test_a_passphrase_always_means_a_full_check(
    ident: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    loads = _count_full_loads(monkeypatch)
    good = _base(ident, certificate=ident.pfx, passphrase=PASSPHRASE)
    validate(_fresh(good), cache_dir=state)
    validate(_fresh(good), cache_dir=state)
    assert len(loads) == 2
    with pytest.raises(CryptoError, match="passphrase"):
        validate(_fresh(_base(ident, certificate=ident.pfx, passphrase=b"wrong")), cache_dir=state)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_short_key_is_refused_every_time(tmp_path: Path) -> None:
    weak = make_identity(tmp_path / "weak", bits=1024)
    state = tmp_path / "state"
    for _ in range(2):
        with pytest.raises(CryptoError, match="2048"):
            validate(_base(weak), cache_dir=state)


def test_a_record_others_could_write_is_ignored(
    ident: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    validate(_fresh(_base(ident)), cache_dir=state)
    checks = state / certificates.CERTIFICATE_CHECKS_FILE
    loads = _count_full_loads(monkeypatch)
    checks.chmod(0o666)
    validate(_fresh(_base(ident)), cache_dir=state)
    assert len(loads) == 1
    checks.write_text("{not json")
    checks.chmod(0o600)
    validate(_fresh(_base(ident)), cache_dir=state)
    assert len(loads) == 2
    validate(_fresh(_base(ident)), cache_dir=state)  # the record was rewritten
    assert len(loads) == 2


def test_validate_without_cache_dir_is_a_full_check_and_writes_nothing(
    ident: Identity, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = _count_full_loads(monkeypatch)
    validate(_fresh(_base(ident)))
    validate(_fresh(_base(ident)))
    assert len(loads) == 2 and not home.exists()


def test_credential_warns_of_expiry_from_a_reused_check(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8 of 30 days left: the last third (a fresh short certificate does not warn).
    soon = make_identity(
        tmp_path / "soon",
        days=30,
        now=dt.datetime.now(dt.UTC) - dt.timedelta(days=22),
        key_index=4,
    )
    tokens.CertificateCredential(_base(soon))  # records the check
    loads = _count_full_loads(monkeypatch)
    notices: list[str] = []
    tokens.CertificateCredential(_base(soon), on_notice=notices.append)
    assert loads == []
    assert len(notices) == 1 and "expires in 7 days" in notices[0] and soon.sha1 in notices[0]


# ------------------------------------------------------------ real processes

_PROBE = """
import sys
from graphkit.cli import main
try:
    main()
finally:
    heavy = {"msal", "msal_extensions", "cryptography"}
    heavy = sorted({m.split(".")[0] for m in sys.modules} & heavy)
    sys.stderr.write("HEAVY " + ",".join(heavy) + "\\n")
"""


def _probe(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    cmd = [sys.executable, "-c", _PROBE, *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    marker = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY ")]
    assert marker, proc.stderr
    heavy = [m for m in marker[-1][len("HEAVY ") :].split(",") if m]
    return proc, heavy


def _process_env(emu: Any, home: Path, certificate: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "GRAPHKIT_"))}
    env.update(emulator_env(emu, certificate, home), NO_COLOR="1", **extra)
    return env


def test_warm_token_process_makes_no_request_and_loads_neither_msal_nor_cryptography(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    env = _process_env(emu, home, ident.combined)
    cold, heavy = _probe(env, "token", "--json")
    assert cold.returncode == 0, cold.stderr
    assert json.loads(cold.stdout)["from_cache"] is False
    assert "msal" in heavy and "cryptography" in heavy
    if not token_cache_file(home).exists():
        pytest.skip("this machine has an encrypted token store: the warm path is not used")
    emu.clear_requests()
    warm, heavy = _probe(env, "token", "--json")
    assert warm.returncode == 0, warm.stderr
    data = json.loads(warm.stdout)
    assert data["from_cache"] is True and data["roles"] == ["User.Read.All"]
    assert emu.requests() == []
    assert heavy == []
    # --force-refresh still asks the token endpoint (msal and the key are loaded).
    emu.advance(5)
    forced, heavy = _probe(env, "token", "--json", "--force-refresh")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["from_cache"] is False
    assert _kinds(emu) == ["token"] and "msal" in heavy


def test_warm_query_process_makes_exactly_one_graph_request(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    env = _process_env(emu, home, ident.combined)
    args = ("query", "/users", "--top", "3", "--output", "json")
    cold, _ = _probe(env, *args)
    assert cold.returncode == 0, cold.stderr
    if not token_cache_file(home).exists():
        pytest.skip("this machine has an encrypted token store: the warm path is not used")
    emu.clear_requests()
    warm, heavy = _probe(env, *args)
    assert warm.returncode == 0, warm.stderr
    assert json.loads(warm.stdout) == json.loads(cold.stdout)
    assert _kinds(emu) == ["graph"]
    assert heavy == []


def test_warm_process_with_a_passphrase_skips_msal_but_checks_the_passphrase(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    good = _process_env(emu, home, ident.pfx, AZURE_CLIENT_CERTIFICATE_PASSWORD=PASSPHRASE.decode())
    cold, _ = _probe(good, "token", "--raw")
    assert cold.returncode == 0, cold.stderr
    if not token_cache_file(home).exists():
        pytest.skip("this machine has an encrypted token store: the warm path is not used")
    emu.clear_requests()
    warm, heavy = _probe(good, "token", "--raw")
    assert warm.returncode == 0 and warm.stdout == cold.stdout
    assert emu.requests() == [] and "msal" not in heavy
    bad = {**good, "AZURE_CLIENT_CERTIFICATE_PASSWORD": "not the passphrase"}
    refused, _ = _probe(bad, "token", "--raw")
    assert refused.returncode != 0 and refused.stdout == ""
    assert "passphrase" in refused.stderr and "Traceback" not in refused.stderr


def test_warm_cli_run_still_warns_of_expiry_and_refuses_a_replaced_certificate(
    graphkit_emulator: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = graphkit_emulator
    # 8 of 30 days left: the last third (a fresh short certificate does not warn).
    soon = make_identity(
        tmp_path / "soon",
        days=30,
        now=dt.datetime.now(dt.UTC) - dt.timedelta(days=22),
        key_index=2,
    )
    emu.upload_certificate(emu.default_app.client_id, soon.cert)
    pem = tmp_path / "client.pem"
    pem.write_bytes(soon.combined.read_bytes())
    pem.chmod(0o600)
    for k, v in _process_env(emu, home, pem).items():
        if k.startswith(("AZURE_", "GRAPHKIT_")):
            monkeypatch.setenv(k, v)
    for _ in range(2):  # cold, then warm
        r = runner.invoke(cli_app, ["token", "--raw"])
        assert r.exit_code == 0, r.stderr
        assert r.stderr.count("graphkit: warning: certificate") == 1
        assert "expires in 7 days" in r.stderr
    emu.clear_requests()
    # The file now holds a certificate that does not match its key: refused, even
    # though a token for the app is still cached.
    other = make_identity(tmp_path / "other", key_index=3)
    pem.write_bytes(crypto.dump_private_key(soon.key) + crypto.dump_certificate(other.cert))
    r = runner.invoke(cli_app, ["token", "--raw"])
    assert r.exit_code == ExitCode.CONFIG
    assert "does not match" in r.stderr and r.stdout == ""
    assert emu.requests() == []
