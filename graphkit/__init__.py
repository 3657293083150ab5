"""graphkit: certificate-based, app-only Microsoft Graph access.

Heavy modules (cryptography, msal, requests) are imported lazily so that the
command line starts fast; ``graphkit.GraphClient`` is resolved on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["GraphClient", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.graph import GraphClient


def __getattr__(name: str) -> Any:
    if name == "GraphClient":
        from graphkit.graph import GraphClient

        return GraphClient
    raise AttributeError(f"module 'graphkit' has no attribute {name!r}")
