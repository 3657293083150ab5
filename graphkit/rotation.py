"""``graphkit rotate``: replace a profile's certificate with a new one, without a gap.

Library code: returns a :class:`RotationResult` or raises; nothing here prints. The
steps, each recorded in a small state file (``<state dir>/rotation/<profile>.json``,
0600, paths and thumbprints only) before the next one starts:

1. ``made``: a new RSA key and self-signed certificate under NEW file names beside the
   current ones (nothing overwritten; an interruption while writing removes them);
2. ``added``: ``addKey`` with a proof signed by the current certificate;
3. ``verified``: a token obtained with the new certificate works (waiting out
   propagation, bounded, with a countdown);
4. ``switched``: the profile points at the new pair (one atomic write of the config);
5. ``removed``: ``removeKey`` of the old certificate (skipped with ``keep_old``);
6. ``renamed``: the old files are kept, renamed with their validity dates.

Until step 4 the profile stays on the old certificate, which is still registered;
from step 4 on it is on the new one, which has been seen to work. A failure or Ctrl-C
at any point leaves such a profile, and the error says in one line what the app holds
now; running ``rotate`` again resumes where it stopped (it never adds a third
certificate).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphkit.errors import (
    AuthError,
    ConfigError,
    ExitCode,
    GraphkitError,
    NotFoundError,
    OutcomeUnknownError,
)
from graphkit.onboarding import DEFAULT_WAIT, InitHooks

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.certificates import ClientCertificate
    from graphkit.graph import GraphClient
    from graphkit.settings import Settings

__all__ = [
    "STEPS",
    "RotateRequest",
    "RotationError",
    "RotationHooks",
    "RotationResult",
    "known_key_ids",
    "remember_key_id",
    "rotate",
]

STEPS = ("made", "added", "verified", "switched", "removed", "renamed")
_ADMIN_STEP = "have an administrator add a new certificate with `graphkit cert add FILE --admin`"


class RotationError(GraphkitError):
    """A rotation stopped (an error, or Ctrl-C): the message says what the app holds now.

    Its exit status is the cause's (130 for an interruption).
    """

    def __init__(self, message: str, hint: str | None, exit_code: ExitCode) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


@dataclass
class RotateRequest:
    """What to rotate, and how.

    Args:
        profile: the saved profile (None: the default profile).
        days: validity of the new certificate.
        size: RSA key size of the new key.
        keep_old: leave the old certificate registered (step 5 skipped).
        if_expiring_within: do nothing while the certificate has more days than this
            left (None: rotate now).
        object_id: the application's object id (else the profile's, else from Graph).
        dry_run: say what would be done; no request is sent, no file written.
        wait: at most this many seconds for the new certificate to be accepted.
    """

    profile: str | None = None
    days: int = 365
    size: int = 2048
    keep_old: bool = False
    if_expiring_within: int | None = None
    object_id: str | None = None
    dry_run: bool = False
    wait: float = DEFAULT_WAIT


class RotationHooks:
    """Progress of :func:`rotate`; the CLI subclasses it to show it on stderr."""

    def step(self, message: str) -> None:
        """A progress line."""

    def waiting(self, retry_in: float, left: float, attempt: int) -> None:
        """About once a second while the new certificate is not yet accepted."""

    def done(self, step: str) -> None:
        """Step ``step`` (one of :data:`STEPS`) is complete and recorded."""


@dataclass
class RotationResult:
    profile: str
    rotated: bool
    reason: str  # why nothing was done, or what was done
    old_thumbprint: str
    days_left: int
    new_thumbprint: str | None = None
    new_certificate: Path | None = None
    new_private_key: Path | None = None
    new_key_id: str | None = None
    old_removed: bool = False
    renamed: dict[str, str] = field(default_factory=dict)  # old path -> kept as
    dry_run: bool = False
    plan: list[str] = field(default_factory=list)
    waited: float = 0.0
    also_switched: list[str] = field(default_factory=list)  # profiles sharing the old pair

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("new_certificate", "new_private_key"):
            data[key] = str(data[key]) if data[key] else None
        return data


# ------------------------------------------------------------------- state


@dataclass
class _State:
    """The rotation in progress for one profile, and keyIds learnt from earlier ones."""

    path: Path
    stage: str | None = None  # the last step done, None: no rotation in progress
    old: dict[str, Any] = field(default_factory=dict)  # thumbprint, certificate, private_key
    new: dict[str, Any] = field(default_factory=dict)  # + key_id
    object_id: str | None = None
    key_ids: dict[str, str] = field(default_factory=dict)  # SHA-1 -> keyId
    client_id: str | None = None  # the app object_id and key_ids are of

    def of_app(self, client_id: str | None) -> _State:
        """What was learnt of another app (the profile was pointed elsewhere since) is
        forgotten; a file from before client ids were recorded is taken as this app's."""
        if self.client_id is not None and self.client_id != client_id:
            self.stage, self.old, self.new = None, {}, {}
            self.object_id, self.key_ids = None, {}
        self.client_id = client_id
        return self

    @classmethod
    def load(cls, profile: str) -> _State:
        from graphkit.files import read_trusted
        from graphkit.settings import state_dir

        path = Path(state_dir()) / "rotation" / f"{profile}.json"
        raw = read_trusted(path)
        state = cls(path)
        if not raw:
            return state
        try:
            data = json.loads(raw)
        except ValueError:
            return state  # unreadable: as if none (the next save replaces it)
        if not isinstance(data, dict):
            return state

        def strings(value: Any) -> dict[str, str]:
            if not isinstance(value, dict):
                return {}
            return {str(k): v for k, v in value.items() if isinstance(v, str)}

        state.key_ids = strings(data.get("key_ids"))
        oid = data.get("object_id")
        state.object_id = oid if isinstance(oid, str) else None
        cid = data.get("client_id")
        state.client_id = cid if isinstance(cid, str) else None
        state.old, state.new = strings(data.get("old")), strings(data.get("new"))
        stage = data.get("stage")
        # A rotation in progress names both pairs' files (and the old one's dates); one
        # that does not is not resumed.
        needed_old = {"thumbprint", "certificate", "not_before", "not_after"}
        needed_new = {"thumbprint", "certificate", "private_key"}
        complete = needed_old <= set(state.old) and needed_new <= set(state.new)
        state.stage = stage if stage in STEPS and complete else None
        if state.stage is not None:
            try:
                for name in ("not_before", "not_after"):
                    dt.datetime.fromisoformat(state.old[name])
            except ValueError:
                state.stage = None
        return state

    def save(self) -> None:
        from graphkit.files import PRIVATE, atomic_write, ensure_private_dir

        ensure_private_dir(self.path.parent)
        data = {
            "stage": self.stage,
            "old": self.old,
            "new": self.new,
            "object_id": self.object_id,
            "key_ids": self.key_ids,
            "client_id": self.client_id,
        }
        atomic_write(self.path, json.dumps(data, indent=2).encode(), mode=PRIVATE, force=True)

    def finish(self) -> None:
        self.stage, self.old, self.new = None, {}, {}
        self.save()


def known_key_ids(profile: str | None, client_id: str | None) -> dict[str, str]:
    """SHA-1 -> keyId of the certificates graphkit saw registered on app ``client_id``
    for ``profile`` (by app create, cert add or rotate); they may be stale, and an
    unknown one is not absent."""
    return dict(_State.load(profile).of_app(client_id).key_ids) if profile else {}


def remember_key_id(
    profile: str | None, client_id: str | None, sha1: str, key_id: str | None
) -> None:
    """Record the keyId Graph gave certificate ``sha1`` on ``profile``'s app."""
    if profile and key_id:
        state = _State.load(profile).of_app(client_id)
        state.key_ids[sha1] = key_id
        state.save()


def _describe(state: _State, keep_old: bool) -> str:
    """What the app and the profile hold now, in one phrase."""
    old = state.old.get("thumbprint", "?")
    new = state.new.get("thumbprint", "?")
    if state.stage is None:
        return f"nothing was changed: the profile still uses certificate {old}"
    if state.stage == "made":
        return (
            f"a new key and certificate {new} were written ({state.new.get('certificate')}) "
            f"but not registered; the profile still uses {old}: run graphkit rotate again "
            "to finish"
        )
    if state.stage in ("added", "verified"):
        return (
            f"the new certificate {new} is registered but not yet in use; the profile "
            f"still uses {old}: run graphkit rotate again to finish"
        )
    if state.stage == "switched" and not keep_old:
        return (
            f"the profile now uses the new certificate {new}; the old one {old} is still "
            "registered (unless the last request went through): run graphkit rotate again "
            "to remove it"
        )
    return (
        f"the profile now uses the new certificate {new}; the old files are not renamed "
        "yet: run graphkit rotate again to finish"
    )


# ------------------------------------------------------------------- helpers


# What rotate changes is the profile's own app and certificate: the environment may not
# swap those. The hosts, cloud, CA and passphrase from the environment apply as they do
# for every other command (the README points graphkit at the emulator that way).
_PROFILE_ONLY = ("tenant", "client_id", "certificate")


def profile_settings(profile: str | None) -> Settings:
    """The saved profile's tenant, app and certificate as stored: environment variables
    that would override them play no part (rotate changes the profile itself); the
    hosts, cloud, CA bundle and passphrase from the environment still apply."""
    from graphkit.settings import ENV_VARS, resolve_settings

    hidden = {var for name in _PROFILE_ONLY for var in ENV_VARS[name]}
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    settings = resolve_settings(profile=profile, env=env)
    if settings.profile is None:
        raise ConfigError(
            "rotate works on a saved profile, and none is selected",
            "give --profile NAME (see `graphkit config list`), or create one with `graphkit init`",
        )
    return settings


def _current_certificate(settings: Settings) -> ClientCertificate:
    """The profile's certificate and key; an expired one is refused with the way out."""
    from graphkit import certificates, crypto
    from graphkit.files import read_bytes

    try:
        return certificates.load(settings)
    except ConfigError:
        if settings.certificate is None:
            raise
        try:
            bundle = crypto.load_certificate_bundle(
                read_bytes(settings.certificate, "certificate"),
                settings.passphrase,
                key_optional=True,
            )
        except GraphkitError:
            raise  # the load's own error names the file
        end = bundle.certificate.not_valid_after_utc
        if end < dt.datetime.now(dt.UTC):
            sha1 = crypto.thumbprints(bundle.certificate)["sha1"]
            raise ConfigError(
                f"the profile's certificate {sha1} expired on {end:%Y-%m-%d}, so it cannot "
                "sign the proof addKey needs",
                _ADMIN_STEP,
            ) from None
        raise


def _with_pair(settings: Settings, cert_path: Path, key_path: Path) -> Settings:
    sources = dict(settings.sources)
    sources["private_key"] = sources.get("certificate", "profile")
    return settings.replace(certificate=cert_path, private_key=key_path, sources=sources)


def _profile_files(exclude: str) -> dict[str, list[str]]:
    """Profile name -> the certificate and key files it names (resolved), but ``exclude``."""
    from graphkit.settings import config_path, read_config

    found: dict[str, list[str]] = {}
    for name, values in read_config(config_path()).get("profiles", {}).items():
        if name == exclude:
            continue
        paths = [values.get(k) for k in ("certificate", "private_key")]
        found[name] = [str(Path(p).expanduser().resolve()) for p in paths if isinstance(p, str)]
    return found


def _sharing(profile: str, certificate: str, *, same_app: str | None) -> list[str]:
    """The other profiles of app ``same_app`` whose certificate is the file ``certificate``."""
    from graphkit.settings import config_path, read_config

    wanted = str(Path(certificate).expanduser().resolve())
    names = []
    for name, values in read_config(config_path()).get("profiles", {}).items():
        cert = values.get("certificate")
        if name == profile or not isinstance(cert, str) or values.get("client_id") != same_app:
            continue
        if str(Path(cert).expanduser().resolve()) == wanted:
            names.append(name)
    return sorted(names)


def _dated_name(path: Path, start: dt.datetime, end: dt.datetime) -> Path:
    """``app.crt`` -> ``app-20260101-20270101.crt`` (a free name, ``-2``... if taken)."""
    base = f"{path.stem}-{start:%Y%m%d}-{end:%Y%m%d}"
    candidate, n = path.with_name(f"{base}{path.suffix}"), 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{base}-{n}{path.suffix}")
    return candidate


def _keep_renamed(paths: list[Path], start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """Rename each existing file to its dated name, never replacing anything (a hard
    link to the new name, then the old name removed)."""
    renamed: dict[str, str] = {}
    for path in paths:
        if not path.is_file():
            continue  # renamed by an earlier, interrupted run
        target = _dated_name(path, start, end)
        os.link(path, target)  # fails if the target appeared meanwhile: nothing replaced
        path.unlink()
        renamed[str(path)] = str(target)
    return renamed


class _Waiting(InitHooks):
    """:func:`onboarding.acquire_with_wait`'s countdown, sent to the rotation's hooks."""

    def __init__(self, hooks: RotationHooks) -> None:
        self._hooks = hooks

    def waiting(self, retry_in: float, left: float, attempt: int) -> None:
        self._hooks.waiting(retry_in, left, attempt)


def _not_registered(settings: Settings, sha1: str) -> ConfigError:
    return ConfigError(
        f"the profile's certificate {sha1} is not registered on app {settings.client_id}, "
        "so it cannot sign the proof addKey needs",
        _ADMIN_STEP,
    )


def _plan(
    settings: Settings, request: RotateRequest, state: _State, oid: str | None, sha1: str
) -> list[str]:
    app = f"/applications/{oid or '{object id}'}"
    stage = state.stage
    plan: list[str] = []
    if oid is None:
        plan.append(f"GET /applications(appId='{settings.client_id}')?$select=id")
    if stage is None:
        plan.append(f"GET {app}?$select=appId,keyCredentials,passwordCredentials")
        plan.append(
            f"write a new {request.size}-bit RSA key and a {request.days}-day certificate "
            f"beside {settings.certificate} (new file names)"
        )
    if stage in (None, "made"):
        plan.append(f"POST {app}/addKey (proof signed by {sha1})")
    if stage in (None, "made", "added"):
        plan.append("a token with the new certificate (waiting while it propagates)")
        plan.append(f"point profile {settings.profile!r} at the new key and certificate")
        assert settings.profile is not None
        cert = state.old.get("certificate") or str(settings.certificate)
        for name in _sharing(settings.profile, cert, same_app=settings.client_id):
            plan.append(f"point profile {name!r} (the same app and certificate) at them too")
    if stage in (None, "made", "added", "switched") and not request.keep_old:
        plan.append(f"POST {app}/removeKey (the old certificate)")
    plan.append("rename the old key and certificate files with their dates")
    return plan


# --------------------------------------------------------------------- rotate


def rotate(
    request: RotateRequest,
    hooks: RotationHooks | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: dt.datetime | None = None,
) -> RotationResult:
    """Rotate the profile's certificate (see the module docstring for the steps).

    Args:
        request: what to rotate.
        hooks: progress, countdown, and a call after each step.
        sleep, clock: how the wait for the new certificate sleeps and measures.
        now: the time the certificate's days left are counted from.

    Raises:
        ConfigError: no profile; the current certificate expired or is not registered;
            the object id cannot be found.
        RotationError: a step failed or was interrupted; the message says what the app
            holds now and what to run.
    """
    if request.dry_run:  # it only reads
        return _rotate(request, hooks, sleep=sleep, clock=clock, now=now)
    profile = profile_settings(request.profile).profile
    assert profile is not None
    with _one_at_a_time(profile):
        return _rotate(request, hooks, sleep=sleep, clock=clock, now=now)


@contextlib.contextmanager
def _one_at_a_time(profile: str) -> Any:
    """One rotation of ``profile`` at a time: two overlapping (a cron run and a manual
    one) would each add a certificate and race on the profile and the state file. A
    kernel lock on an open file, gone with its process (token_cache's)."""
    from graphkit.files import ensure_private_dir
    from graphkit.settings import state_dir
    from graphkit.token_cache import acquisition_lock

    directory = Path(state_dir()) / "rotation"
    ensure_private_dir(directory)
    with acquisition_lock(directory, f"rotate-{profile}", timeout=0) as held:
        if not held:
            raise GraphkitError(
                f"another graphkit rotate of profile {profile!r} is running; nothing was "
                "changed by this one",
                "let it finish (run graphkit rotate again afterwards if it was interrupted)",
            )
        yield


def _rotate(
    request: RotateRequest,
    hooks: RotationHooks | None,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    now: dt.datetime | None,
) -> RotationResult:
    hooks = hooks or RotationHooks()
    settings = profile_settings(request.profile)
    assert settings.profile is not None
    profile = settings.profile
    current = _current_certificate(settings)
    state = _State.load(profile).of_app(settings.client_id)
    if state.stage is not None and current.sha1 not in (
        state.old.get("thumbprint"),
        state.new.get("thumbprint"),
    ):
        state.stage = None  # the profile was changed by hand since: start afresh
    left = current.days_left(now)
    result = RotationResult(
        profile=profile,
        rotated=False,
        reason="",
        old_thumbprint=state.old.get("thumbprint", current.sha1),
        days_left=left.days,
    )
    if state.stage is None and request.if_expiring_within is not None:
        margin = dt.timedelta(days=request.if_expiring_within)
        if current.not_after - (now or dt.datetime.now(dt.UTC)) > margin:
            result.reason = (
                f"certificate {current.sha1} has {left.days} days left, more than "
                f"{request.if_expiring_within}: nothing to do"
            )
            return result
    if request.object_id:  # refused now, as a run would refuse it, dry or not
        from graphkit.settings import check_object_id

        request = dataclasses.replace(request, object_id=check_object_id(request.object_id))
    oid = request.object_id or settings.object_id or state.object_id
    if request.dry_run:
        result.dry_run = True
        result.plan = _plan(settings, request, state, oid, current.sha1)
        result.reason = "dry run: nothing was sent or written"
        return result

    from graphkit.graph import GraphClient

    try:
        with GraphClient.from_settings(settings, validate=False, sleep=sleep) as client:
            _run(request, hooks, settings, current, state, result, client, sleep, clock)
    except KeyboardInterrupt:
        raise RotationError(
            f"rotation interrupted: {_describe(state, request.keep_old)}",
            None,
            ExitCode.INTERRUPTED,
        ) from None
    except GraphkitError as exc:
        if isinstance(exc, AuthError) and exc.code == 700027 and state.stage is None:
            raise _not_registered(settings, current.sha1) from None
        if state.stage is None:
            raise  # nothing changed: the error as it is
        cause = str(exc)
        if isinstance(exc, OutcomeUnknownError):  # a rerun looks before it resends
            cause = f"{exc.message}: it may have been applied, and a rerun checks which"
        raise RotationError(
            f"rotation stopped: {cause}; {_describe(state, request.keep_old)}",
            None,
            exc.exit_code,
        ) from None
    return result


def _run(
    request: RotateRequest,
    hooks: RotationHooks,
    settings: Settings,
    current: ClientCertificate,
    state: _State,
    result: RotationResult,
    client: GraphClient,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    from graphkit import app_keys, certificates, onboarding
    from graphkit import settings as profiles
    from graphkit.errors import PermissionDeniedError

    assert settings.profile is not None
    profile = settings.profile

    def values_for(result: RotationResult) -> dict[str, str]:
        return {
            "certificate": str(result.new_certificate),
            "private_key": str(result.new_private_key),
        }

    oid = app_keys.find_object_id(
        client, settings, request.object_id or settings.object_id or state.object_id
    )
    state.object_id = oid
    path = app_keys.application_path(object_id=oid)

    if state.stage in (None, "made"):
        # What the app holds: the current certificate's keyId (to remove it later), and
        # whether an interrupted run's addKey went through after all.
        registered: dict[str, str] | None = None
        try:
            listed = app_keys.list_certificates(client, path, client_id=settings.client_id)
            registered = {c.thumbprint: c.key_id for c in listed if c.thumbprint}
        except PermissionDeniedError:
            if not request.keep_old and current.sha1 not in state.key_ids:
                raise ConfigError(
                    f"app {settings.client_id} may not read its own registration, so rotate "
                    f"cannot find the keyId of the certificate {current.sha1} to remove it",
                    "grant it Application.Read.All, or rotate with --keep-old and then "
                    f"remove the old one with `graphkit cert remove {current.sha1} --admin`",
                ) from None
        if registered is not None:
            if state.stage is None and current.sha1 not in registered:
                raise _not_registered(settings, current.sha1)
            state.key_ids.update({k: v for k, v in registered.items() if k})

    if state.stage is None:
        state.old = {
            "thumbprint": current.sha1,
            "certificate": str(settings.certificate),
            **({"private_key": str(settings.private_key)} if settings.private_key else {}),
            "not_before": current.not_before.isoformat(),
            "not_after": current.not_after.isoformat(),
        }
        directory = Path(str(settings.certificate)).parent
        try:
            onboarding._check_key_directory(directory)
        except GraphkitError:
            directory = onboarding.credentials_dir(profile)
        hooks.step(f"Generating a {request.size}-bit RSA key and a {request.days}-day certificate")
        txn = onboarding._Transaction()
        with txn.guard():
            creds = onboarding.create_credentials(
                txn,
                directory,
                profile,
                size=request.size,
                days=request.days,
                passphrase=settings.passphrase,
            )
            state.new = {
                "thumbprint": creds.thumbprint,
                "certificate": str(creds.cert_path),
                "private_key": str(creds.key_path),
            }
            state.stage = "made"
            state.save()
            txn.committed = True
        hooks.step(f"Wrote {creds.key_path} (mode 0600) and {creds.cert_path}")
        hooks.done("made")

    new_settings = _with_pair(
        settings, Path(state.new["certificate"]), Path(state.new["private_key"])
    )
    new = certificates.load(new_settings)
    result.new_thumbprint = new.sha1
    result.new_certificate = Path(state.new["certificate"])
    result.new_private_key = Path(state.new["private_key"])
    result.new_key_id = state.new.get("key_id")

    if state.stage == "made":
        key_id = state.key_ids.get(new.sha1)
        if key_id is None:
            hooks.step(
                f"Registering certificate {new.sha1} (addKey, proof signed by {current.sha1})"
            )
            answer = app_keys.add_key(
                client,
                oid,
                new.certificate,
                signer_key=current.private_key,
                signer_certificate=current.certificate,
            )
            key_id = str(answer.get("keyId") or "") or None
        state.new["key_id"] = key_id
        result.new_key_id = key_id
        if key_id:
            state.key_ids[new.sha1] = key_id
        state.stage = "added"
        state.save()
        hooks.done("added")

    if state.stage in ("added", "verified"):
        hooks.step(f"Waiting until Entra ID accepts certificate {new.sha1}")
        from graphkit.tokens import CertificateCredential

        _cred, _token, waited, _attempts = onboarding.acquire_with_wait(
            lambda: CertificateCredential(new_settings),
            wait=request.wait,
            hooks=_Waiting(hooks),
            sleep=sleep,
            clock=clock,
        )
        result.waited = waited
        hooks.done("verified")
        values = {**values_for(result), "object_id": oid}
        profiles.save_profile(profile, values, make_default=False)
        hooks.step(f"Profile {profile!r} now uses {result.new_certificate}")
        state.stage = "switched"
        state.save()
        hooks.done("switched")

    old_sha1 = str(state.old.get("thumbprint"))
    unremoved: str | None = None  # the keyId removeKey did not find, if still unsure
    if state.stage == "switched":
        # Other profiles of the same app on the old pair would be left on a removed
        # certificate and renamed files: they move to the new pair too.
        for name in _sharing(profile, str(state.old["certificate"]), same_app=settings.client_id):
            profiles.save_profile(name, values_for(result), make_default=False)
            hooks.step(f"Profile {name!r} (the same app and certificate) now uses it too")
            result.also_switched.append(name)
        if not request.keep_old:
            old_key_id = state.key_ids.get(old_sha1)
            if old_key_id is None:
                raise ConfigError(
                    f"the keyId of the old certificate {old_sha1} is not known",
                    f"remove it with `graphkit cert remove {old_sha1} --admin`",
                )
            hooks.step(f"Removing the old certificate {old_sha1} (removeKey)")
            result.old_removed = _remove_old(client, oid, old_sha1, old_key_id, new, settings)
            unremoved = None if result.old_removed else old_key_id
            state.key_ids.pop(old_sha1, None)
        state.stage = "removed"
        state.save()
        hooks.done("removed")

    if state.stage == "removed":
        old_files = [
            Path(p) for p in (state.old.get("certificate"), state.old.get("private_key")) if p
        ]
        start = dt.datetime.fromisoformat(str(state.old.get("not_before")))
        end = dt.datetime.fromisoformat(str(state.old.get("not_after")))
        in_use = {f: name for name, files in _profile_files(profile).items() for f in files}
        for used in [p for p in old_files if str(p.resolve()) in in_use]:
            hooks.step(f"Left {used} in place: profile {in_use[str(used.resolve())]} uses it")
        old_files = [p for p in old_files if str(p.resolve()) not in in_use]
        result.renamed = _keep_renamed(list(dict.fromkeys(old_files)), start, end)
        for old, kept in result.renamed.items():
            hooks.step(f"Kept {old} as {kept}")
        hooks.done("renamed")
        state.finish()
    result.rotated = True
    result.reason = f"rotated: certificate {old_sha1} replaced by {new.sha1}"
    if unremoved is not None:
        result.reason += (
            f"; the old one may still be registered (removeKey found no keyId "
            f"{unremoved}, and the app may not read its registration to check): see "
            f"`graphkit cert list --admin`, and remove it with "
            f"`graphkit cert remove {old_sha1} --admin`"
        )


def _remove_old(
    client: GraphClient,
    oid: str,
    sha1: str,
    key_id: str,
    new: ClientCertificate,
    settings: Settings,
) -> bool:
    """``removeKey`` of the old certificate; True once it is known to be gone.

    A 404 means no certificate has that keyId: an interrupted run removed it, or the
    recorded keyId is stale (the certificate was taken off and registered again). The
    registration, where the app may read it, says which; otherwise it is not claimed.
    """
    from graphkit import app_keys
    from graphkit.errors import PermissionDeniedError

    def remove(kid: str) -> None:
        app_keys.remove_key(
            client, oid, kid, signer_key=new.private_key, signer_certificate=new.certificate
        )

    try:
        remove(key_id)
        return True
    except NotFoundError:
        pass
    try:
        listed = app_keys.list_certificates(
            client, app_keys.application_path(object_id=oid), client_id=settings.client_id
        )
    except PermissionDeniedError:
        return False
    still = [c.key_id for c in listed if c.thumbprint == sha1 and c.key_id]
    for kid in still:
        with contextlib.suppress(NotFoundError):
            remove(kid)
    return True
