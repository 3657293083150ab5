"""Typed errors the emulator's backend raises; the HTTP layer serialises them.

Two families, because the two services speak differently: the identity platform answers
``{"error": ..., "error_description": "AADSTS...", "error_codes": [...]}`` and Graph
answers ``{"error": {"code": ..., "message": ..., "innerError": {...}}}``.
"""

from __future__ import annotations

__all__ = ["EntraError", "GraphApiError"]


class EntraError(Exception):
    """An identity-platform error: OAuth ``error``, AADSTS code and description.

    Args:
        error: the OAuth error (``invalid_client``, ``invalid_scope`` ...).
        code: the AADSTS number (700027 ...).
        description: the text after ``AADSTS<code>: ``.
        status: HTTP status (400, or 401 for ``invalid_client``).
    """

    def __init__(self, error: str, code: int, description: str, status: int | None = None):
        super().__init__(f"AADSTS{code}: {description}")
        self.error = error
        self.code = code
        self.description = description
        self.status = status if status is not None else (401 if error == "invalid_client" else 400)


class GraphApiError(Exception):
    """A Microsoft Graph error: HTTP status, Graph's ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
