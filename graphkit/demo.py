"""The offline demo's world: the built-in emulator standing in for Entra ID, Graph and
the portal, and a private GRAPHKIT_HOME.

:func:`demo_world` starts the emulator in this process, creates a tenant and an app
with User.Read.All granted, points ``GRAPHKIT_HOME`` at a temporary directory (or the
one given) and hides the environment variables that would override a profile
(``AZURE_TENANT_ID``...), so the demo can neither read nor change the user's real
configuration. Everything is put back on exit. ``graphkit demo`` drives it
(``graphkit.cli.init``); nothing here prints.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEMO_DOMAIN", "DEMO_ROLES", "DemoWorld", "demo_world", "init_request"]

DEMO_DOMAIN = "fabrikam.onmicrosoft.com"  # short: UPNs fit an 80-column table
DEMO_APP = "graphkit demo"
DEMO_ROLES = ("User.Read.All",)
DEFAULT_USERS = 250
# Variables that take precedence over a profile (flags > environment > profile): the
# demo hides them so that a user's real settings cannot leak into it, or it into them.
HIDDEN_ENV = (
    "GRAPHKIT_HOME",
    "GRAPHKIT_PROFILE",
    "GRAPHKIT_KEY_PASSPHRASE",
    "GRAPHKIT_CLOUD",
    "GRAPHKIT_GRAPH_URL",
    "GRAPHKIT_CA_BUNDLE",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
)


@dataclass
class DemoWorld:
    emulator: Any  # graphkit.emulator.Emulator
    tenant: Any  # its Tenant (id, domain)
    app: Any  # its App (client_id, object_id, ...)
    home: Path
    temporary: bool
    users: int = DEFAULT_USERS

    def upload(self, cert_path: Path) -> dict[str, Any]:
        """What the portal's "Upload certificate" does, done through the emulator."""
        from graphkit.files import read_bytes

        result: dict[str, Any] = self.emulator.upload_certificate(
            self.app.client_id, read_bytes(cert_path, "certificate")
        )
        return result


@contextlib.contextmanager
def _environment(home: Path) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in HIDDEN_ENV}
    try:
        for name in HIDDEN_ENV:
            os.environ.pop(name, None)
        os.environ["GRAPHKIT_HOME"] = str(home)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def demo_world(
    *,
    users: int | None = None,
    home: Path | None = None,
    propagation_delay: float = 0.0,
) -> Iterator[DemoWorld]:
    """Start the emulator with a demo tenant and app; restore everything on exit.

    Args:
        users: seeded users in the emulator (default 250).
        home: use this GRAPHKIT_HOME and keep it; default a temporary directory that is
            removed on exit.
        propagation_delay: seconds a fresh upload is refused with AADSTS700027.
    """
    from graphkit.emulator import Emulator
    from graphkit.files import ensure_private_dir

    temporary = home is None
    root = Path(tempfile.mkdtemp(prefix="graphkit-demo-")) if home is None else home
    try:
        ensure_private_dir(root)
        # The default tenant stays small: the demo's own tenant holds the users.
        with _environment(root), Emulator(users=10) as emu:
            tenant, app = _tenant_and_app(emu, users or DEFAULT_USERS)
            emu.propagation_delay = float(propagation_delay)
            yield DemoWorld(emu, tenant, app, root, temporary, users or DEFAULT_USERS)
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


def _tenant_and_app(emu: Any, users: int) -> tuple[Any, Any]:
    """A demo tenant of ``users`` users with an app granted User.Read.All."""
    tenant = emu.create_tenant(DEMO_DOMAIN, display_name="Fabrikam (graphkit demo)", users=users)
    app = emu.create_app(tenant.id, display_name=DEMO_APP, roles=list(DEMO_ROLES))
    return tenant, app


def init_request(world: DemoWorld, profile: str) -> Any:
    """The InitRequest `graphkit init` would build from the demo's flags."""
    from graphkit.onboarding import InitRequest

    emu = world.emulator
    return InitRequest(
        tenant=str(world.tenant.domain),
        client_id=str(world.app.client_id),
        profile=profile,
        connection={
            "authority_host": str(emu.authority_host),
            "graph_url": str(emu.graph_url),
            "ca_bundle": str(emu.ca_bundle),
        },
        test=True,
        wait=60.0,
    )
