"""graphkit's exceptions and the exit codes they map to.

The library raises these; only the command-line layer turns them into a one-line
message and an exit status (see ``graphkit.cli``). Every message says what is wrong
and, through ``hint``, what to do next. No message ever contains a private key,
a passphrase or a token.
"""

from __future__ import annotations

import enum
import functools
import re
import typing

__all__ = [
    "AuthError",
    "BadRequestError",
    "ConfigError",
    "CryptoError",
    "ExitCode",
    "ForeignHostError",
    "GraphError",
    "GraphkitError",
    "InputError",
    "NetworkError",
    "NotFoundError",
    "OutcomeUnknownError",
    "OutputExistsError",
    "PermissionDeniedError",
    "ThrottledError",
    "UnauthorizedError",
    "UsageError",
    "redact",
    "register_secret",
]


# JWTs (client assertions, access tokens) and the form or JSON fields carrying credentials.
# Compiled on first use (about 1.5 ms): every command imports this module, few redact.
@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    jwt = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
    bearer = re.compile(r"\b(Bearer)(\s+)[A-Za-z0-9._~+/-]+=*", re.IGNORECASE)
    field = re.compile(
        r"(client_assertion|client_secret|access_token|refresh_token|id_token)"
        r"([\"']?\s*[=:]\s*[\"']?)([^&\s\"'<>,;}]+)",
        re.IGNORECASE,
    )
    return jwt, bearer, field


# Secrets this process has sent (bearer tokens, client assertions): redacted wherever
# they appear, whatever their shape (an opaque token is no JWT).
_SENT_SECRETS: set[str] = set()
_MIN_SECRET = 16  # shorter values would redact ordinary words


def register_secret(value: str | None) -> None:
    """Remember ``value`` (a token or assertion about to be sent) for :func:`redact`."""
    if value and len(value) >= _MIN_SECRET:
        _SENT_SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with JWTs, credential fields and every secret this process has sent
    replaced by ``[redacted]``.

    For text a server sent back (an error description, an id, a log record): a proxy or
    a misbehaving endpoint may echo the request, client assertion or token included.
    Every :class:`GraphkitError` applies it to its message and hint, so whatever an
    error carries to stdout, stderr or a log has been through this one step.
    """
    for secret in _SENT_SECRETS:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    jwt, bearer, field = _patterns()
    text = jwt.sub("[redacted]", text)
    text = bearer.sub(r"\1\2[redacted]", text)
    return field.sub(r"\1\2[redacted]", text)


class ExitCode(enum.IntEnum):
    """Exit statuses, distinct per kind of failure so scripts can branch on them."""

    OK = 0
    ERROR = 1  # anything not classified below
    USAGE = 2  # bad flags or arguments (also what click uses)
    INPUT = 3  # a file is missing, unreadable, malformed, or would be overwritten
    CONFIG = 4  # configuration incomplete or invalid
    AUTH = 5  # the identity platform refused us
    PERMISSION = 6  # Graph 403: the token lacks a role
    NOT_FOUND = 7  # Graph 404
    THROTTLED = 8  # retries exhausted on 429/503/504
    NETWORK = 9  # connection, TLS or timeout
    OUTCOME_UNKNOWN = 10  # a POST/PATCH met a 5xx or a dropped connection: maybe applied
    ROTATED = 11  # `rotate --if-expiring-within`: it rotated (0: nothing was due)
    INTERRUPTED = 130


class GraphkitError(Exception):
    """Base class: a message, an optional hint, and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        message = redact(str(message))
        hint = redact(str(hint)) if hint else hint
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}: {self.hint}"
        return self.message


class UsageError(GraphkitError):
    """Bad arguments detected by graphkit itself (a path, a URL, an option value)."""

    exit_code = ExitCode.USAGE


class ForeignHostError(UsageError):
    """A URL (given, or an @odata.nextLink) is not on the Graph host: no token goes there."""


class InputError(GraphkitError):
    """A file or value given by the user cannot be used."""

    exit_code = ExitCode.INPUT


class OutputExistsError(InputError):
    """Refusing to overwrite an existing file without --force."""


class CryptoError(InputError):
    """A key, certificate or CSR is unusable (malformed, wrong passphrase, mismatch...)."""


class ConfigError(GraphkitError):
    exit_code = ExitCode.CONFIG


class AuthError(GraphkitError):
    """The token endpoint refused us; carries the AADSTS code when there is one."""

    exit_code = ExitCode.AUTH

    def __init__(self, message: str, hint: str | None = None, *, code: int | None = None) -> None:
        super().__init__(message, hint)
        self.code = code


class NetworkError(GraphkitError):
    exit_code = ExitCode.NETWORK


_E = typing.TypeVar("_E", bound="GraphError")


class GraphError(GraphkitError):
    """A Graph call failed; carries the HTTP status, Graph's error code and request ids."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        # Server-controlled strings: an echoing server may put the request in them.
        self.code = redact(code) if code else code
        self.request_id = redact(request_id) if request_id else request_id
        self.client_request_id = redact(client_request_id) if client_request_id else None

    @typing.overload
    def restated(self: _E, message: str, hint: str | None) -> _E: ...
    @typing.overload
    def restated(self, message: str, hint: str | None, cls: type[_E]) -> _E: ...
    def restated(
        self, message: str, hint: str | None, cls: type[GraphError] | None = None
    ) -> GraphError:
        """This error in other words (as ``cls``, default its own class), keeping its
        status, Graph's code and the request ids."""
        return (cls or type(self))(
            message,
            hint,
            status=self.status,
            code=self.code,
            request_id=self.request_id,
            client_request_id=self.client_request_id,
        )


class PermissionDeniedError(GraphError):
    exit_code = ExitCode.PERMISSION


class NotFoundError(GraphError):
    exit_code = ExitCode.NOT_FOUND


class ThrottledError(GraphError):
    exit_code = ExitCode.THROTTLED


class OutcomeUnknownError(GraphError):
    """A request that is not idempotent (POST, PATCH) met a 5xx answer or a dropped
    connection: it may have been applied, so it was not sent again. Carries the
    ``client_request_id`` it was sent with, to look it up."""

    exit_code = ExitCode.OUTCOME_UNKNOWN


class BadRequestError(GraphError):
    """Graph 400: the path or the query options are wrong (a usage error)."""

    exit_code = ExitCode.USAGE


class UnauthorizedError(GraphError):
    """Graph 401 even after a token refresh."""

    exit_code = ExitCode.AUTH
