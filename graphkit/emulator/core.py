"""The public face of the emulator: :class:`Emulator`.

    with Emulator(users=1000) as emu:
        emu.upload_certificate(emu.default_app.client_id, cert)
        app = msal.ConfidentialClientApplication(
            emu.default_app.client_id, authority=emu.authority(),
            client_credential={...}, instance_discovery=False, verify=emu.ca_bundle)

See ``notes/EMULATOR_API.md`` for the contract.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

from graphkit.emulator import tls
from graphkit.emulator.backend import DEFAULT_DOMAIN, App, Backend, Tenant
from graphkit.emulator.faults import FaultInjector
from graphkit.emulator.log import RequestLog
from graphkit.emulator.routes import Services
from graphkit.emulator.server import EmulatorServer
from graphkit.emulator.state import StateStore
from graphkit.emulator.tokens import GRAPH_RESOURCE, TokenService

__all__ = ["Emulator"]

HOST = "127.0.0.1"  # never anything else: the admin API has no authentication


def _client_id(app: App | str) -> str:
    return app.client_id if isinstance(app, App) else str(app)


class Emulator:
    """A local Entra ID token endpoint and Microsoft Graph slice, over HTTPS.

    Args:
        users: users in the default tenant (deterministic; 100,000 is fine).
        seed: makes ids and users deterministic.
        token_lifetime: access-token lifetime in seconds (``expires_in``).
        port: TCP port on 127.0.0.1; 0 picks a free one.
        propagation_delay: seconds a newly uploaded certificate is still refused (700027).
        domain: the default tenant's domain.
        state_dir: keep the CA, tenants, apps, certificates, grants, settings, clock and
            port in this directory across restarts (see :mod:`graphkit.emulator.state`).
            A directory that holds a state wins over ``users``/``seed``/``domain``...;
            the stored port is reused when it is free and ``port`` is 0.
        throttle: a throttling budget as Graph's identity and access service applies it
            (see :mod:`graphkit.emulator.throttle`): None/"off" (the default), "auto" (by
            the tenant's size), "small", "medium", "large", or resource units per
            ``throttle_window`` seconds.
    """

    def __init__(
        self,
        users: int = 250,
        *,
        seed: int = 0,
        token_lifetime: int = 3599,
        port: int = 0,
        propagation_delay: float = 0.0,
        domain: str = DEFAULT_DOMAIN,
        state_dir: str | os.PathLike[str] | None = None,
        throttle: Any = None,
        throttle_window: float = 10.0,
    ):
        if users < 0:
            raise ValueError("users cannot be negative")
        if token_lifetime < 1:
            raise ValueError("token_lifetime must be positive")
        self.backend = Backend(
            users=users,
            seed=seed,
            token_lifetime=token_lifetime,
            propagation_delay=propagation_delay,
            default_domain=domain,
        )
        from graphkit.emulator.throttle import ThrottleBudget

        self._throttle = ThrottleBudget(self.backend.now, throttle, throttle_window)
        self._faults = FaultInjector()
        self._log = RequestLog()
        self._requested_port = port
        self._server: EmulatorServer | None = None
        self._tmp: Path | None = None
        self._ca_bundle: str | None = None
        self._tokens: TokenService | None = None
        self._store: StateStore | None = None
        self._persist_lock = threading.Lock()
        self._stored_port = 0
        if state_dir is not None:
            self._store = StateStore(Path(state_dir))
            data = self._store.load()
            if data is not None:
                self.backend.load_state(data.get("backend") or {})
                self._stored_port = int(data.get("port") or 0)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Emulator:
        """Mint (or reuse) TLS material, bind 127.0.0.1 and serve in a daemon thread."""
        if self._server is not None:
            return self
        store = self._store
        material = tls.load_or_mint(store.directory) if store else tls.material()
        tmp = Path(tempfile.mkdtemp(prefix="graphkit-emulator-"))  # mode 0700
        try:
            if store is not None:
                ca = store.directory / tls.CA_FILE  # kept: stored --ca-bundle paths work
            else:
                ca = tmp / "ca.pem"
                ca.write_bytes(material.ca_pem)
                ca.chmod(0o644)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            server_pem = tmp / "server.pem"
            fd = os.open(server_pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(material.server_cert_pem + material.server_key_pem)
            context.load_cert_chain(str(server_pem))
            server_pem.unlink()  # the key now lives only in memory
            server = self._bind(context)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        port = server.port
        base = f"https://{HOST}:{port}"
        self._tokens = TokenService(self.backend, material, [base, f"https://localhost:{port}"])
        server.services = Services(
            backend=self.backend,
            tokens=self._tokens,
            faults=self._faults,
            log=self._log,
            base_url=base,
            ca_bundle=str(ca),
            reset=self.reset,
            info=self.info,
            after_request=self._persist,
            throttle=self._throttle,
        )
        self._tmp, self._ca_bundle, self._server = tmp, str(ca), server
        # Removes the directory even if stop() is never called (at exit, at the latest).
        self._cleanup = weakref.finalize(self, shutil.rmtree, tmp, ignore_errors=True)
        server.start()
        self._persist()
        return self

    def _bind(self, context: ssl.SSLContext) -> EmulatorServer:
        """The server on the requested port; else on the stored one if it is free."""
        if self._requested_port or not self._stored_port:
            return EmulatorServer(HOST, self._requested_port, context)
        try:
            return EmulatorServer(HOST, self._stored_port, context)
        except OSError:  # taken by now: any free port (the banner shows the new one)
            return EmulatorServer(HOST, 0, context)

    def _persist(self) -> None:
        """Write the state to ``state_dir`` if it changed (no-op without one)."""
        if self._store is None:
            return
        # Snapshot and write under one lock: two requests finishing together can never
        # leave the older snapshot on disk.
        with self._persist_lock:
            data: dict[str, Any] = {"backend": self.backend.export_state()}
            data["port"] = self._server.port if self._server is not None else self._stored_port
            self._store.save(data)

    @property
    def state_dir(self) -> str | None:
        return str(self._store.directory) if self._store is not None else None

    def stop(self) -> None:
        """Stop serving, close connections, join the thread, remove the CA file (kept in
        ``state_dir`` when there is one, with the state)."""
        self._persist()
        server, self._server = self._server, None
        if server is not None:
            self._stored_port = server.port
            server.stop()
        if self._tmp is not None:
            self._cleanup()
            self._tmp = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def _need_server(self) -> EmulatorServer:
        if self._server is None:
            raise RuntimeError("the emulator is not running: use `with Emulator() as emu:`")
        return self._server

    # ---------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        return self._need_server().port

    @property
    def base_url(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def authority_host(self) -> str:
        """``https://127.0.0.1:PORT`` (no trailing slash): the Entra side."""
        return self.base_url

    @property
    def graph_url(self) -> str:
        """``https://127.0.0.1:PORT`` (no version segment): the Graph side, same server."""
        return self.base_url

    @property
    def graph_scope(self) -> str:
        return f"{self.graph_url}/.default"

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM CA certificate to trust (``verify=emu.ca_bundle``)."""
        self._need_server()
        assert self._ca_bundle is not None
        return self._ca_bundle

    def authority(self, tenant: Tenant | str | None = None) -> str:
        """``{authority_host}/{tenant id}``: what msal's ``authority=`` takes."""
        return f"{self.authority_host}/{self._tenant_id(tenant)}"

    def _tenant_id(self, tenant: Tenant | str | None) -> str:
        """The tenant's id (or domain, as given); the default tenant for None."""
        if tenant is None:
            return self.backend.default_tenant_id
        return tenant.id if isinstance(tenant, Tenant) else str(tenant)

    # ---------------------------------------------------------------- state

    @property
    def default_tenant(self) -> Tenant:
        return self.backend.tenant(self.backend.default_tenant_id).public()

    @property
    def default_app(self) -> App:
        return self.backend.app(self.backend.default_client_id).public()

    def create_tenant(
        self, domain: str, *, display_name: str | None = None, users: int = 0
    ) -> Tenant:
        tenant = self.backend.create_tenant(domain, display_name=display_name, users=users)
        self._persist()
        return tenant.public()

    def create_app(
        self,
        tenant: Tenant | str | None = None,
        display_name: str = "app",
        roles: list[str] | tuple[str, ...] = (),
    ) -> App:
        """Register an app (and its service principal) in ``tenant`` (id or domain)."""
        app = self.backend.create_app(self._tenant_id(tenant), display_name, roles)
        self._persist()
        return app.public()

    def upload_certificate(self, app: App | str, cert: Any) -> dict[str, Any]:
        """Append a certificate to the app's keyCredentials (the portal's upload).

        ``cert`` is an ``x509.Certificate`` or PEM/DER bytes. Returns the keyCredential.
        """
        kc = self.backend.upload_certificate(_client_id(app), cert)
        self._persist()
        return kc.to_graph(with_key=True)

    def remove_certificate(self, app: App | str, ident: str) -> dict[str, Any]:
        """Take a certificate off the app, by keyId or SHA-1 thumbprint (hex or x5t).

        Returns the keyCredential removed. Raises KeyError if there is none such."""
        kc = self.backend.remove_certificate(_client_id(app), ident)
        self._persist()
        return kc.to_graph(with_key=False)

    def grants(self, app: App | str | None = None) -> list[dict[str, str]]:
        """Granted application permissions: ``client_id``, ``role``, ``app_role_id``."""
        return self.backend.grants(_client_id(app) if app is not None else None)

    def key_credentials(self, app: App | str) -> list[dict[str, Any]]:
        with self.backend.lock:
            return [k.to_graph(with_key=True) for k in self.backend.app(_client_id(app)).keys]

    def grant(self, app: App | str, role: str, *, resource: str | None = None) -> None:
        """Grant an application permission (admin consent) on Graph, or on ``resource``
        (a URI or app id of a resource :meth:`add_resource` gave the app's tenant)."""
        self.backend.grant(_client_id(app), role, resource)
        self._persist()

    def revoke(self, app: App | str, role: str, *, resource: str | None = None) -> None:
        self.backend.revoke(_client_id(app), role, resource)
        self._persist()

    def roles(self, app: App | str, *, resource: str | None = None) -> list[str]:
        """The permissions granted on Graph, or on ``resource``."""
        with self.backend.lock:
            state = self.backend.app(_client_id(app))
            if resource is None:
                return sorted(state.roles)
            res = self.backend._resource_of(state.tenant_id, resource)
            return sorted(state.resource_roles.get(res.app_id, ()))

    def add_resource(
        self,
        resource: str,
        tenant: Tenant | str | None = None,
        *,
        app_id: str | None = None,
        display_name: str | None = None,
        roles: list[str] | tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        """Give ``tenant`` a resource besides Graph, as a tenant with SharePoint or Exchange
        has: a token request for ``<uri>/.default`` then gets a token whose ``aud`` is that
        URI and whose ``roles`` are those granted on it (``grant(app, role,
        resource=uri)``); any other resource stays AADSTS500011.

        ``resource``: ``"sharepoint"`` (``https://<tenant>.sharepoint.com``, -admin, -my;
        Sites.* permissions), ``"exchange"`` (``https://outlook.office365.com``;
        full_access_as_app, Exchange.ManageAsApp) or an ``https://`` / ``api://`` URI with
        its ``roles``. Returns ``app_id``, ``display_name``, ``uris``, ``roles``.
        """
        res = self.backend.add_resource(
            self._tenant_id(tenant), resource, app_id=app_id, display_name=display_name,
            roles=roles,
        )  # fmt: skip
        self._persist()
        return res.to_dict()

    def resources(self, tenant: Tenant | str | None = None) -> list[dict[str, Any]]:
        """The tenant's resources besides Graph (see :meth:`add_resource`)."""
        with self.backend.lock:
            t = self.backend.tenant(self._tenant_id(tenant))
            return [r.to_dict() for r in t.resources.values()]

    def issue_token(self, app: App | str | None = None, *, resource: str | None = None) -> str:
        """An access token minted directly (no client assertion), for Graph-only tests;
        with ``resource`` naming one :meth:`add_resource` added, a token for it."""
        client_id = _client_id(app) if app is not None else self.backend.default_client_id
        service = self._tokens or TokenService(self.backend, tls.material())
        state = self.backend.app(client_id)
        other = self.backend.find_resource(state.tenant_id, resource) if resource else None
        return service.mint(
            state, resource or self.graph_url, resource_app_id=other.app_id if other else None
        )

    @property
    def propagation_delay(self) -> float:
        return self.backend.propagation_delay

    @propagation_delay.setter
    def propagation_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("propagation_delay cannot be negative")
        self.backend.propagation_delay = float(seconds)
        self._persist()

    @property
    def token_lifetime(self) -> int:
        return self.backend.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: int) -> None:
        if seconds < 1:
            raise ValueError("token_lifetime must be positive")
        self.backend.token_lifetime = int(seconds)
        self._persist()

    def advance(self, seconds: float) -> float:
        """Move the emulator's clock forward (or back); returns its new time."""
        now = self.backend.clock.advance(seconds)
        self._persist()
        return now

    def now(self) -> float:
        return self.backend.now()

    # ---------------------------------------------------------------- users, groups

    def _users(self, tenant: Tenant | str | None) -> Any:
        return self.backend.tenant(self._tenant_id(tenant))

    def create_user(self, tenant: Tenant | str | None = None, **properties: Any) -> dict[str, Any]:
        """Create a user as ``POST /users`` would (seen by ``/users/delta``). Defaults:
        ``accountEnabled`` True, a password, ``mailNickname`` from the userPrincipalName.

        Raises:
            ValueError: a property Graph would refuse (missing, invalid, UPN taken).
        """
        from graphkit.emulator.errors import GraphApiError
        from graphkit.emulator.writes import create_user

        t = self._users(tenant)
        from graphkit.emulator.writes import PLACEHOLDER_PASSWORD

        body = {"accountEnabled": True, "passwordProfile": {"password": PLACEHOLDER_PASSWORD}}
        if "userPrincipalName" in properties:
            body["mailNickname"] = str(properties["userPrincipalName"]).split("@")[0]
        body.update(properties)
        try:
            with self.backend.lock:
                user = create_user(t.users, t.domain, body)
        except GraphApiError as err:
            raise ValueError(err.message) from None
        self._persist()
        return user

    def update_user(
        self, key: str, tenant: Tenant | str | None = None, **properties: Any
    ) -> dict[str, Any]:
        """Change a user's properties (by id or userPrincipalName), as ``PATCH`` would.

        Raises:
            KeyError: no such user. ValueError: a property Graph would refuse.
        """
        from graphkit.emulator.errors import GraphApiError
        from graphkit.emulator.writes import update_user

        t = self._users(tenant)
        try:
            with self.backend.lock:
                user = update_user(t.users, t.domain, key, properties)
        except GraphApiError as err:
            raise (KeyError if err.status == 404 else ValueError)(err.message) from None
        self._persist()
        return user

    def delete_user(
        self, key: str, tenant: Tenant | str | None = None, *, permanent: bool = False
    ) -> None:
        """Delete a user (delta reason "changed"; ``permanent``: "deleted").

        Raises:
            KeyError: no such user.
        """
        from graphkit.emulator.errors import GraphApiError
        from graphkit.emulator.writes import delete_user

        t = self._users(tenant)
        try:
            with self.backend.lock:
                delete_user(t.users, key, permanent=permanent)
        except GraphApiError as err:
            raise KeyError(err.message) from None
        self._persist()

    def get_user(self, key: str, tenant: Tenant | str | None = None) -> dict[str, Any] | None:
        """A user by id or userPrincipalName, every property (None if there is none)."""
        with self.backend.lock:
            return self._users(tenant).users.find(key)

    def set_photo(
        self,
        key: str,
        data: bytes,
        tenant: Tenant | str | None = None,
        *,
        content_type: str = "image/jpeg",
    ) -> None:
        """Give a user a profile photo, as ``PUT /users/{key}/photo/$value`` would.

        Raises:
            KeyError: no such user. ValueError: a photo Graph would refuse.
        """
        from graphkit.emulator.errors import GraphApiError
        from graphkit.emulator.writes import set_photo

        t = self._users(tenant)
        try:
            with self.backend.lock:
                set_photo(t.users, key, content_type, data)
        except GraphApiError as err:
            raise (KeyError if err.status == 404 else ValueError)(err.message) from None
        self._persist()

    def get_photo(self, key: str, tenant: Tenant | str | None = None) -> bytes | None:
        """A user's profile photo bytes (None without one).

        Raises:
            KeyError: no such user.
        """
        from graphkit.emulator.errors import GraphApiError

        try:
            with self.backend.lock:
                found = self._users(tenant).users.photo(key)
        except GraphApiError as err:
            raise KeyError(err.message) from None
        return found[1] if found is not None else None

    def reset_delta(self, tenant: Tenant | str | None = None) -> None:
        """A sync reset: every delta token issued so far answers 410 Gone."""
        with self.backend.lock:
            self._users(tenant).users.journal.epoch += 1
        self._persist()

    # ---------------------------------------------------------------- throttling

    def set_throttle(self, budget: Any, window: float | None = None) -> None:
        """Turn the throttling budget on or off (see ``throttle`` above); windows restart."""
        self._throttle.configure(budget, window)

    def throttle_stats(self) -> dict[str, Any]:
        """The budget, how many requests were charged and throttled, units spent now."""
        return self._throttle.stats()

    # ------------------------------------------- delegated sign-in (device code flow)

    def create_account(
        self,
        user_principal_name: str,
        *,
        roles: list[str] | tuple[str, ...] = (),
        display_name: str | None = None,
        tenant: Tenant | str | None = None,
    ) -> dict[str, Any]:
        """Add a user who can sign in (approve a device code), with directory roles:
        "Global Administrator", "Privileged Role Administrator", "Application
        Administrator", "Cloud Application Administrator" (none: a plain user).
        A bare name gets the tenant's domain. Returns ``id``, ``user_principal_name``..."""
        from graphkit.emulator import signin

        account = signin.create_account(
            self.backend,
            self._tenant_id(tenant),
            user_principal_name,
            display_name=display_name,
            roles=list(roles),
        )
        self._persist()
        return account.to_dict()

    def accounts(self) -> list[dict[str, Any]]:
        """The users who can sign in (approve device codes), of every tenant."""
        with self.backend.lock:
            return self.backend.accounts.export()

    def device_codes(self) -> list[dict[str, Any]]:
        """Device code requests: ``user_code``, ``client_id``, ``scopes``, ``state``, ``polls``."""
        return self.backend.device_flows.list()

    def wait_for_device_code(self, timeout: float = 30.0) -> str:
        """The user code of the newest pending request, waiting (no sleep) for one.

        Raises:
            TimeoutError: none within ``timeout`` seconds."""
        flows = self.backend.device_flows
        with flows.changed:
            ok = flows.changed.wait_for(
                lambda: any(f.state == "pending" for f in flows.by_device_code.values()), timeout
            )
            if not ok:
                raise TimeoutError("no device code was requested")
            pending = [f for f in flows.by_device_code.values() if f.state == "pending"]
            return pending[-1].user_code

    def wait_for_device_code_poll(
        self, user_code: str, polls: int = 1, timeout: float = 30.0
    ) -> None:
        """Block until the client has polled for ``user_code`` ``polls`` times.

        Raises:
            TimeoutError: it did not within ``timeout`` seconds."""
        if not self.backend.device_flows.wait_for_poll(user_code, polls, timeout):
            raise TimeoutError(f"user code {user_code} was not polled {polls} time(s)")

    def approve_device_code(self, user_code: str, user: str) -> None:
        """``user`` (upn or id) signs in and approves: the next poll gets the tokens."""
        from graphkit.emulator import signin

        signin.approve(self.backend, user_code, user)

    def decline_device_code(self, user_code: str) -> None:
        """The user declines: the next poll gets ``authorization_declined``."""
        self.backend.device_flows.set_state(user_code, "declined")

    def slow_down_device_code(self, user_code: str, times: int = 1) -> None:
        """The next ``times`` polls get ``slow_down`` (the interval grows 5 s each)."""
        self.backend.device_flows.queue_slow_down(user_code, times)

    def settings(self, **changes: Any) -> dict[str, Any]:
        """Read, or change, the delegated-side settings: ``service_principal_delay``
        (seconds a new service principal is not found), ``device_code_interval``,
        ``device_code_expires_in``, ``users_can_register_apps``."""
        from graphkit.emulator import signin

        unknown = set(changes) - set(self.backend.delegated_settings())
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        with self.backend.lock:
            signin.apply_settings(self.backend, changes)
        if changes:
            self._persist()
        return self.backend.delegated_settings()

    def application(self, app: App | str) -> App:
        """An application by client id (one created through Graph included)."""
        return self.backend.app(_client_id(app)).public()

    def find_application(self, display_name: str) -> App | None:
        """The newest application with ``display_name`` (created through Graph or not)."""
        with self.backend.lock:
            found = [a for a in self.backend.apps.values() if a.display_name == display_name]
        return found[-1].public() if found else None

    def add_password_credential(
        self, app: App | str, display_name: str = "secret"
    ) -> dict[str, Any]:
        """Give the app a passwordCredential (as the portal's "New client secret"); its
        ``secretText`` is never stored or shown. Returns the credential's metadata."""
        cred = self.backend.add_password_credential(_client_id(app), display_name)
        self._persist()
        return cred

    # ---------------------------------------------------------------- faults, log

    def add_fault(
        self,
        kind: str,
        endpoint: str = "graph",
        *,
        every: int | None = None,
        probability: float | None = None,
        seed: int | None = None,
        times: int | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> int:
        """Inject ``kind`` ("429", "503", "504", "reset", "latency", "truncate") into
        ``endpoint`` ("graph", "token", "any"; or "batch": the items of a Graph $batch, for
        429/503/504/latency) every Nth request or at probability p. Returns the fault's id."""
        fault = self._faults.add(
            kind,
            endpoint=endpoint,
            every=every,
            probability=probability,
            seed=seed,
            times=times,
            retry_after=retry_after,
            delay=delay,
        )
        return fault.id

    def remove_fault(self, fault_id: int) -> None:
        self._faults.remove(fault_id)

    def clear_faults(self) -> None:
        self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        """The configured faults with their counters (``matched``, ``injected``)."""
        return self._faults.list()

    def requests(self) -> list[dict[str, Any]]:
        """The request log: dicts with method, path, target, status, kind, fault, ..."""
        return self._log.entries()

    def clear_requests(self) -> None:
        self._log.clear()

    def reset(self) -> None:
        """Back to the start state: same default tenant and app ids, no faults, empty log,
        clock and settings as constructed."""
        self.backend.reset()
        self._throttle.configure(self._throttle.budget, self._throttle.window)
        self._faults.clear()
        self._log.clear()
        self._persist()

    # ---------------------------------------------------------------- helpers

    def environ(self, app: App | str | None = None) -> dict[str, str]:
        """Environment variables that point graphkit and azure-identity at this emulator."""
        client_id = _client_id(app) if app is not None else self.backend.default_client_id
        tenant_id = self.backend.app(client_id).tenant_id
        return {
            "AZURE_TENANT_ID": tenant_id,
            "AZURE_CLIENT_ID": client_id,
            "AZURE_AUTHORITY_HOST": self.authority_host,
            "GRAPHKIT_GRAPH_URL": self.graph_url,
            "GRAPHKIT_CA_BUNDLE": self.ca_bundle,
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
        }

    def session(self) -> Any:
        """A ``requests.Session`` that trusts the emulator's CA.

        ``trust_env`` is off so that REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment
        cannot override ``verify``.
        """
        import requests

        s = requests.Session()
        s.trust_env = False
        s.verify = self.ca_bundle
        return s

    def info(self) -> dict[str, Any]:
        """What `graphkit emulator serve` prints and `GET /_emulator/` returns."""
        tenant = self.default_tenant
        app = self.default_app
        return {
            "authority_host": self.authority_host,
            "graph_url": self.graph_url,
            "ca_bundle": self.ca_bundle,
            "tenant": {"id": tenant.id, "domain": tenant.domain},
            "app": {
                "client_id": app.client_id,
                "object_id": app.object_id,
                "display_name": app.display_name,
                "roles": self.roles(app),
                "certificates": len(self.key_credentials(app)),
            },
            "authority": self.authority(),
            "scope": self.graph_scope,
            "graph_resource_aliases": [GRAPH_RESOURCE],
            "environment": self.environ(),
            "state_dir": self.state_dir,
            "throttling": self._throttle.settings(),
        }

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        users = len(self.backend.tenant(self.backend.default_tenant_id).users)
        return f"<Emulator {where} users={users}>"
