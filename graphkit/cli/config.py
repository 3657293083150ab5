"""`graphkit config show|list|use|set|delete`: connection profiles."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from graphkit.cli import _connection
from graphkit.cli._common import OutputOpt, emit, output_format, say, warn
from graphkit.cli._typer_internals import GraphkitTyper, LeanCommand
from graphkit.errors import GraphkitError, InputError, UsageError

JsonOpt = Annotated[bool, typer.Option("--json", help="The same as -o json.")]
NameArg = Annotated[str, typer.Argument(help="Profile name.")]


def _emit(data: Any, fmt: str = "json") -> None:
    emit(data, fmt)


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...] | None = None) -> None:
    all_rows = ([header] if header else []) + list(rows)
    if not all_rows:
        return
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]) - 1)]
    for row in all_rows:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)]
        sys.stdout.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


# ------------------------------------------------------------------------ show


def _certificate_status(settings: Any) -> dict[str, Any]:
    from graphkit import certificates

    if settings.certificate is None:
        return {"status": "not configured"}
    try:
        cert = certificates.load(settings)
    except GraphkitError as exc:
        return {"status": "error", "error": str(exc)}
    return {
        "status": "ok",
        "sha1": cert.sha1,
        "not_after": cert.not_after.isoformat(),
        "days_left": cert.days_left().days,
        "validity": str(cert.days_left()),
        "form": cert.form,
        "warning": certificates.expiry_warning(cert, profile=settings.profile),
    }


@_connection.with_connection_flags
def show(
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    *,
    connection: _connection.Connection,
) -> None:
    """Show the resolved settings and where each came from (flag, env, profile).

    Secrets are never shown: a passphrase is reported only as set or not set.
    """
    from graphkit import settings as profiles

    fmt = output_format(output, as_json)
    as_json = fmt != "table"
    settings = connection.settings(validate=False)
    rows = settings.describe()
    cert = _certificate_status(settings)
    cfg = settings.config_file or profiles.config_path()
    state = profiles.state_dir()
    if fmt == "tsv":  # a line per setting: name, value, source
        _emit([list(row) for row in rows], "tsv")
        return
    if as_json:
        _emit(
            {
                "settings": {name: {"value": value, "source": src} for name, value, src in rows},
                "certificate": cert,
                "config_file": str(cfg),
                "config_file_exists": cfg.exists(),
                "state_dir": str(state),
            },
            fmt,
        )
        return
    _table([(name, value, src) for name, value, src in rows], ("SETTING", "VALUE", "SOURCE"))
    sys.stdout.write("\n")
    if cert["status"] == "ok":
        sys.stdout.write(
            f"certificate: SHA-1 {cert['sha1']}, expires {cert['not_after'][:10]} "
            f"({cert['validity']})\n"
        )
    elif cert["status"] == "error":
        sys.stdout.write(f"certificate: unusable: {cert['error']}\n")
    exists = "" if cfg.exists() else " (does not exist yet)"
    sys.stdout.write(f"config file: {cfg}{exists}\n")
    sys.stdout.write(f"state dir:   {state}\n")
    if cert.get("warning"):
        warn(cert["warning"])


# ------------------------------------------------------------------------ list


def list_profiles(as_json: JsonOpt = False, output: OutputOpt = None) -> None:
    """List the profiles, each with its certificate, thumbprint and days left.

    * marks the default. Only the certificate is read (never the key).
    """
    from graphkit.settings import config_path, read_config

    fmt = output_format(output, as_json)
    as_json = fmt != "table"
    path = config_path()
    data = read_config(path)
    profiles: dict[str, dict[str, Any]] = data.get("profiles") or {}
    default = data.get("default_profile")
    if fmt == "tsv":  # a line per profile
        lines = []
        for name, values in sorted(profiles.items()):
            cert = _profile_certificate(values)
            lines.append(
                [
                    name,
                    values.get("tenant"),
                    values.get("client_id"),
                    values.get("certificate"),
                    cert.get("sha1"),
                    cert.get("days_left"),
                    name == default,
                ]
            )
        _emit(lines, "tsv")
        return
    if as_json:
        _emit(
            {
                "config_file": str(path),
                "default_profile": default,
                "profiles": {
                    name: {
                        **values,
                        "default": name == default,
                        "certificate_status": _profile_certificate(values),
                    }
                    for name, values in profiles.items()
                },
            },
            fmt,
        )
        return
    if not profiles:
        say(f"No profiles in {path}.")
        say(
            "Create one: `graphkit init` (it asks for what it needs), or by hand with "
            "`graphkit config set NAME --tenant ... --client-id ... --certificate ...` "
            "filled in"
        )
        return
    rows = []
    for name, values in sorted(profiles.items()):
        where = values.get("cloud") or values.get("authority_host") or "global"
        cert = _profile_certificate(values)
        rows.append(
            (
                ("* " if name == default else "  ") + name,
                str(values.get("tenant", "-")),
                str(values.get("client_id", "-")),
                str(where),
                str(values.get("certificate") or "-"),
                cert.get("sha1") or ("unreadable" if cert["status"] == "error" else "-"),
                cert.get("validity") or "-",
            )
        )
    _table(
        rows,
        (
            "  PROFILE",
            "TENANT",
            "CLIENT ID",
            "CLOUD/AUTHORITY",
            "CERTIFICATE",
            "THUMBPRINT (SHA-1)",
            "DAYS LEFT",
        ),
    )
    for name, values in sorted(profiles.items()):
        cert = _profile_certificate(values)
        if cert["status"] == "error":
            warn(f"profile {name}: {cert['error']}")
        elif cert.get("warning"):
            warn(f"profile {name}: {cert['warning']}")


@functools.cache
def _profile_certificate_cached(path: str, passphrase_file: str | None) -> dict[str, Any]:
    from graphkit import certificates, crypto
    from graphkit.files import read_bytes, read_passphrase_file

    try:
        passphrase = None
        if passphrase_file:
            lines = read_passphrase_file(Path(passphrase_file)).splitlines()
            passphrase = lines[0] if lines else None
        bundle = crypto.load_certificate_bundle(
            read_bytes(Path(path).expanduser(), "certificate"),
            passphrase,
            source=f"certificate {path}",
            key_optional=True,
        )
    except GraphkitError as exc:
        return {"status": "error", "error": str(exc)}
    cert = bundle.certificate
    left = certificates.days_left(cert.not_valid_after_utc)
    warning = None
    if left.expired or certificates.expiry_warning_due(
        cert.not_valid_before_utc, cert.not_valid_after_utc
    ):
        warning = f"certificate {path} {left.expires_phrase()}"
    return {
        "status": "ok",
        "sha1": crypto.thumbprints(cert)["sha1"],
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": left.days,
        "validity": str(left),
        "warning": warning,
    }


def _profile_certificate(values: dict[str, Any]) -> dict[str, Any]:
    """A profile's certificate as stored: thumbprint and days left (the key is not read)."""
    path = values.get("certificate")
    if not path:
        return {"status": "not configured"}
    return _profile_certificate_cached(str(path), values.get("passphrase_file"))


# ------------------------------------------------------------------ use, delete


def use(name: NameArg) -> None:
    """Make NAME the default profile."""
    from graphkit import settings as profiles

    profiles.set_default_profile(name)
    say(f"Default profile is now {name!r}.")


def delete(name: NameArg) -> None:
    """Remove profile NAME from the config file (no key or certificate is deleted)."""
    from graphkit import settings as profiles

    profiles.delete_profile(name)
    say(f"Deleted profile {name!r}.")


# ------------------------------------------------------------------------- set


def set_profile(
    name: NameArg,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant GUID or domain.")] = None,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Application (client) ID.")
    ] = None,
    object_id: Annotated[
        str | None,
        typer.Option(
            "--object-id",
            help="The application's Object ID (Overview page; not the client id), for "
            "commands that change the app registration.",
        ),
    ] = None,
    certificate: Annotated[
        Path | None,
        typer.Option("--certificate", help="Certificate: .crt/.pem, key+cert PEM, or PFX."),
    ] = None,
    private_key: Annotated[
        Path | None,
        typer.Option("--private-key", help="Private key, if not in the certificate file."),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file", help="File holding the key/PFX passphrase (the path is stored)."
        ),
    ] = None,
    cloud: Annotated[
        str | None, typer.Option("--cloud", help="global, usgov, usgovdod or china.")
    ] = None,
    authority_host: Annotated[
        str | None, typer.Option("--authority-host", help="Identity host or https://host[:port].")
    ] = None,
    graph_url: Annotated[
        str | None, typer.Option("--graph-url", help="Graph base URL without version.")
    ] = None,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="CA file to trust for both hosts.")
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option("--unset", help="Remove a key from the profile (repeatable)."),
    ] = None,
    default: Annotated[
        bool | None,
        typer.Option(
            "--default/--no-default",
            help="Make it the default profile (the first profile always is).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create or update profile NAME; only the options given change.

    Paths are stored absolute. Secrets are never stored: a passphrase only by file.
    """
    from graphkit import settings as profiles

    values: dict[str, Any] = {
        "tenant": tenant,
        "client_id": client_id,
        "object_id": object_id,
        "certificate": certificate,
        "private_key": private_key,
        "passphrase_file": passphrase_file,
        "cloud": cloud,
        "authority_host": authority_host,
        "graph_url": graph_url,
        "ca_bundle": ca_bundle,
    }
    keys = [k.replace("-", "_") for k in unset or []]
    for key in keys:
        if key not in profiles.PROFILE_KEYS:
            raise UsageError(
                f"--unset {key!r} is not a profile key",
                f"use one of: {', '.join(profiles.PROFILE_KEYS)}",
            )
        if values.get(key) is not None:
            raise UsageError(f"{key} is both set and unset", "give one or the other")
    from graphkit.files import input_file_problem

    for key in ("certificate", "private_key", "passphrase_file", "ca_bundle"):
        value = values[key]
        problem = None if value is None else input_file_problem(Path(value).expanduser())
        if problem:
            raise InputError(f"{key.replace('_', ' ')} file {value} {problem}", "check the path")
    if all(v is None for v in values.values()) and not keys and default is None:
        raise UsageError(
            "nothing to set",
            "give options such as --tenant, --client-id, --certificate (see --help)",
        )
    path = profiles.config_path()
    existed = name in (profiles.read_config(path).get("profiles") or {})
    profiles.save_profile(name, values, unset=keys, make_default=default, path=path)
    say(f"{'Updated' if existed else 'Created'} profile {name!r} in {path}.")


def register(app: typer.Typer) -> None:
    from graphkit.cli._common import GraphkitSubgroup
    from graphkit.cli._examples import epilog

    group = GraphkitTyper(
        name="config",
        help="Connection profiles: show the resolved settings, list, choose, create.",
        no_args_is_help=True,
        rich_markup_mode=None,
        cls=GraphkitSubgroup,
    )
    for name, command in (
        ("show", show),
        ("list", list_profiles),
        ("use", use),
        ("set", set_profile),
        ("delete", delete),
    ):
        group.command(name, cls=LeanCommand, epilog=epilog(f"config {name}"))(command)
    app.add_typer(group, name="config")
