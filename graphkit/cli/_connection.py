"""Connection flags shared by `token`, `query`, `init`, `doctor`...

A command gets them all with :func:`with_connection_flags`, which adds the flags to
its options and hands it one :class:`Connection`; ``connection.settings()`` resolves
them (flags > environment > profile) with :func:`settings_from_flags`. The ``*Opt``
aliases below declare single flags. Nothing heavy is imported here, not even Typer
(the declarations are :mod:`graphkit.cli._options`').
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from graphkit.cli._options import EXTRA_PARAMS, REPLACED_PARAM, Option
from graphkit.cli._report import PASSPHRASE_ENV, install_log_handler, warn

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.settings import Settings
    from graphkit.tokens import CertificateCredential

__all__ = [
    "AuthorityHostOpt",
    "CaBundleOpt",
    "CertificateOpt",
    "ClientIdOpt",
    "CloudOpt",
    "Connection",
    "ForceRefreshOpt",
    "GraphUrlOpt",
    "PassphraseFileOpt",
    "PrivateKeyOpt",
    "ProfileOpt",
    "TenantOpt",
    "credential_from_settings",
    "settings_from_flags",
    "with_connection_flags",
]

ProfileOpt = Annotated[
    str | None,
    Option(
        "--profile",
        "-p",
        help="Profile from the config file (else GRAPHKIT_PROFILE, else the default).",
        show_default=False,
    ),
]
TenantOpt = Annotated[
    str | None,
    Option(
        "--tenant",
        help="Tenant GUID or domain (else AZURE_TENANT_ID, else the profile).",
        show_default=False,
    ),
]
ClientIdOpt = Annotated[
    str | None,
    Option(
        "--client-id",
        help="Application (client) ID (else AZURE_CLIENT_ID, else the profile).",
        show_default=False,
    ),
]
CertificateOpt = Annotated[
    Path | None,
    Option(
        "--certificate",
        help="Certificate: .crt/.pem, key+cert PEM, or PFX "
        "(else AZURE_CLIENT_CERTIFICATE_PATH, else the profile).",
        show_default=False,
    ),
]
PrivateKeyOpt = Annotated[
    Path | None,
    Option(
        "--private-key",
        help="Private key, when the certificate file does not hold it.",
        show_default=False,
    ),
]
CloudOpt = Annotated[
    str | None,
    Option(
        "--cloud",
        help="global, usgov, usgovdod or china (sets both hosts).",
        show_default=False,
    ),
]
AuthorityHostOpt = Annotated[
    str | None,
    Option(
        "--authority-host",
        help="Identity host or https://host[:port] (else AZURE_AUTHORITY_HOST).",
        show_default=False,
    ),
]
GraphUrlOpt = Annotated[
    str | None,
    Option(
        "--graph-url",
        help="Graph base URL without version, e.g. https://graph.microsoft.com "
        "(else GRAPHKIT_GRAPH_URL).",
        show_default=False,
    ),
]
CaBundleOpt = Annotated[
    str | None,
    Option(
        "--ca-bundle",
        help="CA file to trust for both hosts (else GRAPHKIT_CA_BUNDLE).",
        show_default=False,
    ),
]
PassphraseFileOpt = Annotated[
    Path | None,
    Option(
        "--passphrase-file",
        help=f"Read the passphrase from this file (first line). Or set {PASSPHRASE_ENV}.",
        show_default=False,
    ),
]
ForceRefreshOpt = Annotated[
    bool,
    Option(
        "--force-refresh",
        help="Ignore the token cache: get a new token (it replaces the cached one).",
    ),
]


# Every connection flag, in the order `--help` lists them (after a command's own options).
_CONNECTION_FLAGS: dict[str, Any] = {
    "profile": ProfileOpt,
    "tenant": TenantOpt,
    "client_id": ClientIdOpt,
    "certificate": CertificateOpt,
    "private_key": PrivateKeyOpt,
    "cloud": CloudOpt,
    "authority_host": AuthorityHostOpt,
    "graph_url": GraphUrlOpt,
    "ca_bundle": CaBundleOpt,
    "passphrase_file": PassphraseFileOpt,
}


class Connection:
    """The connection flags one command was given (None: not given).

    (A plain class: a dataclass costs a millisecond of every command's start-up.)
    """

    __slots__ = ("flags",)

    def __init__(self, flags: dict[str, Any]) -> None:
        self.flags = flags

    def settings(self, *, validate: bool = True) -> Settings:
        """Resolve them: see :func:`settings_from_flags`."""
        flags = dict(self.flags)
        return settings_from_flags(flags.pop("profile", None), validate=validate, **flags)


def with_connection_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command every connection flag, as one ``connection`` argument.

    ``func`` declares ``connection: Connection`` (no default) among its parameters;
    the command Typer sees (and the direct path parses: see
    :func:`graphkit.cli._options.parameters`) has ``func``'s other options followed by
    ``--profile``, ``--tenant`` ... ``--passphrase-file``, and calls ``func`` with
    their values gathered in a :class:`Connection`.
    """

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        flags = {name: kwargs.pop(name, None) for name in _CONNECTION_FLAGS}
        return func(*args, connection=Connection(flags), **kwargs)

    setattr(command, EXTRA_PARAMS, dict(_CONNECTION_FLAGS))
    setattr(command, REPLACED_PARAM, "connection")
    return command


def settings_from_flags(
    profile: str | None = None, *, validate: bool = True, **flags: Any
) -> Settings:
    """Resolve settings from connection flags (> environment > profile).

    Args:
        profile: ``--profile``.
        validate: also check that the settings can authenticate (certificate
            readable, current and matching its key...); False for `config show`.
        **flags: the other connection flags by name (``tenant``, ``client_id``,
            ``certificate``, ``private_key``, ``cloud``, ``authority_host``,
            ``graph_url``, ``ca_bundle``, ``passphrase_file``); None means not given.

    Also routes the library's notices (plaintext token cache, expiring certificate)
    and log records (see :func:`~graphkit.cli._common.install_log_handler`) to stderr
    for this process.
    """
    from graphkit import settings as settings_mod
    from graphkit import tokens

    unknown = sorted(set(flags) - set(settings_mod.PROFILE_KEYS))  # one flag per profile key
    if unknown:
        raise TypeError(f"unknown connection flag {unknown[0]!r}")
    overrides = {k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items()}
    settings = settings_mod.resolve_settings(profile=profile, overrides=overrides)
    tokens.set_notice_handler(warn)
    install_log_handler()
    if validate:
        # Certificate files checked in full before (byte for byte) are not parsed again.
        settings_mod.validate(settings, cache_dir=settings_mod.state_dir())
    return settings


def credential_from_settings(settings: Settings, **kwargs: Any) -> CertificateCredential:
    """A :class:`~graphkit.tokens.CertificateCredential` whose notices go to stderr."""
    from graphkit.tokens import CertificateCredential

    kwargs.setdefault("on_notice", warn)
    return CertificateCredential(settings, **kwargs)
