"""The client certificate and its key: loaded from settings once per process, checked,
and the record of earlier checks.

:func:`load` opens the certificate (and key) that :class:`~graphkit.settings.Settings`
name, checks them (a certificate, an RSA key that matches it, dates that hold) and keeps
the result for the rest of the process: a command that checks, warns of expiry and then
signs with the key parses the files once. :func:`check` answers the same question
without parsing anything when the files are byte for byte those of a full check
recorded earlier in the state directory (so that a warm run parses no key and does not
even import cryptography).

Which key signs: a combined PEM or a PFX carries its own key and uses it; a separate
``private_key`` replaces it only when it was given at the certificate's own layer (both
flags, or both in the profile). The profile's key never pairs with a certificate given
by a flag or the environment unless that certificate file holds no key.

:func:`expiry_warning` says when the certificate is about to expire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from graphkit._record import Record
from graphkit.errors import ConfigError, CryptoError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.settings import Settings

__all__ = [
    "CERTIFICATE_CHECKS_FILE",
    "EXPIRY_WARNING_DAYS",
    "RENEW_STEP",
    "CertificateFacts",
    "ClientCertificate",
    "DaysLeft",
    "check",
    "days_left",
    "expiry_warning",
    "expiry_warning_due",
    "load",
    "renew_step",
]

# Warn this many days before the client certificate expires (issue 5).
EXPIRY_WARNING_DAYS = 30  # the longest warning window (see expiry_warning)

# Shortest RSA key check() accepts: crypto.MIN_RSA_BITS, repeated here so that a
# check served from the record does not import cryptography (a test keeps them equal).
MIN_RSA_BITS = 2048

# Results of full certificate checks, keyed by a digest of the files checked (in the
# state directory, mode 0600). Newest first; older entries are dropped.
CERTIFICATE_CHECKS_FILE = "certificate_checks.json"
_CHECKS_VERSION = 2  # 2: records carry the SHA-256 thumbprint (the token cache's key)
_MAX_CHECKS = 16


class ClientCertificate(Record):
    """The client certificate and its key, as msal needs them (in memory only).

    Immutable: its attributes are set once, by ``__init__``.
    """

    _fields = (
        "path", "certificate", "certificate_pem", "private_key", "sha1", "sha256",
        "key_bits", "form", "holds_key",
    )  # fmt: skip
    _hidden = frozenset({"private_key"})

    path: Path
    certificate: Any
    certificate_pem: str
    private_key: Any
    sha1: str
    sha256: str
    key_bits: int
    form: str
    holds_key: bool

    def __init__(
        self,
        path: Path,
        certificate: Any,  # cryptography x509.Certificate
        certificate_pem: str,
        private_key: Any,  # cryptography RSAPrivateKey: in memory only
        sha1: str,
        sha256: str,  # uppercase hex, as the token cache is keyed
        key_bits: int,
        form: str,  # pem | der | pfx
        holds_key: bool,  # the certificate file itself carries the key (combined PEM / PFX)
    ) -> None:
        values = (path, certificate, certificate_pem, private_key, sha1, sha256, key_bits,
                  form, holds_key)  # fmt: skip
        for name, value in zip(self._fields, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: ClientCertificate is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: ClientCertificate is frozen")

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self._fields))

    @property
    def private_key_pem(self) -> str:
        """The key as unencrypted PKCS#8 PEM (for tools that want text): never written."""
        from graphkit import crypto

        return crypto.dump_private_key(self.private_key).decode("ascii")

    @property
    def not_before(self) -> dt.datetime:
        value: dt.datetime = self.certificate.not_valid_before_utc
        return value

    @property
    def not_after(self) -> dt.datetime:
        value: dt.datetime = self.certificate.not_valid_after_utc
        return value

    def days_left(self, now: dt.datetime | None = None) -> DaysLeft:
        """:func:`days_left` (a :class:`DaysLeft`: ``.days``, ``str()``)."""
        return days_left(self.not_after, now)


class CertificateFacts(NamedTuple):
    """What a full check (:func:`load`) established about the
    certificate and key files: enough to check them again and to warn of expiry.

    Holds nothing secret: no key material, no passphrase. (A NamedTuple: making a
    frozen dataclass costs a millisecond at import, on every run.)
    """

    path: Path
    sha1: str
    sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    key_bits: int
    holds_key: bool

    def days_left(self, now: dt.datetime | None = None) -> DaysLeft:
        """:func:`days_left` (a :class:`DaysLeft`: ``.days``, ``str()``)."""
        return days_left(self.not_after, now)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_KEY_BLOCK = re.compile(
    rb"-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----.*?-----END \1-----\r?\n?",
    re.DOTALL,
)


def _split_key_block(data: bytes) -> tuple[bytes, bytes | None]:
    """(the PEM without its private key block, that block) when there is one."""
    if b"-----BEGIN" not in data:
        return data, None
    match = _KEY_BLOCK.search(data)
    if match is None:
        return data, None
    return data[: match.start()] + data[match.end() :], match.group(0)


def _load_key(data: bytes, passphrase: bytes | None, source: str) -> Any:
    """Load a private key, fast.

    cryptography's RSA consistency check costs ~40 ms on every run; it guards against
    hostile or corrupted keys, and this is the user's own key, whose public half is
    compared with the certificate's below (a corrupt key is refused by the identity
    platform anyway). Anything unusual goes through ``crypto.load_private_key`` for its
    precise messages (encrypted without passphrase, wrong passphrase, DER...).
    """
    from cryptography.hazmat.primitives import serialization

    from graphkit import crypto

    match = _KEY_BLOCK.search(data) if b"-----BEGIN" in data else None
    if match is not None:
        block = match.group(0)
        encrypted = b"ENCRYPTED" in block
        if passphrase or not encrypted:
            try:
                return serialization.load_pem_private_key(
                    block,
                    password=passphrase if encrypted else None,
                    unsafe_skip_rsa_key_validation=True,
                )
            except Exception:  # nosec B110  # the full load below reports what is wrong
                pass
    return crypto.load_private_key(data, passphrase, source=source)


def _passphrase_env() -> str:
    from graphkit.settings import PASSPHRASE_ENV

    return PASSPHRASE_ENV


def _passphrase_advice(exc: CryptoError, settings: Settings) -> CryptoError:
    """The crypto layer's passphrase hints name the certificate commands' options;
    here the passphrase comes from the connection settings."""
    if "passphrase" not in exc.message and "encrypted" not in exc.message:
        return exc
    if settings.passphrase is None:
        hint = (
            "give it with --passphrase-file, AZURE_CLIENT_CERTIFICATE_PASSWORD or "
            f"{_passphrase_env()} (or passphrase_file in the profile)"
        )
    else:
        hint = f"check the passphrase (set by {settings.source('passphrase')})"
    return CryptoError(exc.message, hint)


# ------------------------------------------------------------------- loading

# Certificates loaded in this process, by what they were loaded from (see _memo_key).
_LOADED: dict[tuple[Any, ...], ClientCertificate] = {}
_LOADED_LOCK = threading.Lock()


def _stat_signature(path: Path | None) -> tuple[Any, ...] | None:
    if path is None:
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _memo_key(settings: Settings) -> tuple[Any, ...] | None:
    """What a loaded certificate depends on; None when a file cannot be examined."""
    cert_sig = _stat_signature(settings.certificate)
    if cert_sig is None:
        return None
    explicit = settings.key_given_for_certificate
    key_sig = _stat_signature(settings.private_key) if settings.private_key else None
    if settings.private_key is not None and key_sig is None:
        return None
    passphrase = hashlib.sha256(settings.passphrase).digest() if settings.passphrase else None
    return (
        str(settings.certificate),
        cert_sig,
        str(settings.private_key) if settings.private_key else None,
        key_sig,
        explicit,
        passphrase,
    )


def load(settings: Settings, *, now: dt.datetime | None = None) -> ClientCertificate:
    """Open and check the certificate (and key) ``settings`` name, once per process.

    Accepts a certificate with a separate key, a combined key+certificate PEM, or a
    PFX; an encrypted key or PFX is opened with ``settings.passphrase``. The result is
    kept for the rest of the process while the files are unchanged, so a later call
    for the same files (from any Settings object) parses nothing.

    Args:
        settings: resolved settings.
        now: check the dates against this time instead of the clock (never memoised).

    Raises:
        ConfigError: no certificate configured, file missing, no key, key mismatch,
            expired or not yet valid.
        CryptoError: unreadable or malformed file, wrong or missing passphrase,
            non-RSA key.
    """
    if settings.certificate is None:
        raise ConfigError(
            "no certificate configured",
            "give --certificate, AZURE_CLIENT_CERTIFICATE_PATH, or set it in the profile",
        )
    key = _memo_key(settings) if now is None else None
    if key is not None:
        with _LOADED_LOCK:
            loaded = _LOADED.get(key)
        if loaded is not None:
            _check_dates(loaded.certificate, loaded.path, loaded.sha1, _now(), settings.profile)
            return loaded
    loaded = _load(settings, now=now)
    if key is not None and _memo_key(settings) == key:
        with _LOADED_LOCK:
            _LOADED[key] = loaded
    return loaded


def _read(path: Path, what: str, source: str) -> bytes:
    from graphkit.files import read_bytes

    try:
        return read_bytes(path, f"{what} file")
    except InputError as exc:
        raise ConfigError(
            f"{what} {path} (set by {source}) cannot be read: {exc.message}",
            exc.hint or "check the path",
        ) from None


def _load(settings: Settings, *, now: dt.datetime | None) -> ClientCertificate:
    from graphkit import crypto

    assert settings.certificate is not None
    cert_path = settings.certificate
    data = _read(cert_path, "certificate", settings.source("certificate"))
    cert_part, key_block = _split_key_block(data)
    if b"-----BEGIN CERTIFICATE-----" not in cert_part:
        cert_part, key_block = data, None  # let crypto explain what the file holds
    explicit = settings.key_given_for_certificate
    try:
        bundle = crypto.load_certificate_bundle(
            cert_part, settings.passphrase, source=f"certificate {cert_path}"
        )
        key = bundle.key
        if key_block is not None and not explicit:
            key = _load_key(key_block, settings.passphrase, f"certificate {cert_path}")
    except CryptoError as exc:
        raise _passphrase_advice(exc, settings) from None
    holds_key = key is not None
    # The separate key: when given with this certificate, or the file holds none.
    separate = settings.private_key is not None and (explicit or key is None)
    if separate:
        assert settings.private_key is not None
        key_data = _read(settings.private_key, "private key", settings.source("private_key"))
        try:
            key = _load_key(key_data, settings.passphrase, f"private key {settings.private_key}")
        except CryptoError as exc:
            raise _passphrase_advice(exc, settings) from None
    cert = bundle.certificate
    if key is not None and not crypto.key_matches_certificate(key, cert):
        # In a combined file the leaf is the certificate matching the key.
        cert = next((c for c in bundle.chain if crypto.key_matches_certificate(key, c)), cert)
    if key is None:
        raise ConfigError(
            f"certificate {cert_path} holds no private key",
            "give the key with --private-key (or private_key in the profile), or use a "
            "combined key+certificate PEM or a PFX",
        )
    tp = crypto.thumbprints(cert)
    if not crypto.key_matches_certificate(key, cert):
        key_file = settings.private_key if separate else cert_path
        raise ConfigError(
            f"private key {key_file} does not match certificate {cert_path} (SHA-1 {tp['sha1']})",
            "give the key the certificate was made from",
        )
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size > crypto.MAX_RSA_BITS:
        # Not RSA, or so large that msal's own load of it would check it for a minute.
        crypto.require_rsa(key, f"the key for certificate {cert_path}")  # raises
    # The size is checked by check(): loaded alone, a short key is left for the
    # identity platform to refuse (AADSTS50032), as it would.
    _check_dates(cert, cert_path, tp["sha1"], now or _now(), settings.profile)
    try:
        return ClientCertificate(
            path=cert_path,
            certificate=cert,
            certificate_pem=crypto.dump_certificate(cert).decode("ascii"),
            private_key=key,
            sha1=tp["sha1"],
            sha256=tp["sha256"],
            key_bits=int(key.key_size),
            form=bundle.form,
            holds_key=holds_key or key_block is not None,
        )
    except ValueError as exc:  # pragma: no cover - cryptography refusing to serialise
        raise CryptoError(f"cannot use the certificate {cert_path}: {exc}") from None


def _check_dates(
    cert: Any, path: Path, sha1: str, when: dt.datetime, profile: str | None = None
) -> None:
    if when > cert.not_valid_after_utc:
        raise ConfigError(
            f"certificate {path} (SHA-1 {sha1}) expired on {cert.not_valid_after_utc:%Y-%m-%d}",
            # A profile's: the advice every expiry message of a profile gives (README,
            # Days left); flags alone: a new certificate, uploaded.
            renew_step(profile, expired=True)
            if profile
            else "make a new one with `graphkit selfsign` and upload it to the app registration",
        )
    if when < cert.not_valid_before_utc:
        raise ConfigError(
            f"certificate {path} is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            "check this computer's clock, or wait",
        )


# ------------------------------------------------------ the record of checks


def _files_digest(settings: Settings) -> str | None:
    """SHA-256 over the certificate file and the separate key file (if any), and how
    they pair; None when one cannot be read (the full check then says why)."""
    digest = hashlib.sha256(b"graphkit certificate check v2\0")
    digest.update(b"explicit" if settings.key_given_for_certificate else b"fallback")
    from graphkit.files import read_bytes

    try:
        for path in (settings.certificate, settings.private_key):
            if path is None:
                digest.update(b"-")
                continue
            data = read_bytes(path)  # a regular file of bounded size, or InputError
            digest.update(b"F%d:" % len(data))
            digest.update(data)
    except InputError:
        return None
    return digest.hexdigest()


def _read_checks(path: Path) -> dict[str, Any]:
    import json

    from graphkit.files import read_private

    raw = read_private(path)  # planted records would vouch for a certificate unchecked
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("version") != _CHECKS_VERSION:
        return {}
    checks = data.get("checks")
    return checks if isinstance(checks, dict) else {}


def _facts_from_record(record: Any, path: Path) -> CertificateFacts | None:
    if not isinstance(record, dict):
        return None
    try:
        return CertificateFacts(
            path=path,
            sha1=str(record["sha1"]),
            sha256=str(record["sha256"]),
            not_before=dt.datetime.fromtimestamp(float(record["not_before"]), dt.UTC),
            not_after=dt.datetime.fromtimestamp(float(record["not_after"]), dt.UTC),
            key_bits=int(record["key_bits"]),
            holds_key=bool(record["holds_key"]),
        )
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


def _record_check(cache_dir: Path, digest: str, cert: ClientCertificate) -> None:
    """Add ``cert``'s facts under ``digest``; failures are ignored (it is a cache)."""
    import json

    from graphkit.files import PRIVATE, atomic_write, ensure_private_dir, not_private

    if not_private(cache_dir):
        return  # the token cache refuses this directory too (token_cache.private_dir)
    path = cache_dir / CERTIFICATE_CHECKS_FILE
    record = {
        "sha1": cert.sha1,
        "sha256": cert.sha256,
        "not_before": cert.not_before.timestamp(),
        "not_after": cert.not_after.timestamp(),
        "key_bits": cert.key_bits,
        "holds_key": cert.holds_key,
    }
    checks: dict[str, Any] = {digest: record}
    for key, value in _read_checks(path).items():
        if key != digest and len(checks) < _MAX_CHECKS:
            checks[key] = value
    text = json.dumps({"version": _CHECKS_VERSION, "checks": checks}, indent=1)
    try:
        ensure_private_dir(cache_dir)
        atomic_write(path, text.encode("utf-8"), mode=PRIVATE, force=True)
    except Exception:  # nosec B110  # a lost record costs one full check next time
        pass


def check(
    settings: Settings,
    *,
    cache_dir: Path | None = None,
    now: dt.datetime | None = None,
    strict: bool = False,
) -> ClientCertificate | CertificateFacts:
    """The settings' certificate, checked as :func:`load` checks it (and with
    ``strict``, its key size too).

    When the certificate file (and the separate key file, if any) are byte for byte
    the ones an earlier full check recorded in ``cache_dir``, and the certificate's
    dates still hold, that check's facts are returned and nothing is parsed.
    Otherwise the files are loaded in full (raising as :func:`load` does) and, unless
    they changed meanwhile, the result is recorded. A configured passphrase always
    means a full load: only decrypting the key tells whether it is right, and no
    verifier of it is stored.

    Args:
        settings: resolved settings.
        cache_dir: where checks are recorded (None: always a full load, no files).
        now: check the dates against this time (a full load, nothing recorded).
        strict: refuse an RSA key shorter than Entra ID accepts (without it such a
            key is left for the identity platform to refuse, AADSTS50032, as it would).

    Raises:
        ConfigError, CryptoError: as :func:`load`; with ``strict``, CryptoError for a
            short key.
    """
    use_record = (
        cache_dir is not None
        and now is None
        and settings.passphrase is None
        and settings.certificate is not None
    )
    digest = None
    if use_record:
        assert cache_dir is not None and settings.certificate is not None
        key = _memo_key(settings)
        with _LOADED_LOCK:
            loaded = _LOADED.get(key) if key is not None else None
        if loaded is None:
            digest = _files_digest(settings)
            if digest is not None:
                path = cache_dir / CERTIFICATE_CHECKS_FILE
                record = _read_checks(path).get(digest)
                facts = _facts_from_record(record, settings.certificate)
                if (
                    facts is not None
                    and (facts.key_bits >= MIN_RSA_BITS or not strict)
                    and facts.not_before <= _now() <= facts.not_after
                ):
                    return facts
    cert = load(settings, now=now)
    if strict and cert.key_bits < MIN_RSA_BITS:
        from graphkit import crypto

        crypto.require_rsa(cert.certificate.public_key(), f"the key of certificate {cert.path}")
    if digest is not None and _files_digest(settings) == digest:
        assert cache_dir is not None
        _record_check(cache_dir, digest, cert)
    return cert


# ------------------------------------------------------------------ days left
#
# One rule for every command (thumbprint, doctor, init, config, token/query warnings).
# Here rather than in crypto.py: the warm token path warns of expiry without importing
# cryptography.


def renew_step(profile: str | None = None, *, expired: bool = False) -> str:
    """The next step every expiry message names (the profile filled in when known).

    A certificate that still works is renewed by ``graphkit rotate``: its proof of
    possession must be signed by a valid certificate of the app, so an expired one
    needs a new pair registered by an administrator instead.
    """
    name = profile or "NAME"
    if not expired:
        return (
            f"renew it with `graphkit rotate --profile {name}` (a new pair, registered with "
            "a proof from the current one; the old one removed once the new one works)"
        )
    return (
        f"make a new pair with `graphkit init --profile {name} --new-key`, then register it "
        "with `graphkit cert add --admin CERT` or upload it in the portal (an expired "
        "certificate cannot sign the proof `graphkit rotate` needs)"
    )


RENEW_STEP = renew_step()


class DaysLeft:
    """Whole days until a certificate expires, or since it did.

    ``days`` counts whole days left, rounded down (a certificate valid for 365 days
    from now has 364 full days and some hours: 364), and ``-N`` when it expired N
    whole days ago (0 within the day after expiry, with ``expired`` set). ``str()``
    gives the words every command prints.
    """

    __slots__ = ("days", "expired")  # a plain class: a dataclass costs import time

    def __init__(self, days: int, expired: bool) -> None:
        self.days = days
        self.expired = expired

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DaysLeft) and (self.days, self.expired) == (
            other.days,
            other.expired,
        )

    def __hash__(self) -> int:
        return hash((self.days, self.expired))

    def __repr__(self) -> str:
        return f"DaysLeft({self.days}, expired={self.expired})"

    def __str__(self) -> str:
        if self.expired:
            ago = -self.days
            return (
                "expired today" if ago == 0 else f"expired {ago} day{'s' if ago != 1 else ''} ago"
            )
        if self.days == 0:
            return "expires today"
        return f"{self.days} day{'s' if self.days != 1 else ''} left"

    def expires_phrase(self) -> str:
        """``expires in N days`` / ``expires today`` / ``expired N days ago``."""
        if self.expired or self.days == 0:
            return str(self)
        return f"expires in {self.days} day{'s' if self.days != 1 else ''}"


def days_left(not_after: dt.datetime, now: dt.datetime | None = None) -> DaysLeft:
    """How long until ``not_after``: see :class:`DaysLeft`."""
    seconds = (not_after - (now or _now())).total_seconds()
    if seconds >= 0:
        return DaysLeft(int(seconds // 86400), False)
    return DaysLeft(-int(-seconds // 86400), True)


def expiry_warning_due(
    not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime | None = None
) -> bool:
    """Whether to warn that a certificate is about to expire: from 30 days before, or
    from the last third of its lifetime when that is shorter (a 30-day certificate
    does not warn from its first day)."""
    lifetime = not_after - not_before
    window = min(dt.timedelta(days=EXPIRY_WARNING_DAYS), lifetime / 3)
    now = now or _now()
    return not_after - window <= now <= not_after


def expiry_warning(
    cert: ClientCertificate | CertificateFacts,
    *,
    now: dt.datetime | None = None,
    profile: str | None = None,
) -> str | None:
    """A warning when ``cert`` is about to expire, else None.

    It starts 30 days before expiry, or at the last third of the certificate's
    lifetime when that is shorter (:func:`expiry_warning_due`); the days are counted
    by :func:`days_left`, as every command counts them, and the message names the one
    next step (:func:`renew_step`).
    """
    if not expiry_warning_due(cert.not_before, cert.not_after, now):
        return None
    left = days_left(cert.not_after, now)
    return (
        f"certificate {cert.path} (SHA-1 {cert.sha1}) {left.expires_phrase()} "
        f"({cert.not_after:%Y-%m-%d %H:%M} UTC): {renew_step(profile)}"
    )
