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
from graphkit.cli._typer_internals import LeanCommand
from graphkit.errors import ExitCode, InputError, UsageError

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
_COLUMNS = "in_use,thumbprint,display_name,start,end,days_left,key_id"


def _app_client(settings: Settings) -> GraphClient:
    """A Graph client with the app's own token (its current certificate)."""
    from graphkit.graph import GraphClient

    credential = _connection.credential_from_settings(settings)
    return GraphClient.from_settings(settings, credential=credential, validate=False)


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
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    *,
    connection: _connection.Connection,
) -> None:
    """List the certificates registered on the app; * marks the one the profile uses.

    Read with the app's own token ($select=keyCredentials): the app needs
    Application.Read.All, or to own itself.
    """
    from graphkit import app_keys, certificates
    from graphkit import output as out

    fmt = output_format(output, as_json)
    settings = connection.settings()
    in_use = certificates.check(settings).sha1
    with _app_client(settings) as client:
        path = app_keys.application_path(client_id=settings.client_id, object_id=settings.object_id)
        rows = app_keys.list_certificates(client, path, in_use=in_use, client_id=settings.client_id)
    data = [r.as_dict() for r in rows]
    if fmt == "json" or fmt == "yaml":
        emit(data, fmt)
        return
    if fmt == "table":
        for row in data:
            row["in_use"] = "*" if row["in_use"] else ""
    out.write_items(data, fmt, sys.stdout, select=_COLUMNS, note=say)
    if not any(r.in_use for r in rows):
        say(
            f"The profile's certificate {in_use} is not among them: tokens are refused "
            "(AADSTS700027) until it is added"
        )


# ------------------------------------------------------------------- cert add


@_connection.with_connection_flags
def add_cert(
    file: Annotated[Path, typer.Argument(help="The certificate to register (.crt/.cer/.pem).")],
    object_id: ObjectIdOpt = None,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    *,
    connection: _connection.Connection,
) -> None:
    """Register another certificate on the app, with addKey and a proof signed by the
    profile's current certificate (no permission needed)."""
    from graphkit import app_keys, certificates, crypto

    fmt = output_format(output, as_json)
    cert = _load_certificate(file)
    sha1 = crypto.thumbprints(cert)["sha1"]
    settings = connection.settings()
    with _app_client(settings) as client:
        oid = app_keys.find_object_id(client, settings, object_id)
        signer = certificates.load(settings)
        answer = app_keys.add_key(
            client, oid, cert, signer_key=signer.private_key, signer_certificate=signer.certificate
        )
    data = {"thumbprint": sha1, "key_id": answer.get("keyId"), "certificate": str(file)}
    if fmt != "table":
        emit(data, fmt)
        return
    say(f"Registered certificate {sha1} (keyId {answer.get('keyId')}) on app {settings.client_id}.")


# ---------------------------------------------------------------- cert remove


def _key_id_for(
    client: GraphClient, settings: Settings, wanted: str, path: str
) -> tuple[str, str | None]:
    """(keyId, thumbprint or None) of the certificate named by ``wanted``."""
    from graphkit import app_keys
    from graphkit.errors import NotFoundError, PermissionDeniedError

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
    force: Annotated[
        bool,
        typer.Option("--force", help="Remove it even if it is the one the profile uses."),
    ] = False,
    object_id: ObjectIdOpt = None,
    *,
    connection: _connection.Connection,
) -> None:
    """Remove a certificate from the app, with removeKey and a proof signed by the
    profile's current certificate (no permission needed)."""
    from graphkit import app_keys, certificates

    wanted = _normalise_thumbprint(thumbprint)
    settings = connection.settings()
    signer = certificates.load(settings)
    if wanted == signer.sha1 and not force:
        raise UsageError(
            f"certificate {wanted} is the one profile {settings.profile or '(flags)'} signs in "
            "with: once it is removed, every token request of this profile is refused "
            "(AADSTS700027) until another registered certificate is configured",
            "run `graphkit rotate` instead, or give --force to remove it anyway",
        )
    with _app_client(settings) as client:
        oid = app_keys.find_object_id(client, settings, object_id)
        key_id, sha1 = _key_id_for(
            client, settings, wanted, app_keys.application_path(object_id=oid)
        )
        if sha1 == signer.sha1 and not force:
            raise UsageError(
                f"keyId {key_id} is the certificate profile {settings.profile or '(flags)'} "
                "signs in with",
                "run `graphkit rotate` instead, or give --force to remove it anyway",
            )
        app_keys.remove_key(
            client,
            oid,
            key_id,
            signer_key=signer.private_key,
            signer_certificate=signer.certificate,
        )
    say(f"Removed certificate {sha1 or key_id} from app {settings.client_id}.")
    if sha1 == signer.sha1:
        say(
            f"Profile {settings.profile or '(flags)'} signs in with it: its tokens are now "
            "refused (AADSTS700027) until another registered certificate is configured."
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

    group = typer.Typer(
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
