"""`graphkit token`: get an app-only access token and show what is in it."""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from graphkit.cli import _connection
from graphkit.cli._common import OutputOpt, emit, output_format
from graphkit.cli._typer_internals import LeanCommand
from graphkit.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.settings import Settings
    from graphkit.tokens import AccessToken

# Enough of the token to recognise it (the JWT header), never enough to use it.
_SHOWN_PREFIX = 12


def relative(seconds: float) -> str:
    """``in 59 min``, ``3 min ago``, ``in 1 h 5 min``, ``in 30 s``."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # a server's NaN, 1e400
        return "at no real time"
    future = seconds >= 0
    s = int(abs(seconds))
    if s < 60:
        text = f"{s} s"
    elif s < 3600:
        text = f"{s // 60} min"
    elif s < 86400:
        h, m = divmod(s // 60, 60)
        text = f"{h} h {m} min" if m else f"{h} h"
    else:
        d, h = divmod(s // 3600, 24)
        text = f"{d} d {h} h" if h else f"{d} d"
    return f"in {text}" if future else f"{text} ago"


def local_time(epoch: float) -> str:
    try:
        return dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    except (OverflowError, ValueError, OSError):  # a server's absurd time: year 10**11
        return f"{epoch} (not a date)"


def _iso(epoch: Any) -> str | None:
    if not isinstance(epoch, int | float):
        return None
    try:
        return dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return None


def mask(token: str) -> str:
    """A JWT's first characters (its header: public) and its length; nothing of a
    token that is not a JWT, where those characters would be part of the secret."""
    header = token.split(".", 1)[0] if token.count(".") == 2 else ""
    shown = token[:_SHOWN_PREFIX] if len(header) > _SHOWN_PREFIX else ""
    return f"{shown}… ({len(token)} characters; --show-token prints it)"


def _get_token(settings: Settings, force_refresh: bool, scope: str | None) -> AccessToken:
    with _connection.credential_from_settings(settings, scope=scope) as credential:
        return credential.get_token(force_refresh=force_refresh)


def _summary(
    token: AccessToken, settings: Settings, show_token: bool, scope: str | None = None
) -> dict[str, Any]:
    claims = token.claims
    now = time.time()
    return {
        "token_type": "Bearer",  # nosec B105  # the scheme's name, not a token
        "access_token": token.token if show_token else None,
        "access_token_masked": mask(token.token) if not show_token else None,
        "expires_on": token.expires_on,
        "expires_at": _iso(token.expires_on),
        "expires_in": int(token.expires_on - now),
        "issued_at": _iso(claims.get("iat")),
        "audience": claims.get("aud"),
        "tenant": claims.get("tid"),
        "app_id": claims.get("appid") or claims.get("azp"),
        "roles": token.roles,
        "from_cache": token.from_cache,
        "scope": scope or settings.scope,
        "profile": settings.profile,
    }


def _render(token: AccessToken, settings: Settings, show_token: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    claims = token.claims
    now = time.time()
    console = Console(highlight=False, soft_wrap=show_token)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    expires = f"{local_time(token.expires_on)} ({relative(token.expires_on - now)})"
    iat = claims.get("iat")
    issued = f"{local_time(iat)} ({relative(iat - now)})" if isinstance(iat, int | float) else "-"
    roles = ", ".join(token.roles) or "(none: grant application permissions and admin consent)"
    rows = [
        ("Expires", expires),
        ("Issued", issued),
        ("Audience", str(claims.get("aud", "-"))),
        ("Tenant", str(claims.get("tid", "-"))),
        ("App id", str(claims.get("appid") or claims.get("azp") or "-")),
        ("Roles", roles),
        ("Source", "token cache" if token.from_cache else "identity platform (new token)"),
    ]
    if settings.profile:
        rows.append(("Profile", settings.profile))
    for label, value in rows:
        grid.add_row(label, value)
    if show_token:
        console.print(grid)
        # Whole and unwrapped, so it can be copied.
        sys.stdout.write(token.token + "\n")
    else:
        grid.add_row("Token", mask(token.token))
        console.print(grid)


@_connection.with_connection_flags
def token(
    show_token: Annotated[
        bool, typer.Option("--show-token", help="Print the whole token (it is a secret).")
    ] = False,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Print only the token, for an Authorization header."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The same as -o json.")] = False,
    output: OutputOpt = None,
    force_refresh: _connection.ForceRefreshOpt = False,
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            metavar="RESOURCE/.default",
            help="A token for another resource, e.g. https://contoso.sharepoint.com/.default "
            "(default: Microsoft Graph's).",
            show_default=False,
        ),
    ] = None,
    resource: Annotated[
        str | None,
        typer.Option(
            "--resource",
            help="The same as --scope RESOURCE/.default, e.g. https://outlook.office365.com.",
            show_default=False,
        ),
    ] = None,
    *,
    connection: _connection.Connection,
) -> None:
    """Get an app-only access token (from the cache while valid) and show its claims.

    The token is masked unless --show-token; --raw prints only the token, e.g.
    `curl -H "Authorization: Bearer $(graphkit token --raw)" ...`. --scope/--resource
    get one for another resource (SharePoint, Exchange) with the same certificate.
    """
    from graphkit.tokens import requested_scope

    fmt = output_format(output, as_json)
    if raw and fmt != "table":
        raise UsageError(f"--raw and -o {fmt} cannot be combined", "choose one")
    wanted = requested_scope(scope, resource)
    settings = connection.settings()
    access = _get_token(settings, force_refresh, wanted)
    if raw:
        sys.stdout.write(access.token + "\n")
    elif fmt != "table":
        data = _summary(access, settings, show_token, wanted)
        if show_token:
            data.pop("access_token_masked")
        else:
            data.pop("access_token")
        emit(data, fmt)
    else:
        _render(access, settings, show_token)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    from graphkit.cli._examples import epilog

    app.command("token", cls=LeanCommand, epilog=epilog("token"))(token)
