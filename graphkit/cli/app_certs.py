"""`graphkit cert list|add|remove` (the certificates registered on the app) and
`graphkit rotate` (replace the profile's certificate without a gap).

The library does the work (graphkit.app_keys, graphkit.rotation); this module parses,
asks nothing, and prints: data on stdout, progress on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from graphkit.cli import _connection
from graphkit.cli._common import OutputOpt, emit, output_format, say
from graphkit.cli._typer_internals import GraphkitTyper, LeanCommand
from graphkit.errors import ExitCode, InputError, NotFoundError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.graph import GraphClient
    from graphkit.settings import Settings

JsonOpt = Annotated[bool, typer.Option("--json", help="The same as -o json.")]
ObjectIdOpt = Annotated[
    str | None,
    typer.Option(
        "--object-id",
        help="The application's Object ID (portal: the app's Overview page); else the "
        "profile's object_id, else read from Graph.",
        show_default=False,
    ),
]
AdminOpt = Annotated[
    bool,
    typer.Option(
        "--admin",
        help="Sign an administrator in (device code) and read or PATCH the registration, "
        "instead of acting as the app itself.",
    ),
]
AdminClientOpt = Annotated[
    str | None,
    typer.Option(
        "--admin-client-id",
        help="With --admin: the public client to sign in through (default: Microsoft Graph "
        'Command Line Tools); it needs "Allow public client flows".',
        show_default=False,
    ),
]
_COLUMNS = "in_use,thumbprint,display_name,start,end,days_left,key_id"
# Delegated scopes --admin asks for: only what the calls need (PROTOCOL.md §6).
_READ_SCOPES = ("Application.Read.All",)
_WRITE_SCOPES = ("Application.ReadWrite.All",)


def _app_client(settings: Settings) -> GraphClient:
    """A Graph client with the app's own token (its current certificate)."""
    from graphkit.graph import GraphClient

    credential = _connection.credential_from_settings(settings)
    return GraphClient.from_settings(settings, credential=credential, validate=False)


def _admin_client(
    settings: Settings, scopes: tuple[str, ...], client_id: str | None
) -> GraphClient:
    """A Graph client acting as an administrator signed in with the device code flow:
    the code and where to enter it on stderr, then a countdown while it waits."""
    from graphkit import admin_signin

    tty = sys.stderr.isatty()

    def show_code(code: admin_signin.DeviceCode) -> None:
        say(f"Sign in as an administrator: {code.message}")

    def tick(left: float) -> None:
        if tty:
            sys.stderr.write(
                f"\r\x1b[2KWaiting for the sign-in ({int(left) // 60}:{int(left) % 60:02d} left)"
            )
            sys.stderr.flush()

    admin = admin_signin.sign_in(
        settings, scopes, client_id=client_id, on_code=show_code, on_tick=tick
    )
    if tty:
        sys.stderr.write("\r\x1b[2K")
    say(f"Signed in as {admin.user or 'the administrator'}.")
    return admin_signin.graph_client(settings, admin)


def _in_use(settings: Settings) -> str | None:
    """The SHA-1 of the profile's certificate, or None when it cannot be read."""
    from graphkit import certificates
    from graphkit.errors import GraphkitError

    if settings.certificate is None:
        return None
    try:
        return certificates.check(settings).sha1
    except GraphkitError:
        return None


def _normalise_thumbprint(value: str) -> str:
    """``ab:cd ...`` or ``abcd...`` -> ``ABCD...``; a keyId (GUID) is kept as it is."""
    from graphkit.settings import is_guid

    text = value.strip()
    if is_guid(text):
        return text.lower()
    hexed = text.replace(":", "").replace(" ", "").upper()
    if len(hexed) != 40 or any(c not in "0123456789ABCDEF" for c in hexed):
        raise UsageError(
            f"{value!r} is neither a SHA-1 thumbprint (40 hex digits) nor a keyId",
            "copy the thumbprint from `graphkit cert list` or the portal",
        )
    return hexed


def _load_certificate(path: Path) -> Any:
    """The certificate in FILE (PEM, DER, key+certificate PEM or PFX; no key needed)."""
    import datetime as dt

    from graphkit import crypto
    from graphkit.files import read_bytes

    bundle = crypto.load_certificate_bundle(
        read_bytes(path, "certificate"), None, source=f"certificate {path}", key_optional=True
    )
    cert = bundle.certificate
    crypto.require_rsa(cert.public_key(), f"certificate {path}")
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC):
        raise InputError(
            f"certificate {path} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
            "make a new one with `graphkit selfsign`",
        )
    return cert


# ------------------------------------------------------------------ cert list


@_connection.with_connection_flags
def list_certs(
    admin: AdminOpt = False,
    admin_client_id: AdminClientOpt = None,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    *,
    connection: _connection.Connection,
) -> None:
    """List the certificates registered on the app; * marks the one the profile uses.

    Read with the app's own token ($select=keyCredentials), which needs
    Application.Read.All (or the app owning itself); or, with --admin, as an
    administrator.
    """
    from graphkit import app_keys
    from graphkit import output as out

    fmt = output_format(output, as_json)
    settings = connection.settings(validate=not admin)
    in_use = _in_use(settings)
    client = (
        _admin_client(settings, _READ_SCOPES, admin_client_id) if admin else _app_client(settings)
    )
    with client:
        path = app_keys.application_path(client_id=settings.client_id, object_id=settings.object_id)
        rows = app_keys.list_certificates(client, path, in_use=in_use, client_id=settings.client_id)
    data = [r.as_dict() for r in rows]
    if fmt == "json" or fmt == "yaml":
        emit(data, fmt)
        return
    columns = _COLUMNS.split(",")  # `expired` is in days_left's sign
    rows_out = [{c: row[c] for c in columns} for row in data]
    if fmt == "table":
        for row in rows_out:
            row["in_use"] = "*" if row["in_use"] else ""
    out.write_items(rows_out, fmt, sys.stdout, select=_COLUMNS, note=say)
    if in_use and not any(r.in_use for r in rows):
        say(
            f"The profile's certificate {in_use} is not among them: tokens are refused "
            "(AADSTS700027) until it is added"
        )


# ------------------------------------------------------------------- cert add


@_connection.with_connection_flags
def add_cert(
    file: Annotated[Path, typer.Argument(help="The certificate to register (.crt/.cer/.pem).")],
    admin: AdminOpt = False,
    admin_client_id: AdminClientOpt = None,
    object_id: ObjectIdOpt = None,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    *,
    connection: _connection.Connection,
) -> None:
    """Register another certificate on the app: with addKey and a proof signed by the
    profile's current certificate (no permission needed), or, with --admin, by a PATCH
    that sends back every other certificate (for an app whose certificate expired)."""
    from graphkit import app_keys, certificates, crypto

    fmt = output_format(output, as_json)
    cert = _load_certificate(file)
    sha1 = crypto.thumbprints(cert)["sha1"]
    settings = connection.settings(validate=not admin)
    if admin:
        path = app_keys.application_path(client_id=settings.client_id, object_id=object_id)

        def with_new(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if any(r.thumbprint == sha1 for r in app_keys.certificates_from(keys)):
                raise InputError(
                    f"certificate {sha1} is already registered on app {settings.client_id}",
                    "see `graphkit cert list --admin`",
                )
            return [*keys, app_keys.key_credential(cert)]

        with _admin_client(settings, _WRITE_SCOPES, admin_client_id) as client:
            after = app_keys.patch_keys(client, path, with_new, client_id=settings.client_id)
        key_id = next(
            (r.key_id for r in app_keys.certificates_from(after) if r.thumbprint == sha1), None
        )
    else:
        with _app_client(settings) as client:
            oid = app_keys.find_object_id(client, settings, object_id)
            signer = certificates.load(settings)
            answer = app_keys.add_key(
                client,
                oid,
                cert,
                signer_key=signer.private_key,
                signer_certificate=signer.certificate,
            )
        key_id = answer.get("keyId")
        from graphkit import rotation

        rotation.remember_key_id(
            settings.profile, settings.client_id, sha1, key_id
        )  # cert remove KEYID knows it
    data = {"thumbprint": sha1, "key_id": key_id, "certificate": str(file)}
    if fmt != "table":
        emit(data, fmt)
        return
    say(f"Registered certificate {sha1} (keyId {key_id}) on app {settings.client_id}.")


# ---------------------------------------------------------------- cert remove


def _key_id_for(
    client: GraphClient, settings: Settings, wanted: str, path: str
) -> tuple[str, str | None]:
    """(keyId, thumbprint or None) of the certificate named by ``wanted``."""
    from graphkit import app_keys
    from graphkit.errors import PermissionDeniedError

    try:
        listed = app_keys.list_certificates(client, path, client_id=settings.client_id)
    except PermissionDeniedError:
        if "-" in wanted:  # a keyId: no need to read the list
            return wanted, None
        raise
    for row in listed:
        if wanted in (row.key_id, row.thumbprint):
            return row.key_id, row.thumbprint
    raise NotFoundError(
        f"app {settings.client_id} holds no certificate {wanted}",
        "see `graphkit cert list` for those it holds",
    )


@_connection.with_connection_flags
def remove_cert(
    thumbprint: Annotated[
        str, typer.Argument(help="SHA-1 thumbprint (as the portal shows it), or the keyId.")
    ],
    admin: AdminOpt = False,
    admin_client_id: AdminClientOpt = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Remove it even if it is the one the profile uses."),
    ] = False,
    object_id: ObjectIdOpt = None,
    *,
    connection: _connection.Connection,
) -> None:
    """Remove a certificate from the app: with removeKey and a proof signed by the
    profile's current certificate (no permission needed), or, with --admin, by a PATCH
    that sends back every other certificate."""
    from graphkit import app_keys, certificates

    wanted = _normalise_thumbprint(thumbprint)
    settings = connection.settings(validate=not admin)
    in_use = _in_use(settings)
    who = settings.profile or "(flags)"

    def refuse_in_use(sha1: str | None) -> None:
        if sha1 is not None and sha1 == in_use and not force:
            raise UsageError(
                f"certificate {sha1} is the one profile {who} signs in with: once it is "
                "removed, every token request of this profile is refused (AADSTS700027) "
                "until another registered certificate is configured",
                "run `graphkit rotate` instead, or give --force to remove it anyway",
            )

    refuse_in_use(wanted if "-" not in wanted else None)
    removed: str
    matched: list[str] = []  # with --admin: the thumbprint of what is removed
    if admin:
        path = app_keys.application_path(client_id=settings.client_id, object_id=object_id)

        def without(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
            rows = app_keys.certificates_from(keys)
            match = [r for r in rows if wanted in (r.key_id, r.thumbprint)]
            if not match:
                raise NotFoundError(
                    f"app {settings.client_id} holds no certificate {wanted}",
                    "see `graphkit cert list --admin` for those it holds",
                )
            refuse_in_use(match[0].thumbprint)
            matched.append(match[0].thumbprint or wanted)
            return [k for k, r in zip(keys, rows, strict=True) if r is not match[0]]

        with _admin_client(settings, _WRITE_SCOPES, admin_client_id) as client:
            app_keys.patch_keys(client, path, without, client_id=settings.client_id)
        removed = matched[-1] if matched else wanted
    else:
        signer = certificates.load(settings)
        with _app_client(settings) as client:
            oid = app_keys.find_object_id(client, settings, object_id)
            path = app_keys.application_path(object_id=oid)
            key_id, sha1 = _key_id_for(client, settings, wanted, path)
            if sha1 is None:  # the app may not read itself: what graphkit recorded
                from graphkit import rotation

                known = rotation.known_key_ids(settings.profile, settings.client_id)
                sha1 = next((t for t, k in known.items() if k == key_id), None)
            if sha1 is None and in_use is not None and not force:
                raise UsageError(
                    f"app {settings.client_id} may not read its registration, so graphkit "
                    f"cannot tell whether keyId {key_id} is the certificate profile {who} "
                    "signs in with (removing that one makes every token request of the "
                    "profile fail with AADSTS700027)",
                    "give --force if it is another certificate, or use --admin (which "
                    "reads the registration first)",
                )
            refuse_in_use(sha1)
            app_keys.remove_key(
                client,
                oid,
                key_id,
                signer_key=signer.private_key,
                signer_certificate=signer.certificate,
            )
        removed = sha1 or key_id
    say(f"Removed certificate {removed} from app {settings.client_id}.")
    if force and in_use in (wanted, removed):
        say(
            f"Profile {who} signed in with it: its tokens are now refused (AADSTS700027) "
            "until another registered certificate is configured."
        )


# --------------------------------------------------------------------- rotate


def _stderr_hooks() -> Any:
    """rotate's progress on stderr, with a countdown while the new certificate propagates."""
    from graphkit.rotation import RotationHooks

    class StderrHooks(RotationHooks):
        def __init__(self) -> None:
            self._tty = sys.stderr.isatty()
            self._last_attempt = 0

        def step(self, message: str) -> None:
            self._end_line()
            say(message)

        def waiting(self, retry_in: float, left: float, attempt: int) -> None:
            text = (
                f"Entra ID does not accept the new certificate yet (AADSTS700027): retrying in "
                f"{max(1, round(retry_in))} s, giving up in {int(left) // 60}:{int(left) % 60:02d}"
            )
            if self._tty:
                sys.stderr.write("\r\x1b[2K" + text)
                sys.stderr.flush()
            elif attempt != self._last_attempt:
                say(text)
            self._last_attempt = attempt

        def _end_line(self) -> None:
            if self._tty and self._last_attempt:
                sys.stderr.write("\r\x1b[2K")
                sys.stderr.flush()
                self._last_attempt = 0

        def done(self, step: str) -> None:
            self._end_line()

    return StderrHooks()


def rotate(
    profile: _connection.ProfileOpt = None,
    days: Annotated[int, typer.Option("--days", help="Validity of the new certificate.")] = 365,
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Leave the old certificate registered.")
    ] = False,
    if_expiring_within: Annotated[
        int | None,
        typer.Option(
            "--if-expiring-within",
            metavar="DAYS",
            help="Only if the certificate expires within DAYS; exit 0 if it does not, "
            "11 if it rotated (for cron and CI).",
            show_default=False,
        ),
    ] = None,
    object_id: ObjectIdOpt = None,
    wait: Annotated[
        float,
        typer.Option("--wait", help="Seconds to wait at most for the new certificate to work."),
    ] = 300.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be done; send and write nothing.")
    ] = False,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """Replace the profile's certificate: a new key and certificate (new file names),
    addKey with a proof signed by the current one, wait until it works, switch the
    profile, removeKey the old one, keep the old files renamed with their dates.

    Interrupted or failed at any step, the profile stays on a certificate that works
    and the message says what the app holds; run it again to finish.
    """
    from graphkit import onboarding, rotation

    fmt = output_format(output, as_json)
    onboarding._check_days(days)
    if wait < 0:
        raise UsageError(f"--wait {wait:g} is negative", "give a number of seconds")
    if if_expiring_within is not None and if_expiring_within < 0:
        raise UsageError("--if-expiring-within must be 0 or more days", "for example 30")
    request = rotation.RotateRequest(
        profile=profile,
        days=days,
        keep_old=keep_old,
        if_expiring_within=if_expiring_within,
        object_id=object_id,
        dry_run=dry_run,
        wait=wait,
    )
    from graphkit import tokens
    from graphkit.cli._common import install_log_handler, warn

    tokens.set_notice_handler(warn)
    install_log_handler()
    result = rotation.rotate(request, _stderr_hooks())
    if fmt != "table":
        emit(result.as_dict(), fmt)
    elif result.dry_run:
        say(f"Dry run for profile {result.profile!r}: would")
        for line in result.plan:
            sys.stdout.write(f"  {line}\n")
    else:
        say(result.reason[:1].upper() + result.reason[1:] + ".")
    if result.rotated and if_expiring_within is not None:
        raise typer.Exit(int(ExitCode.ROTATED))


def register(app: typer.Typer) -> None:
    from graphkit.cli._common import GraphkitSubgroup
    from graphkit.cli._examples import epilog

    group = GraphkitTyper(
        name="cert",
        help="The certificates registered on the app: list, add, remove.",
        no_args_is_help=True,
        rich_markup_mode=None,
        cls=GraphkitSubgroup,
    )
    for name, command in (("list", list_certs), ("add", add_cert), ("remove", remove_cert)):
        group.command(name, cls=LeanCommand, epilog=epilog(f"cert {name}"))(command)
    app.add_typer(group, name="cert")
    app.command("rotate", cls=LeanCommand, epilog=epilog("rotate"))(rotate)
