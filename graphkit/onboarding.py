"""The ``graphkit init`` flow as library code.

Each step returns data or raises a :mod:`graphkit.errors` exception; nothing here
prints. The command line (``graphkit.cli.init``) and the offline demo drive the same
:func:`run_init` through an :class:`InitHooks` object that asks the questions and shows
the progress.

The flow:

1. check the tenant (GUID or domain) and the client id (GUID);
2. find the profile's existing key and certificate and reuse them (the default), or
   generate a new RSA key (0600) and a self-signed certificate in a per-profile
   directory (0700) under the graphkit state directory;
3. write the upload-ready ``.crt`` (and a DER ``.cer`` and/or a PFX on request);
4. show the SHA-1 thumbprint as the portal shows it and where to upload it;
5. save the profile (only once every file is in place);
6. once the user confirms the upload, smoke-test: a token, then ``GET /organization``,
   waiting out AADSTS700027 while a fresh upload propagates.

Files are written in a transaction: an interruption (Ctrl-C included) before the
profile is saved removes every file this run created and leaves no profile. An existing
key is never deleted nor overwritten: a new pair gets new file names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from graphkit.errors import (
    AuthError,
    ConfigError,
    CryptoError,
    GraphkitError,
    InputError,
    OutputExistsError,
    PermissionDeniedError,
)
from graphkit.settings import check_client_id, check_profile_name, check_tenant

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.settings import Settings

__all__ = [
    "CLOUD_PORTALS",
    "DEFAULT_PROFILE",
    "DEFAULT_WAIT",
    "Credentials",
    "Hooks",
    "InitHooks",
    "InitRequest",
    "InitResult",
    "SmokeResult",
    "UploadInstructions",
    "az_command",
    "credentials_dir",
    "permission_advice",
    "portal_url",
    "run_init",
    "smoke_test",
    "wait_out",
]

T = TypeVar("T")

DEFAULT_PROFILE = "default"
# How long init waits for a fresh upload to propagate (AADSTS700027). Microsoft says
# "a few minutes"; five is enough in practice and still bounded.
DEFAULT_WAIT = 300.0
# Backoff between token attempts while waiting: start short (most uploads propagate in
# seconds), double, and never poll more often than every 15 s after that.
FIRST_DELAY = 2.0
MAX_DELAY = 15.0
# The portal's Certificates & secrets blade of an app registration, per cloud. Both US
# Government clouds (L4 and L5/DoD) share portal.azure.us; China's 21Vianet has its own.
CLOUD_PORTALS = {
    "global": "portal.azure.com",
    "usgov": "portal.azure.us",
    "usgovdod": "portal.azure.us",
    "china": "portal.azure.cn",
}
# `az cloud set --name ...` for the national clouds (the Azure CLI defaults to AzureCloud).
AZ_CLOUDS = {
    "global": "AzureCloud",
    "usgov": "AzureUSGovernment",
    "usgovdod": "AzureUSGovernment",
    "china": "AzureChinaCloud",
}
_KNOWN_LOGIN_HOSTS = {
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
}


def _check_days(days: int) -> int:
    from graphkit import crypto

    if not 1 <= days <= crypto.MAX_DAYS:
        raise ConfigError(f"--days {days} is out of range", f"use 1 to {crypto.MAX_DAYS}")
    return days


def _check_size(size: int) -> int:
    from graphkit import crypto

    if size not in crypto.KEY_SIZES:
        raise ConfigError(f"--size {size} is not offered", "use 2048, 3072 or 4096")
    return size


# --------------------------------------------------------- where to upload


def portal_url(client_id: str, cloud: str = "global") -> str:
    """The portal page of the app's Certificates & secrets (the Credentials blade)."""
    host = CLOUD_PORTALS.get(cloud, CLOUD_PORTALS["global"])
    return (
        f"https://{host}/#view/Microsoft_AAD_RegisteredApps/ApplicationMenuBlade"
        f"/~/Credentials/appId/{client_id}"
    )


def az_command(client_id: str, cert_path: Path | str) -> str:
    """The Azure CLI line that appends the certificate to the app's keyCredentials."""
    import shlex

    return (
        f"az ad app credential reset --id {client_id} "
        f"--cert {shlex.quote('@' + str(cert_path))} --append"
    )


def permission_advice(path: str, role: str | None = None) -> str:
    """What to tell a user whose token lacks the role ``path`` needs."""
    if not role:
        from graphkit.graph import required_role

        role = required_role(path if "://" in path else "https://graph/" + path.lstrip("/"))
    what = f"the application permission {role}" if role else "an application permission"
    return (
        f"add {what} (API permissions > Microsoft Graph > Application permissions) "
        "to the app, then have an administrator grant admin consent"
    )


def _is_microsoft_authority(authority_host: str | None) -> bool:
    if not authority_host:
        return True
    host = authority_host.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    return host in _KNOWN_LOGIN_HOSTS


# ------------------------------------------------------------------- data


@dataclass
class Credentials:
    """A key and its self-signed certificate on disk."""

    key_path: Path
    cert_path: Path
    thumbprint: str  # SHA-1, uppercase hex without separators: what the portal shows
    not_after: dt.datetime
    subject: str
    reused: bool = False
    encrypted: bool = False
    extra: dict[str, Path] = field(default_factory=dict)  # "cer" / "pfx" -> path

    not_before: dt.datetime | None = None

    @property
    def validity(self) -> Any:
        """Days left, counted as every command counts them (:func:`certificates.days_left`)."""
        from graphkit import certificates

        return certificates.days_left(self.not_after)

    @property
    def days_left(self) -> int:
        return int(self.validity.days)

    @property
    def expiry_warning_due(self) -> bool:
        from graphkit import certificates

        start = self.not_before or self.not_after - dt.timedelta(days=3650)
        return certificates.expiry_warning_due(start, self.not_after)


@dataclass
class UploadInstructions:
    client_id: str
    cloud: str
    cert_path: Path
    thumbprint: str
    portal_url: str
    az_command: str
    az_cloud: str | None  # `az cloud set --name X` first, for national clouds
    custom_authority: str | None  # set when the authority is not a Microsoft cloud


@dataclass
class InitRequest:
    """Everything init needs; the command line fills it from flags, prompts and the profile."""

    tenant: str
    client_id: str
    profile: str = DEFAULT_PROFILE
    directory: Path | None = None
    days: int = 365
    size: int = 2048
    passphrase: bytes | None = None
    passphrase_file: Path | None = None  # stored in the profile so later runs can open the key
    new_key: bool = False
    write_cer: bool = False
    write_pfx: bool = False
    # Connection settings stored in the profile: cloud, authority_host, graph_url, ca_bundle.
    connection: dict[str, str] = field(default_factory=dict)
    test: bool = True
    wait: float = DEFAULT_WAIT
    make_default: bool | None = None  # None: only when there is no default profile yet


@dataclass
class GraphProbe:
    """What a test call to Graph found."""

    path: str  # the call that was made last (the one that worked, if any)
    ok: bool
    organization: str | None = None  # display name, when /organization answered
    note: str | None = None  # /organization refused but another granted read worked
    permission_error: str | None = None  # every call refused: what to add, admin consent
    refused: str | None = None  # Graph's own words for the refusal (code, request ids)


@dataclass
class SmokeResult:
    roles: list[str]
    expires_on: int
    from_cache: bool
    waited: float  # seconds spent waiting out AADSTS700027
    attempts: int
    probe: GraphProbe | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def permission_error(self) -> str | None:
        return self.probe.permission_error if self.probe else None


@dataclass
class InitResult:
    profile: str
    config_path: Path | None
    credentials: Credentials
    instructions: UploadInstructions
    made_default: bool
    smoke: SmokeResult | None = None
    tested: bool = False
    # Environment variables that override the saved profile in other commands.
    env_overrides: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        c, i = self.credentials, self.instructions
        out: dict[str, Any] = {
            "profile": self.profile,
            "config": str(self.config_path) if self.config_path else None,
            "default": self.made_default,
            "private_key": str(c.key_path),
            "certificate": str(c.cert_path),
            "extra": {k: str(v) for k, v in c.extra.items()},
            "reused": c.reused,
            "thumbprint": c.thumbprint,
            "not_after": c.not_after.isoformat(),
            "portal_url": i.portal_url,
            "az_command": i.az_command,
            "tested": self.tested,
        }
        if self.smoke is not None:
            probe = self.smoke.probe
            out["smoke_test"] = {
                "roles": self.smoke.roles,
                "graph_call": probe.path if probe else None,
                "graph_ok": bool(probe and probe.ok),
                "organization": probe.organization if probe else None,
                "note": probe.note if probe else None,
                "permission_error": self.smoke.permission_error,
                "waited_seconds": round(self.smoke.waited, 1),
                "attempts": self.smoke.attempts,
            }
        return out


class Hooks(Protocol):
    """What :func:`run_init` asks and reports (see :class:`InitHooks` for each method)."""

    def step(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def confirm_reuse(self, existing: Credentials) -> bool: ...
    def show_upload(self, credentials: Credentials, instructions: UploadInstructions) -> None: ...
    def saved(self, profile: str, config_path: Path | None, made_default: bool) -> None: ...
    def confirm_upload(self, instructions: UploadInstructions) -> bool: ...
    def waiting(self, retry_in: float, left: float, attempt: int) -> None: ...
    def token(self, smoke: SmokeResult) -> None: ...


class InitHooks:
    """The questions and progress of :func:`run_init`; subclass to talk to a person.

    The defaults are the non-interactive answers: reuse an existing key, do not assume
    the certificate was uploaded (so no smoke test), and stay silent.
    """

    def step(self, message: str) -> None:
        """A progress line (``Generating a 2048-bit RSA key...``)."""

    def warn(self, message: str) -> None:
        """Something the user should know but that does not stop init."""

    def confirm_reuse(self, existing: Credentials) -> bool:
        """Reuse the profile's existing key and certificate? (False: make a new pair)."""
        return True

    def show_upload(self, credentials: Credentials, instructions: UploadInstructions) -> None:
        """Show the thumbprint and where to upload the certificate."""

    def saved(self, profile: str, config_path: Path | None, made_default: bool) -> None:
        """The profile was written."""

    def confirm_upload(self, instructions: UploadInstructions) -> bool:
        """Block until the certificate is uploaded; False to skip the smoke test."""
        return False

    def waiting(self, retry_in: float, left: float, attempt: int) -> None:
        """Called about once a second while AADSTS700027 is waited out."""

    def token(self, smoke: SmokeResult) -> None:
        """A token was acquired (roles in ``smoke.roles``)."""


# ------------------------------------------------------------- file handling


def credentials_dir(profile: str) -> Path:
    """Where init keeps a profile's key and certificate: ``<state dir>/credentials/<profile>``."""
    from graphkit.settings import state_dir

    return Path(state_dir()) / "credentials" / profile


class _Transaction:
    """Files and directories created by this run, removed again unless committed."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.dirs: list[Path] = []
        self.committed = False

    def mkdir(self, path: Path) -> None:
        from graphkit.files import ensure_private_dir

        missing = []
        p = path
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        ensure_private_dir(path)
        # Deepest first, so a rollback can remove them in order.
        self.dirs.extend(missing)

    def write(self, path: Path, data: bytes, mode: int) -> None:
        from graphkit.files import atomic_write

        # Recorded before writing: an interrupt right after the rename must still undo it.
        self.files.append(path)
        try:
            atomic_write(path, data, mode=mode)
        except OutputExistsError:
            self.files.remove(path)  # someone else's file: never touch it
            raise

    def rollback(self) -> None:
        for path in reversed(self.files):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()  # only if empty

    @contextlib.contextmanager
    def guard(self) -> Iterator[_Transaction]:
        try:
            yield self
        except BaseException:
            if not self.committed:
                self.rollback()
            raise


def _load_pair(key_path: Path, cert_path: Path, passphrase: bytes | None) -> Credentials:
    """Load and check an existing pair; raise CryptoError/InputError when it is unusable."""
    from graphkit import crypto
    from graphkit.files import read_bytes

    bundle = crypto.load_certificate_bundle(
        read_bytes(cert_path, "certificate"), passphrase, source=f"certificate {cert_path}"
    )
    key_data = read_bytes(key_path, "private key")
    encrypted = b"ENCRYPTED" in key_data
    key = bundle.key
    if key is None or key_path != cert_path:
        key = crypto.load_private_key(key_data, passphrase, source=f"key {key_path}")
    if not crypto.key_matches_certificate(key, bundle.certificate):
        raise CryptoError(
            f"key {key_path} does not match certificate {cert_path}",
            "run init again with --new-key to make a fresh pair",
        )
    cert = bundle.certificate
    return Credentials(
        key_path=key_path,
        cert_path=cert_path,
        thumbprint=crypto.thumbprints(cert)["sha1"],
        not_after=cert.not_valid_after_utc,
        not_before=cert.not_valid_before_utc,
        subject=cert.subject.rfc4514_string(),
        reused=True,
        encrypted=encrypted,
    )


def _free_stem(directory: Path, base: str, suffixes: tuple[str, ...]) -> str:
    """``base`` if none of its files exist in ``directory``, else ``base-<UTC time>[-n]``."""

    def taken(stem: str) -> bool:
        return any((directory / f"{stem}{s}").exists() for s in suffixes)

    if not taken(base):
        return base
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    stem, n = f"{base}-{stamp}", 1
    while taken(stem):
        n += 1
        stem = f"{base}-{stamp}-{n}"
    return stem


def _subject_cn(profile: str) -> str:
    # The portal lists a certificate by its subject: say what made it and where.
    import socket

    host = socket.gethostname().split(".")[0] or "localhost"
    return f"graphkit {profile} ({host})"[:64]


def _check_key_directory(directory: Path) -> None:
    """Refuse a directory where others could read nothing but swap everything: a key
    replaced by theirs, or the certificate the user uploads replaced by theirs (which
    would let them sign in as the app)."""
    from graphkit.files import not_private_location

    problem = not_private_location(directory)
    if problem:
        raise InputError(
            f"not writing keys in {directory}: {problem}",
            "choose a directory only you can write with --dir (graphkit creates it 0700)",
        )


def create_credentials(
    txn: _Transaction,
    directory: Path,
    profile: str,
    *,
    size: int,
    days: int,
    passphrase: bytes | None,
    write_cer: bool = False,
    write_pfx: bool = False,
    hooks: Hooks | None = None,
    now: dt.datetime | None = None,
) -> Credentials:
    """Generate a key and a self-signed certificate and write them under ``directory``.

    Never overwrites: when the profile's names are taken, the new pair gets a
    timestamped name. Every file is recorded in ``txn`` so an interruption undoes it.
    """
    from graphkit import crypto
    from graphkit.files import PRIVATE, PUBLIC

    hooks = hooks or InitHooks()
    txn.mkdir(directory)
    _check_key_directory(directory)
    suffixes = (".key", ".crt", ".cer", ".pfx")
    stem = _free_stem(directory, profile, suffixes)
    hooks.step(f"Generating a {size}-bit RSA key")
    key = crypto.generate_private_key(size)
    cn = _subject_cn(profile)
    cert = crypto.self_sign(key, crypto.parse_subject(cn=cn), days=days, now=now)
    key_path = directory / f"{stem}.key"
    cert_path = directory / f"{stem}.crt"
    txn.write(key_path, crypto.dump_private_key(key, passphrase), PRIVATE)
    txn.write(cert_path, crypto.dump_certificate(cert), PUBLIC)
    extra: dict[str, Path] = {}
    if write_cer:
        extra["cer"] = directory / f"{stem}.cer"
        txn.write(extra["cer"], crypto.dump_certificate(cert, der=True), PUBLIC)
    if write_pfx:
        extra["pfx"] = directory / f"{stem}.pfx"
        txn.write(extra["pfx"], crypto.dump_pfx(key, cert, passphrase), PRIVATE)
    hooks.step(f"Wrote {key_path} (mode 0600) and {cert_path}")
    return Credentials(
        key_path=key_path,
        cert_path=cert_path,
        thumbprint=crypto.thumbprints(cert)["sha1"],
        not_after=cert.not_valid_after_utc,
        not_before=cert.not_valid_before_utc,
        subject=cert.subject.rfc4514_string(),
        reused=False,
        encrypted=bool(passphrase),
        extra=extra,
    )


def _write_extras(
    txn: _Transaction, creds: Credentials, passphrase: bytes | None, cer: bool, pfx: bool
) -> None:
    """DER/PFX copies of a reused pair, when asked for and not already there."""
    from graphkit import crypto
    from graphkit.files import PRIVATE, PUBLIC, read_bytes

    if not (cer or pfx):
        return
    bundle = crypto.load_certificate_bundle(
        read_bytes(creds.cert_path, "certificate"), passphrase, source=str(creds.cert_path)
    )
    stem = creds.cert_path.with_suffix("")
    if cer:
        target = stem.with_suffix(".cer")
        if not target.exists():
            txn.write(target, crypto.dump_certificate(bundle.certificate, der=True), PUBLIC)
        creds.extra["cer"] = target
    if pfx:
        target = stem.with_suffix(".pfx")
        if not target.exists():
            _check_key_directory(target.parent)
            key_data = read_bytes(creds.key_path, "private key")
            if creds.key_path == creds.cert_path:  # a combined PEM or a PFX holds the key
                key = crypto.load_certificate_bundle(key_data, passphrase).key
            else:
                key = crypto.load_private_key(key_data, passphrase, source=str(creds.key_path))
            txn.write(target, crypto.dump_pfx(key, bundle.certificate, passphrase), PRIVATE)
        creds.extra["pfx"] = target


def find_existing(
    profile: str,
    stored: Mapping[str, Any] | None,
    directory: Path,
    passphrase: bytes | None,
    hooks: Hooks,
) -> Credentials | None:
    """The pair a previous init left: the profile's files, else the canonical names."""
    candidates: list[tuple[Path, Path]] = []
    if stored and stored.get("certificate"):
        cert = Path(str(stored["certificate"])).expanduser()
        key = Path(str(stored.get("private_key") or cert)).expanduser()
        candidates.append((key, cert))
    canonical = (directory / f"{profile}.key", directory / f"{profile}.crt")
    if canonical not in candidates:
        candidates.append(canonical)
    for key, cert in candidates:
        if not (key.exists() and cert.exists()):
            continue
        try:
            return _load_pair(key, cert, passphrase)
        except CryptoError as exc:
            if "encrypted" in exc.message and not passphrase:
                raise CryptoError(
                    f"the existing key {key} is encrypted",
                    "give its passphrase with --passphrase-file to reuse it, "
                    "or pass --new-key for a new pair",
                ) from None
            hooks.warn(f"not reusing {cert}: {exc}")
        except InputError as exc:
            hooks.warn(f"not reusing {cert}: {exc}")
    return None


# ------------------------------------------------------------------ the flow


def upload_instructions(
    client_id: str, creds: Credentials, connection: Mapping[str, str]
) -> UploadInstructions:
    cloud = connection.get("cloud") or "global"
    authority = connection.get("authority_host")
    return UploadInstructions(
        client_id=client_id,
        cloud=cloud,
        cert_path=creds.cert_path,
        thumbprint=creds.thumbprint,
        portal_url=portal_url(client_id, cloud),
        az_command=az_command(client_id, creds.cert_path),
        az_cloud=None if cloud == "global" else AZ_CLOUDS.get(cloud),
        custom_authority=None if _is_microsoft_authority(authority) else authority,
    )


def _profile_values(
    request: InitRequest, creds: Credentials, stored: Mapping[str, Any] | None
) -> dict[str, str]:
    values: dict[str, str] = {}
    # Keep settings a user added by hand to an existing profile.
    for k, v in (stored or {}).items():
        if isinstance(v, str):
            values[k] = v
    values.update(
        {
            "tenant": request.tenant,
            "client_id": request.client_id,
            "certificate": str(creds.cert_path),
            "private_key": str(creds.key_path),
        }
    )
    if request.passphrase_file is not None:
        values["passphrase_file"] = str(Path(request.passphrase_file).expanduser().resolve())
    for k, v in request.connection.items():
        if v:
            values[k] = str(v)
    return values


def stored_profile(name: str) -> dict[str, Any] | None:
    """Profile ``name`` as stored in the config file, or None."""
    from graphkit.settings import config_path, read_config

    profiles = read_config(config_path()).get("profiles") or {}
    found = profiles.get(name)
    return dict(found) if isinstance(found, dict) else None


def _without_settings_env() -> dict[str, str]:
    """The environment without the variables that override a profile's settings."""
    import os

    from graphkit.settings import ENV_VARS

    hidden = {var for names in ENV_VARS.values() for var in names}
    return {k: v for k, v in os.environ.items() if k not in hidden}


def environment_overrides(profile: str) -> dict[str, str]:
    """Variables set in the environment that give another commands' run of ``profile``
    a different value than the profile holds: ``{variable: setting name}``."""
    import os

    from graphkit.settings import ENV_VARS

    stored = stored_profile(profile) or {}
    found: dict[str, str] = {}
    for name, names in ENV_VARS.items():
        if name == "passphrase":
            continue
        for var in names:
            value = os.environ.get(var, "").strip()
            if value and value != str(stored.get(name) or ""):
                found[var] = name
    return found


def run_init(request: InitRequest, hooks: Hooks | None = None) -> InitResult:
    """Run the whole init flow; see the module docstring for the steps.

    Raises:
        ConfigError: a bad tenant, client id, profile name, --days or --size.
        CryptoError: an existing key cannot be opened (e.g. encrypted, no passphrase).
        AuthError / GraphError / NetworkError: from the smoke test.
    """
    from graphkit import settings as profiles

    hooks = hooks or InitHooks()
    request.tenant = check_tenant(request.tenant)
    request.client_id = check_client_id(request.client_id)
    request.profile = check_profile_name(request.profile)
    _check_days(request.days)
    _check_size(request.size)

    stored = stored_profile(request.profile)
    directory = (
        Path(request.directory).expanduser()
        if request.directory
        else credentials_dir(request.profile)
    )
    from graphkit.files import check_directory

    check_directory(directory, "the key directory")
    creds: Credentials | None = None
    if not request.new_key:
        existing = find_existing(request.profile, stored, directory, request.passphrase, hooks)
        if existing is not None and existing.not_after <= dt.datetime.now(dt.UTC):
            hooks.warn(
                f"the existing certificate {existing.cert_path} expired on "
                f"{existing.not_after:%Y-%m-%d}: making a new pair (the old one is kept)"
            )
            existing = None
        if existing is not None and hooks.confirm_reuse(existing):
            creds = existing
            hooks.step(
                f"Reusing the existing key {existing.key_path} and certificate {existing.cert_path}"
            )
            if existing.expiry_warning_due:
                from graphkit import certificates

                hooks.warn(
                    f"the certificate {existing.validity.expires_phrase()}: "
                    f"{certificates.renew_step(request.profile)}"
                )

    txn = _Transaction()
    with txn.guard():
        if creds is None:
            creds = create_credentials(
                txn,
                directory,
                request.profile,
                size=request.size,
                days=request.days,
                passphrase=request.passphrase,
                write_cer=request.write_cer,
                write_pfx=request.write_pfx,
                hooks=hooks,
            )
            if stored and stored.get("certificate"):
                hooks.step(
                    f"The previous pair ({stored.get('certificate')}) is kept; once the "
                    "new certificate works, remove the old one from the app and delete "
                    "its key yourself"
                )
        else:
            _write_extras(txn, creds, request.passphrase, request.write_cer, request.write_pfx)
        instructions = upload_instructions(request.client_id, creds, request.connection)
        hooks.show_upload(creds, instructions)
        path = profiles.config_path()
        profiles.save_profile(
            request.profile,
            _profile_values(request, creds, stored),
            make_default=request.make_default,
            path=path,
        )
        txn.committed = True
    made_default = profiles.read_config(path).get("default_profile") == request.profile
    hooks.saved(request.profile, path, made_default)
    result = InitResult(
        profile=request.profile,
        config_path=path,
        credentials=creds,
        instructions=instructions,
        made_default=made_default,
    )
    if not request.test or not hooks.confirm_upload(instructions):
        return result
    result.env_overrides = environment_overrides(request.profile)
    for var, name in result.env_overrides.items():
        hooks.warn(
            f"{var} is set in this shell and overrides the profile's {name} in every other "
            f"command; init tests the profile as saved: `unset {var}` to use it"
        )
    # Exactly the profile as saved (within init its answers and flags win): the
    # environment's AZURE_*/GRAPHKIT_* settings play no part in the test.
    settings = profiles.resolve_settings(
        profile=request.profile,
        overrides={"passphrase": request.passphrase} if request.passphrase else None,
        env=_without_settings_env(),
    )
    result.smoke = smoke_test(settings, wait=request.wait, hooks=hooks)
    result.tested = True
    return result


# ---------------------------------------------------------------- smoke test


# What Entra answers while a fresh certificate has not reached every front end yet.
CERTIFICATE_PROPAGATION = frozenset({700027})


def wait_out(
    attempt: Callable[[int], T],
    transient: Callable[[GraphkitError], bool],
    *,
    wait: float = DEFAULT_WAIT,
    hooks: Hooks | None = None,
    first_delay: float = FIRST_DELAY,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[T, float, int]:
    """Call ``attempt(n)`` (n = 1, 2...) until it returns, retrying for up to ``wait``
    seconds while it raises an error ``transient`` accepts (something that propagates:
    a new certificate, a new service principal), with backoff (``first_delay``, doubling,
    at most :data:`MAX_DELAY`) and ``hooks.waiting`` about once a second (a countdown).
    Any other error is raised at once; a transient one still raised when ``wait`` is
    spent says how long it was waited for.

    Returns:
        (what ``attempt`` returned, seconds waited, attempts)
    """
    hooks = hooks or InitHooks()
    start = clock()
    deadline = start + max(0.0, wait)
    delay = first_delay
    n = 0
    while True:
        n += 1
        try:
            return attempt(n), clock() - start, n
        except GraphkitError as exc:
            if not transient(exc):
                raise
            left = deadline - clock()
            if left <= 0:
                if n > 1:
                    exc.message = (
                        f"{exc.message} (still refused after waiting {int(clock() - start)} s)"
                    )
                    exc.args = (exc.message,)
                raise
            pause = min(delay, left)
            end = clock() + pause
            while (remaining := end - clock()) > 0:
                hooks.waiting(remaining, deadline - clock(), n)
                sleep(min(1.0, remaining))
            delay = min(delay * 2, MAX_DELAY)


def acquire_with_wait(
    make_credential: Callable[[], Any],
    *,
    wait: float = DEFAULT_WAIT,
    hooks: Hooks | None = None,
    first_delay: float = FIRST_DELAY,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    retry_codes: frozenset[int] = CERTIFICATE_PROPAGATION,
) -> tuple[Any, Any, float, int]:
    """Get a token, retrying while Entra answers one of ``retry_codes`` (AADSTS700027)
    for up to ``wait`` seconds (:func:`wait_out`).

    A freshly uploaded certificate takes a moment to reach every Entra front end;
    until then the token endpoint says 700027 ("key not found"). A new app's service
    principal likewise (7000229), for ``app create``. Any other error is raised at once.

    Returns:
        (credential, token, seconds waited, attempts)
    """
    credentials = [make_credential()]

    def attempt(n: int) -> Any:
        if n > 1:
            # A fresh credential: nothing of the refused attempt is remembered.
            credentials.append(make_credential())
        return credentials[-1].get_token(force_refresh=True)

    token, waited, attempts = wait_out(
        attempt,
        lambda exc: isinstance(exc, AuthError) and exc.code in retry_codes,
        wait=wait,
        hooks=hooks,
        first_delay=first_delay,
        sleep=sleep,
        clock=clock,
    )
    return credentials[-1], token, waited, attempts


class _FixedToken:
    """A credential handing out one token (and refreshing through the real one)."""

    def __init__(self, credential: Any, token: Any) -> None:
        self._credential = credential
        self._token = token

    def get_token(self, *, force_refresh: bool = False) -> Any:
        if force_refresh:
            self._token = self._credential.get_token(force_refresh=True)
        return self._token


# A read each application permission allows: when /organization is refused (it needs
# Organization.Read.All), one of these shows that Graph accepts the token all the same.
_PROBES = (
    ("User.Read.All", "/users"),
    ("User.ReadWrite.All", "/users"),
    ("User.ReadBasic.All", "/users"),
    ("Directory.Read.All", "/users"),
    ("Directory.ReadWrite.All", "/users"),
    ("Group.Read.All", "/groups"),
    ("Group.ReadWrite.All", "/groups"),
    ("GroupMember.Read.All", "/groups"),
    ("Application.Read.All", "/applications"),
    ("Application.ReadWrite.All", "/applications"),
)


def probe_graph(client: Any, roles: list[str], path: str = "/organization") -> GraphProbe:
    """GET ``path``; on a 403, try a read the token's roles do allow.

    Returns a :class:`GraphProbe`; raises only for errors other than a 403 (network,
    throttling, 401...).
    """
    try:
        body = client.get(path)
    except PermissionDeniedError as exc:
        advice = exc.hint or permission_advice(path)
        refused = GraphProbe(path, ok=False, permission_error=advice, refused=exc.message)
        fallback = next((p for role, p in _PROBES if role in roles and p != path), None)
        if fallback is None:
            return refused
        try:
            client.get(fallback, {"$top": "1"})
        except PermissionDeniedError:
            return refused
        from graphkit.graph import required_role

        needed = required_role("https://graph/v1.0/" + path.lstrip("/")) or "its permission"
        return GraphProbe(
            f"{fallback}?$top=1",
            ok=True,
            note=f"GET {path} needs {needed}, which the app does not have; "
            "add it (then admin consent) only if you need it",
        )
    probe = GraphProbe(path, ok=True)
    values = body.get("value") if isinstance(body, dict) else None
    if isinstance(values, list) and values and isinstance(values[0], dict):
        probe.organization = str(values[0].get("displayName") or values[0].get("id") or "")
    return probe


def smoke_test(
    settings: Settings,
    *,
    wait: float = DEFAULT_WAIT,
    hooks: Hooks | None = None,
    path: str = "/organization",
    first_delay: float = FIRST_DELAY,
    retry_codes: frozenset[int] = CERTIFICATE_PROPAGATION,
) -> SmokeResult:
    """A token (waiting out 700027), then ``GET /organization``.

    A Graph 403 is not raised: the probe records the permission to add (and whether
    another read the app is granted works), since the credentials themselves work.
    """
    from graphkit.graph import GraphClient
    from graphkit.tokens import CertificateCredential

    hooks = hooks or InitHooks()
    credential, token, waited, attempts = acquire_with_wait(
        lambda: CertificateCredential(settings),
        wait=wait,
        hooks=hooks,
        first_delay=first_delay,
        retry_codes=retry_codes,
    )
    claims = dict(getattr(token, "claims", {}) or {})
    roles = [str(r) for r in claims.get("roles") or []]
    smoke = SmokeResult(
        roles=roles,
        expires_on=int(token.expires_on),
        from_cache=bool(token.from_cache),
        waited=waited,
        attempts=attempts,
        claims=claims,
    )
    hooks.token(smoke)
    with GraphClient(
        settings.graph_url,
        _FixedToken(credential, token),
        ca_bundle=settings.ca_bundle,
        max_attempts=3,
        max_total_wait=30.0,
    ) as client:
        smoke.probe = probe_graph(client, roles, path)
    return smoke
