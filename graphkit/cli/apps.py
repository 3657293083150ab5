"""`graphkit app create`: an app registration with its certificate and granted Graph
application permissions, made through Graph by a signed-in administrator, saved as a
profile and tested.

The sign-in is :mod:`graphkit.admin_signin` (device code), the Graph calls
:mod:`graphkit.provisioning`, the key, certificate, profile and test those of
``graphkit init`` (:mod:`graphkit.onboarding`, :mod:`graphkit.cli.init`). Progress,
the device code and the countdowns go to stderr; ``--json`` / ``-o json`` puts a
summary on stdout, and ``--dry-run`` the calls a run would make.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from graphkit.cli import _connection
from graphkit.cli._common import OutputOpt, emit, install_log_handler, output_format
from graphkit.cli._typer_internals import GraphkitTyper, LeanCommand
from graphkit.cli.init import DEFAULT_WAIT, RichHooks, _esc, _mmss, _stderr_console
from graphkit.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from graphkit.admin_signin import DeviceCode
    from graphkit.onboarding import Credentials

NameOpt = Annotated[
    str | None,
    typer.Option("--name", help="Display name of the new app registration."),
]
PermissionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--permission",
        help="A Microsoft Graph application permission to grant, e.g. User.Read.All (repeatable).",
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile", "-p", help="Profile to save the app in [default: the --name, if it fits]."
    ),
]
TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        help="Tenant GUID or domain [default: the profile's, else the administrator's home "
        "tenant].",
    ),
]
AdminClientIdOpt = Annotated[
    str | None,
    typer.Option(
        "--admin-client-id",
        help="Public client the administrator signs in through [default: Microsoft Graph "
        "Command Line Tools, 14d82eec-204b-4c2f-b7e8-296a70dab67e].",
    ),
]
ClientIdOpt = Annotated[
    str | None,
    typer.Option(
        "--client-id",
        help="Finish an existing app instead of creating one: its certificate, service "
        "principal and the grants it lacks.",
    ),
]
DaysOpt = Annotated[int, typer.Option("--days", help="Certificate validity in days.")]
WaitOpt = Annotated[
    int,
    typer.Option(
        "--wait",
        help="Seconds to keep retrying while the new service principal or certificate is "
        "not found yet.",
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the Graph calls it would make and stop: no sign-in, no request, no file.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="The same as -o json: a summary on stdout.")]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Create the app even if the tenant holds an app registration of that name.",
    ),
]

# The profile app create saves to when --profile is not given and --name is no
# usable profile name.
_PROFILE_FALLBACK = "default"


class AppHooks(RichHooks):
    """init's progress lines and token report, with the sign-in and this command's waits."""

    def __init__(self, console: Console, *, profile: str) -> None:
        super().__init__(console, interactive=False, yes=True, profile=profile)
        self.waiting_for = "the new service principal is not found yet"
        self._shown: tuple[str, int] | None = None

    def show_code(self, code: DeviceCode) -> None:
        self._end_live_line()
        self.console.print(
            f"[bold]Sign in as an administrator:[/] open {_esc(code.verification_uri)} and "
            f"enter the code [bold]{_esc(code.user_code)}[/]",
            soft_wrap=True,
        )

    def tick(self, left: float) -> None:
        self._live(f"Waiting for the sign-in: the code expires in {_mmss(left)}", 0)

    def waiting(self, retry_in: float, left: float, attempt: int) -> None:
        self._live(
            f"{self.waiting_for}: retrying in {max(1, round(retry_in))} s, giving up in "
            f"{_mmss(left)}",
            attempt,
        )

    def _live(self, text: str, attempt: int) -> None:
        """One line rewritten in place on a terminal; on a pipe, once per attempt."""
        if self._tty:
            self.console.file.write("\r\x1b[2K" + text)
            self.console.file.flush()
            self._live_line = True
        elif (self.waiting_for, attempt) != self._shown:
            self.console.print(text, soft_wrap=True, markup=False)
        self._shown = (self.waiting_for, attempt)


def _default_profile(name: str | None) -> str:
    from graphkit.errors import ConfigError
    from graphkit.settings import check_profile_name

    if name:
        try:
            return check_profile_name(name)
        except ConfigError:
            pass
    return _PROFILE_FALLBACK


def _check_profile(profile: str, stored: dict[str, Any], client_id: str | None) -> None:
    """Never repoint a profile at another app: a profile of app X is only finished."""
    held = stored.get("client_id")
    if held and held != client_id:
        if client_id is None:
            raise UsageError(
                f"profile {profile!r} exists already, for app {held}",
                f"choose another --profile, or give --client-id {held} to finish that app",
            )
        raise UsageError(
            f"profile {profile!r} is for app {held}, not {client_id}",
            "choose another --profile for this app",
        )


def _pair(
    profile: str, stored: dict[str, Any], directory: Path, hooks: AppHooks
) -> Credentials | None:
    """The profile's existing key and certificate (a re-run), when usable."""
    from graphkit import onboarding

    if not stored.get("certificate"):
        return None
    return onboarding.find_existing(profile, stored, directory, None, hooks)


def _certificate_der(path: Path) -> bytes:
    from graphkit import crypto
    from graphkit.files import read_bytes

    bundle = crypto.load_certificate_bundle(read_bytes(path, "certificate"), None)
    return crypto.dump_certificate(bundle.certificate, der=True)


def _dry_run(
    console: Console,
    *,
    name: str | None,
    permissions: list[str],
    client_id: str | None,
    pair: Credentials | None,
    profile: str,
    days: int,
    graph_url: str,
    fmt: str,
    force: bool = False,
) -> None:
    """Print the calls; a new certificate is made in memory only, to show its body."""
    from graphkit import crypto, onboarding, provisioning

    if pair is not None:
        der, subject = _certificate_der(pair.cert_path), pair.subject
    else:
        key = crypto.generate_private_key(2048)
        cert = crypto.self_sign(
            key, crypto.parse_subject(cn=onboarding._subject_cn(profile)), days=days
        )
        der, subject = crypto.dump_certificate(cert, der=True), cert.subject.rfc4514_string()
    calls = [
        c.shown(graph_url)
        for c in provisioning.plan(
            name=name,
            permissions=permissions,
            certificate_der=der,
            client_id=client_id,
            certificate_name=subject,
            allow_same_name=force,
        )
    ]
    console.print(
        "Dry run: no sign-in, nothing sent to Graph, no file written. A run would sign "
        "an administrator in, then make these calls:",
        soft_wrap=True,
    )
    if fmt != "table":
        emit({"dry_run": True, "profile": profile, "calls": calls}, fmt)
        return
    import json
    import sys

    for i, call in enumerate(calls, 1):
        sys.stdout.write(f"{i}. {call['method']} {call['url']}\n   # {call['purpose']}\n")
        if "body" in call:
            for line in json.dumps(call["body"], indent=2).splitlines():
                sys.stdout.write(f"   {line}\n")


def create(
    name: NameOpt = None,
    permission: PermissionOpt = None,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    admin_client_id: AdminClientIdOpt = None,
    client_id: ClientIdOpt = None,
    days: DaysOpt = 365,
    wait: WaitOpt = DEFAULT_WAIT,
    dry_run: DryRunOpt = False,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    cloud: _connection.CloudOpt = None,
    authority_host: _connection.AuthorityHostOpt = None,
    graph_url: _connection.GraphUrlOpt = None,
    ca_bundle: _connection.CaBundleOpt = None,
) -> None:
    """Create an app registration with a certificate and granted Graph permissions.

    An administrator signs in with a device code (the code on stderr); the app is
    created with the new certificate, its service principal made, each permission
    granted (admin consent), the profile saved, and then tested as init tests it.
    An Application Administrator can create the app; granting needs a Privileged Role
    Administrator or Global Administrator: a re-run with --client-id finishes it.
    """
    from graphkit import onboarding
    from graphkit import settings as profiles

    fmt = output_format(output, as_json)
    if wait < 0:
        raise UsageError(f"--wait {wait} is negative", "give a number of seconds")
    onboarding._check_days(days)
    permissions = [p.strip() for p in permission or [] if p.strip()]
    if not permissions:
        raise UsageError("no permission given", "give --permission, e.g. User.Read.All")
    if client_id is not None:
        client_id = profiles.check_client_id(client_id)
    elif not (name or "").strip():
        raise UsageError("no --name given", "give the new app's display name with --name")
    name = name.strip() if name else None
    if admin_client_id is not None:
        admin_client_id = profiles.check_client_id(admin_client_id)
    install_log_handler()
    console = _stderr_console()
    profile = profiles.check_profile_name(profile) if profile else _default_profile(name)
    stored = onboarding.stored_profile(profile) or {}
    _check_profile(profile, stored, client_id)
    tenant = profiles.check_tenant(tenant) if tenant else stored.get("tenant")
    connection = {
        "cloud": cloud,
        "authority_host": authority_host,
        "graph_url": graph_url,
        "ca_bundle": ca_bundle,
    }
    from graphkit.cli.init import connection_values

    values = connection_values(console, connection, stored)
    settings = profiles.resolve_settings(
        overrides={"tenant": tenant, **values},
        env=onboarding._without_settings_env(),
        no_profile=True,
    )
    hooks = AppHooks(console, profile=profile)
    directory = onboarding.credentials_dir(profile)
    pair = _pair(profile, stored, directory, hooks)
    if dry_run:
        _dry_run(
            console,
            name=name,
            permissions=permissions,
            client_id=client_id,
            pair=pair,
            profile=profile,
            days=days,
            graph_url=settings.graph_url,
            fmt=fmt,
            force=force,
        )
        return
    try:
        _run(
            console,
            hooks,
            settings,
            name=name,
            permissions=permissions,
            profile=profile,
            values=values,
            admin_client_id=admin_client_id,
            client_id=client_id,
            days=days,
            wait=wait,
            pair=pair,
            directory=directory,
            fmt=fmt,
            force=force,
        )
    except KeyboardInterrupt:
        _interrupted(hooks, profile)


def _interrupted(hooks: AppHooks, profile: str) -> NoReturn:
    """Ctrl-C: one line saying what was kept, then exit 130."""
    from graphkit.cli._state import interrupted
    from graphkit.errors import ExitCode

    hooks._end_live_line()
    if hooks.saved_profile:
        from graphkit import onboarding

        client = (onboarding.stored_profile(profile) or {}).get("client_id")
        interrupted(
            f"app {client} exists and profile {profile} holds its key: `graphkit app create "
            f"--profile {profile} --client-id {client} --permission ...` finishes it"
        )
    else:
        interrupted(
            "no profile was saved and no key file left; if the sign-in had finished, check "
            "the tenant's app registrations for the app before running again"
        )
    raise typer.Exit(int(ExitCode.INTERRUPTED))


def _run(
    console: Console,
    hooks: AppHooks,
    settings: Any,
    *,
    name: str | None,
    permissions: list[str],
    profile: str,
    values: dict[str, str],
    admin_client_id: str | None,
    client_id: str | None,
    days: int,
    wait: int,
    pair: Credentials | None,
    directory: Path,
    fmt: str,
    force: bool = False,
) -> None:
    """Sign in, make the key (unless the profile has one), provision, save, test."""
    from graphkit import admin_signin, onboarding, provisioning, rotation
    from graphkit import settings as profiles
    from graphkit.cli._common import warn
    from graphkit.cli.init import show_smoke
    from graphkit.errors import GraphkitError, PermissionDeniedError

    admin = admin_signin.sign_in(
        settings,
        admin_signin.APP_CREATE_SCOPES,
        client_id=admin_client_id,
        on_code=hooks.show_code,
        on_tick=hooks.tick,
    )
    hooks.step(f"Signed in as {admin.user or admin.user_id}")
    tenant = settings.tenant or admin.tenant_id
    config = profiles.config_path()
    saved: list[bool] = []
    txn = onboarding._Transaction()
    with txn.guard():
        creds = pair or onboarding.create_credentials(
            txn, directory, profile, size=2048, days=days, passphrase=None, hooks=hooks
        )

        def on_app(outcome: provisioning.Outcome) -> None:
            # The app trusts this certificate from now on: keep the key, in a profile.
            profiles.save_profile(
                profile,
                {
                    "tenant": tenant,
                    "client_id": outcome.client_id,
                    "object_id": outcome.object_id,
                    "certificate": str(creds.cert_path),
                    "private_key": str(creds.key_path),
                    **values,
                },
                path=config,
            )
            txn.committed = True
            # rotate removes this certificate later by its keyId, even if the app may
            # not read its own registration
            rotation.remember_key_id(profile, outcome.client_id, creds.thumbprint, outcome.key_id)
            saved.append(profiles.read_config(config).get("default_profile") == profile)
            hooks.saved(profile, config, saved[0])

        try:
            with admin_signin.graph_client(
                settings, admin, on_wait=lambda s, why: warn(f"{why}; waiting {s:.1f} s")
            ) as graph:
                outcome = provisioning.provision(
                    graph,
                    name=name,
                    permissions=permissions,
                    certificate_der=_certificate_der(creds.cert_path),
                    certificate_name=creds.subject,
                    client_id=client_id,
                    allow_same_name=force,
                    on_step=hooks.step,
                    on_app=on_app,
                    hooks=hooks,
                    wait=float(wait),
                )
        except GraphkitError as exc:
            if saved:
                exc.hint = (
                    f"{exc.hint}; profile {profile} holds the app's key and certificate"
                    if exc.hint
                    else f"profile {profile} holds the app's key and certificate"
                )
            raise
    hooks._end_live_line()
    granted = outcome.granted + outcome.already_granted
    verb = "Created" if outcome.app_created else "Finished"
    console.print(
        f"[green]✓[/] {verb} app [bold]{_esc(outcome.display_name or '')}[/] (client id "
        f"{outcome.client_id}, object id {outcome.object_id}); granted "
        f"{_esc(', '.join(granted))}.",
        soft_wrap=True,
    )
    assert outcome.client_id is not None
    hooks.waiting_for = "Entra ID does not know the new app or its certificate yet"
    tested = profiles.resolve_settings(profile=profile, env=onboarding._without_settings_env())
    smoke = onboarding.smoke_test(
        tested,
        wait=float(wait),
        hooks=hooks,
        retry_codes=frozenset({700027, 7000229}),
    )
    result = onboarding.InitResult(
        profile=profile,
        config_path=config,
        credentials=creds,
        instructions=onboarding.upload_instructions(outcome.client_id, creds, values),
        made_default=bool(saved and saved[0]),
        smoke=smoke,
        tested=True,
        env_overrides=onboarding.environment_overrides(profile),
    )
    show_smoke(console, result)
    if fmt != "table":
        summary = result.as_dict()
        for key in ("portal_url", "az_command", "extra", "reused"):
            summary.pop(key, None)
        emit({**summary, "app": outcome.as_dict(), "signed_in_as": admin.user}, fmt)
    if smoke.permission_error:
        raise PermissionDeniedError(
            "the app's token works but Graph refused the test call",
            "see the advice above: grant the permission the call needs",
        )


def register(app: typer.Typer) -> None:
    from graphkit.cli._common import GraphkitSubgroup
    from graphkit.cli._examples import epilog

    group = GraphkitTyper(
        name="app",
        help="App registrations: create one with its certificate and granted permissions.",
        no_args_is_help=True,
        rich_markup_mode=None,
        cls=GraphkitSubgroup,
    )
    group.command("create", cls=LeanCommand, epilog=epilog("app create"))(create)
    app.add_typer(group, name="app")
