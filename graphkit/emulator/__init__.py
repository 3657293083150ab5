"""A local Entra ID + Microsoft Graph emulator over HTTPS.

    from graphkit.emulator import Emulator

    with Emulator(users=1000) as emu:
        emu.upload_certificate(emu.default_app, cert)
        ...  # msal / requests against emu.authority_host and emu.graph_url

Layers: ``backend`` (state, no HTTP), ``users`` (lazy deterministic users), ``odata``
(query options and paging), ``tokens`` (assertions and access tokens), ``routes``
(thin handlers), ``server`` (threaded HTTPS), ``faults``, ``core`` (this API).
"""

from __future__ import annotations

from graphkit.emulator.backend import App, Tenant
from graphkit.emulator.core import Emulator

__all__ = ["App", "Emulator", "Tenant"]
