"""``graphkit doctor``: what is wrong with a configuration, and how to fix it.

:func:`run_doctor` runs each check in order and returns a :class:`Report`; nothing
here prints. Each :class:`Check` is ``pass``, ``warn`` or ``fail`` with a one-line
detail and, unless it passed, the fix. A check that cannot run because an earlier
one failed is ``skip`` (so one root cause is not reported five times).

The checks: the configuration resolves; the private key is readable and matches the
certificate; the certificate is valid (warn under 30 days left); the local clock agrees
with the identity server's ``Date`` header; OIDC discovery answers; a token is
acquired; the token carries roles; a Graph call works.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphkit.errors import GraphkitError, NetworkError

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.settings import Settings

__all__ = [
    "CHECKS",
    "CLOCK_FAIL_SECONDS",
    "CLOCK_WARN_SECONDS",
    "EXPIRY_WARN_DAYS",
    "Check",
    "Report",
    "run_doctor",
]

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
# The order checks are reported in.
CHECKS = ("configuration", "key", "certificate", "clock", "discovery", "token", "roles", "graph")
EXPIRY_WARN_DAYS = 30
# Entra accepts a client assertion up to about 5 minutes off (PROTOCOL.md §1): beyond
# that tokens are refused (AADSTS700024); a minute already deserves attention.
CLOCK_FAIL_SECONDS = 300.0
CLOCK_WARN_SECONDS = 60.0
# The Date header has one-second resolution; allow for it and for the round trip.
_DATE_SLACK = 2.0
DISCOVERY_TIMEOUT = (5.0, 15.0)

_CLOCK_FIX = (
    "set this computer's clock right: enable time sync "
    "(`timedatectl set-ntp true`, `w32tm /resync`, or System Settings > Date & Time)"
)


@dataclass
class Check:
    name: str
    status: str  # pass | warn | fail | skip
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    checks: list[Check]
    profile: str | None = None
    config_file: str | None = None

    @property
    def ok(self) -> bool:
        return not any(c.status == FAIL for c in self.checks)

    def get(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def counts(self) -> dict[str, int]:
        out = {PASS: 0, WARN: 0, FAIL: 0, SKIP: 0}
        for c in self.checks:
            out[c.status] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "profile": self.profile,
            "config_file": self.config_file,
            "summary": self.counts(),
            "checks": [asdict(c) for c in self.checks],
        }


def _fail(name: str, exc: BaseException, fix: str | None = None) -> Check:
    if isinstance(exc, GraphkitError):
        return Check(name, FAIL, exc.message, fix or exc.hint)
    # Not str(exc): an unexpected exception's text may hold a secret (a key, a token).
    return Check(name, FAIL, f"unexpected {type(exc).__name__}", fix)


def _skip(name: str, why: str) -> Check:
    return Check(name, SKIP, f"skipped: {why}")


def _fmt_delta(seconds: float) -> str:
    s = abs(round(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s / 3600:.1f} h"


# ------------------------------------------------------------------- checks


def _check_configuration(resolve: Callable[[], Settings]) -> tuple[Check, Settings | None]:
    try:
        settings = resolve()
    except GraphkitError as exc:
        return _fail("configuration", exc), None
    missing = [k for k in ("tenant", "client_id", "certificate") if getattr(settings, k) is None]
    if missing:
        where = f"profile {settings.profile!r}" if settings.profile else "any profile"
        flag = missing[0].replace("_", "-")
        return (
            Check(
                "configuration",
                FAIL,
                f"no {missing[0]} in {where} or the environment",
                f"run `graphkit init`, or give --{flag}",
            ),
            None,
        )
    if settings.ca_bundle and not Path(settings.ca_bundle).is_file():
        return (
            Check(
                "configuration",
                FAIL,
                f"CA bundle {settings.ca_bundle} (set by {settings.source('ca_bundle')}) "
                "does not exist",
                "give the PEM file of the CA that signed the servers' certificates",
            ),
            None,
        )
    overridden = sorted(
        {
            f"{k} from {v[4:]}"
            for k, v in settings.sources.items()
            if v.startswith("env:") and k in ("tenant", "client_id", "certificate")
        }
    )
    who = f"profile {settings.profile!r}" if settings.profile else "no profile"
    detail = f"{who}: tenant {settings.tenant}, app {settings.client_id}"
    if overridden:
        detail += f" ({'; '.join(overridden)})"
    return (
        Check(
            "configuration",
            PASS,
            detail,
            data={
                "profile": settings.profile,
                "tenant": settings.tenant,
                "client_id": settings.client_id,
                "authority_host": settings.authority_host,
                "graph_url": settings.graph_url,
            },
        ),
        settings,
    )


def _check_key(settings: Settings) -> tuple[Check, Any]:
    """Load the certificate and its key; return the check and the certificate (or None)."""
    from graphkit import crypto
    from graphkit.files import read_bytes

    assert settings.certificate is not None
    cert_path = Path(settings.certificate)
    try:
        bundle = crypto.load_certificate_bundle(
            read_bytes(cert_path, "certificate"),
            settings.passphrase,
            source=f"certificate {cert_path}",
        )
    except GraphkitError as exc:
        return _fail("key", exc), None
    cert = bundle.certificate
    key = bundle.key
    key_path = Path(settings.private_key) if settings.private_key else cert_path
    if settings.private_key is not None:
        try:
            key = crypto.load_private_key(
                read_bytes(key_path, "private key"), settings.passphrase, source=f"key {key_path}"
            )
        except GraphkitError as exc:
            return _fail("key", exc), cert
    if key is None:
        return (
            Check(
                "key",
                FAIL,
                f"certificate {cert_path} holds no private key and no private_key is set",
                "set private_key in the profile (or --private-key), or use a combined PEM or PFX",
            ),
            cert,
        )
    sha1 = crypto.thumbprints(cert)["sha1"]
    if not crypto.key_matches_certificate(key, cert):
        return (
            Check(
                "key",
                FAIL,
                f"private key {key_path} does not match certificate {cert_path} (SHA-1 {sha1})",
                "point private_key at the key this certificate was made from, or make a new pair "
                f"with `graphkit init --profile {settings.profile or 'NAME'} --new-key` and "
                "upload its certificate",
            ),
            cert,
        )
    try:
        crypto.require_rsa(key, f"key {key_path}")
    except GraphkitError as exc:
        return _fail("key", exc), cert
    detail = f"{key_path} (RSA {key.key_size}) matches certificate {cert_path}"
    if os.name == "posix":
        mode = key_path.stat().st_mode & 0o777
        if mode & 0o077:
            return (
                Check(
                    "key",
                    WARN,
                    f"{detail}, but the key file is readable by others (mode {mode:04o})",
                    f"chmod 600 {key_path}",
                ),
                cert,
            )
    return Check("key", PASS, detail), cert


def _check_certificate(cert: Any, settings: Settings, now: dt.datetime) -> Check:
    from graphkit import certificates, crypto

    sha1 = crypto.thumbprints(cert)["sha1"]
    not_after = cert.not_valid_after_utc
    not_before = cert.not_valid_before_utc
    left = certificates.days_left(not_after, now)
    data = {
        "sha1": sha1,
        "not_after": not_after.isoformat(),
        "days_left": left.days,
        "validity": str(left),
    }
    renew = certificates.renew_step(settings.profile, expired=left.expired)
    if left.expired:
        return Check(
            "certificate",
            FAIL,
            f"certificate SHA-1 {sha1} expired on {not_after:%Y-%m-%d} ({left}): "
            "Entra ID refuses it",
            renew,
            data,
        )
    if now < not_before:
        return Check(
            "certificate",
            FAIL,
            f"certificate SHA-1 {sha1} is not valid before {not_before:%Y-%m-%d %H:%M} UTC",
            "check this computer's clock, or wait",
            data,
        )
    if certificates.expiry_warning_due(not_before, not_after, now):
        return Check(
            "certificate",
            WARN,
            f"certificate SHA-1 {sha1} {left.expires_phrase()} ({not_after:%Y-%m-%d})",
            renew,
            data,
        )
    return Check(
        "certificate",
        PASS,
        f"SHA-1 {sha1}, valid until {not_after:%Y-%m-%d} ({left})",
        data=data,
    )


def _discovery(settings: Settings, now: Callable[[], float]) -> tuple[Check, Check]:
    """OIDC discovery, and the clock compared with the answer's Date header."""
    import requests

    url = f"{settings.authority_host}/{settings.tenant}/v2.0/.well-known/openid-configuration"
    verify: str | bool = settings.ca_bundle or True
    before = now()
    try:
        resp = requests.get(url, timeout=DISCOVERY_TIMEOUT, verify=verify)
    except requests.exceptions.SSLError:
        fix = (
            f"check that {settings.ca_bundle} is the CA that signed the server's certificate"
            if settings.ca_bundle
            else "if a proxy or private CA intercepts TLS, give its CA file with --ca-bundle"
        )
        return (
            Check("discovery", FAIL, f"TLS verification failed for {settings.authority_host}", fix),
            _skip("clock", "no answer from the identity server"),
        )
    except requests.exceptions.RequestException as exc:
        return (
            Check(
                "discovery",
                FAIL,
                f"cannot reach {settings.authority_host} ({type(exc).__name__})",
                "check the network and proxy settings, and the authority host "
                f"(set by {settings.source('authority_host')})",
            ),
            _skip("clock", "no answer from the identity server"),
        )
    after = now()
    clock = _check_clock(resp.headers.get("Date"), (before + after) / 2, after - before)
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code == 200 and isinstance(body, dict) and body.get("token_endpoint"):
        return (
            Check(
                "discovery",
                PASS,
                f"token endpoint {body['token_endpoint']}",
                data={"token_endpoint": body["token_endpoint"]},
            ),
            clock,
        )
    if isinstance(body, dict) and body.get("error"):
        desc = str(body.get("error_description") or body["error"]).splitlines()[0]
        fix = "check the tenant: the Directory (tenant) ID or a verified domain of the directory"
        return Check("discovery", FAIL, f"{resp.status_code}: {desc}", fix), clock
    return (
        Check(
            "discovery",
            FAIL,
            f"{url} answered {resp.status_code} without a token endpoint",
            "check the authority host: it should be the login host of your cloud",
        ),
        clock,
    )


def _check_clock(date_header: str | None, local: float, round_trip: float) -> Check:
    if not date_header:
        return Check("clock", WARN, "the server sent no Date header to compare with", None)
    try:
        server = email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return Check("clock", WARN, f"unreadable Date header {date_header!r}", None)
    skew = local - server  # positive: this computer is ahead
    data = {"skew_seconds": round(skew, 1)}
    slack = _DATE_SLACK + round_trip / 2
    off = max(0.0, abs(skew) - slack)
    if off == 0:
        return Check("clock", PASS, "local clock agrees with the server's (within 2 s)", data=data)
    way = "ahead of" if skew > 0 else "behind"
    detail = f"local clock is {_fmt_delta(skew)} {way} the server's"
    if off >= CLOCK_FAIL_SECONDS:
        return Check(
            "clock",
            FAIL,
            f"{detail}: Entra ID may refuse the client assertion (AADSTS700024)",
            _CLOCK_FIX,
            data,
        )
    if off >= CLOCK_WARN_SECONDS:
        return Check("clock", WARN, detail, _CLOCK_FIX, data)
    return Check("clock", PASS, detail, data=data)


def _check_token(settings: Settings) -> tuple[Check, Any, Any]:
    from graphkit.tokens import CertificateCredential

    try:
        # A new token, stored in place of the cached one: later commands see the
        # roles and certificate doctor checked, not an older token's.
        credential = CertificateCredential(settings)
        token = credential.get_token(force_refresh=True)
    except GraphkitError as exc:
        return _fail("token", exc), None, None
    expires = dt.datetime.fromtimestamp(int(token.expires_on)).astimezone()
    left = int(token.expires_on) - time.time()
    detail = f"acquired for app {settings.client_id}, expires {expires:%H:%M %Z}"
    detail += f" (in {_fmt_delta(left)})"
    return (
        Check("token", PASS, detail, data={"expires_on": int(token.expires_on)}),
        credential,
        token,
    )


def _check_roles(token: Any, graph_path: str | None) -> Check:
    from graphkit.onboarding import permission_advice

    claims = getattr(token, "claims", None) or {}
    roles = [str(r) for r in claims.get("roles") or []]
    if not roles:
        return Check(
            "roles",
            FAIL,
            "the token carries no roles: the app has no application permission with admin consent",
            permission_advice(graph_path or "/users"),
        )
    return Check("roles", PASS, ", ".join(sorted(roles)), data={"roles": roles})


def _check_graph(settings: Settings, credential: Any, token: Any, graph_path: str | None) -> Check:
    from graphkit.graph import GraphClient
    from graphkit.onboarding import _FixedToken, probe_graph

    claims = getattr(token, "claims", None) or {}
    roles = [str(r) for r in claims.get("roles") or []]
    client = GraphClient(
        settings.graph_url,
        _FixedToken(credential, token),
        ca_bundle=settings.ca_bundle,
        max_attempts=2,
        max_total_wait=10.0,
    )
    try:
        if graph_path is None:
            # The default: /organization, or another read the roles allow (see init).
            probe = probe_graph(client, roles)
            if not probe.ok:
                detail = probe.refused or f"GET {probe.path} was refused"
                return Check("graph", FAIL, detail, probe.permission_error)
            detail = f"GET {probe.path} works"
            if probe.organization:
                detail += f" ({probe.organization})"
            if probe.note:
                detail += f"; note: {probe.note}"
            return Check("graph", PASS, detail, data={"path": probe.path})
        body = client.get(graph_path)
    except GraphkitError as exc:
        fix = exc.hint
        if isinstance(exc, NetworkError):
            fix = f"check the network and the Graph URL (set by {settings.source('graph_url')})"
        return Check("graph", FAIL, exc.message, fix)
    finally:
        client.close()
    shown = ""
    values = body.get("value") if isinstance(body, dict) else None
    if isinstance(values, list):
        first = values[0] if values and isinstance(values[0], dict) else {}
        name = first.get("displayName")
        shown = f", {len(values)} item(s)" + (f", first: {name}" if name else "")
    return Check("graph", PASS, f"GET {_slash(graph_path)} works{shown}", data={"path": graph_path})


def _slash(path: str) -> str:
    return path if path.startswith("/") else "/" + path


# ------------------------------------------------------------------- entry


def run_doctor(
    resolve: Callable[[], Settings],
    *,
    graph_path: str | None = None,
    now: dt.datetime | None = None,
    clock: Callable[[], float] = time.time,
    on_check: Callable[[Check], None] | None = None,
) -> Report:
    """Run every check and return the report.

    Args:
        resolve: returns the Settings to check (raising ConfigError when they do not
            resolve); the CLI passes flags > environment > profile.
        graph_path: the Graph call to try; by default ``/organization`` (what init
            tests), or when that is refused another read the token's roles allow.
        now: the time certificates are judged at (tests travel with it).
        clock: local epoch time, compared with the server's Date header.
        on_check: called with each check as soon as it is done (for live output).
    """
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        if on_check is not None:
            on_check(check)

    config_check, settings = _check_configuration(resolve)
    add(config_check)
    report = Report(checks)
    if settings is None:
        for name in CHECKS[1:]:
            add(_skip(name, "the configuration does not resolve"))
        return report
    report.profile = settings.profile
    cfg = getattr(settings, "config_file", None)
    report.config_file = str(cfg) if cfg else None

    key_check, cert = _check_key(settings)
    add(key_check)
    if cert is not None:
        add(_check_certificate(cert, settings, now or dt.datetime.now(dt.UTC)))
    else:
        add(_skip("certificate", "the certificate could not be read"))
    discovery, clock_check = _discovery(settings, clock)
    add(clock_check)
    add(discovery)
    if discovery.status == FAIL:
        for name in ("token", "roles", "graph"):
            add(_skip(name, "discovery failed"))
        return report
    if key_check.status == FAIL:
        for name in ("token", "roles", "graph"):
            add(_skip(name, "the key and certificate are unusable"))
        return report
    token_check, credential, token = _check_token(settings)
    add(token_check)
    if token is None:
        add(_skip("roles", "no token"))
        add(_skip("graph", "no token"))
        return report
    add(_check_roles(token, graph_path))
    add(_check_graph(settings, credential, token, graph_path))
    return report
