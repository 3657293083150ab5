"""`graphkit init` and `graphkit demo`: from nothing to a working, tested profile.

The flow itself is :func:`graphkit.onboarding.run_init`; this module asks the
questions (Rich prompts on a terminal, flags otherwise) and prints the progress, all
on stderr. ``--json`` puts a summary on stdout for scripts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from graphkit.cli._common import OutputOpt, PassphraseFileOpt, install_log_handler, output_format
from graphkit.cli._typer_internals import LeanCommand
from graphkit.errors import ExitCode, InputError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from graphkit.onboarding import (
        Credentials,
        InitRequest,
        InitResult,
        SmokeResult,
        UploadInstructions,
    )

DEFAULT_WAIT = 300  # keep in step with onboarding.DEFAULT_WAIT (not imported: startup time)

TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="Directory (tenant) ID or domain, e.g. contoso.onmicrosoft.com."),
]
ClientIdOpt = Annotated[
    str | None,
    typer.Option("--client-id", help="Application (client) ID of the app registration."),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="Profile to create or update [default: default]."),
]
DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Where to write the key and certificate [default: <state dir>/credentials/<profile>].",
    ),
]
DaysOpt = Annotated[
    int | None, typer.Option("--days", help="Certificate validity in days [default: 365].")
]
SizeOpt = Annotated[int, typer.Option("--size", help="RSA key size: 2048, 3072 or 4096.")]
YesOpt = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        help="Answer yes: reuse an existing key, and the certificate is already uploaded "
        "(go on to the test).",
    ),
]
NoTestOpt = Annotated[
    bool, typer.Option("--no-test", help="Stop after saving the profile (no token, no Graph call).")
]
NewKeyOpt = Annotated[
    bool,
    typer.Option(
        "--new-key",
        help="Make a new key and certificate even if the profile has a pair (the old pair "
        "is kept, under its own names).",
    ),
]
CerOpt = Annotated[bool, typer.Option("--cer", help="Also write the certificate as DER (.cer).")]
PfxOpt = Annotated[
    bool,
    typer.Option(
        "--pfx", help="Also write a PFX (key + certificate), protected by --passphrase-file."
    ),
]
WaitOpt = Annotated[
    int,
    typer.Option(
        "--wait",
        help="Seconds to keep retrying while Entra does not know the uploaded certificate "
        "yet (AADSTS700027).",
    ),
]
CloudOpt = Annotated[
    str | None,
    typer.Option("--cloud", help="global, usgov, usgovdod or china (stored in the profile)."),
]
AuthorityHostOpt = Annotated[
    str | None,
    typer.Option(
        "--authority-host",
        help="Identity host, https://host[:port] (stored; for the emulator or a proxy).",
    ),
]
GraphUrlOpt = Annotated[
    str | None,
    typer.Option("--graph-url", help="Graph base URL without version (stored in the profile)."),
]
CaBundleOpt = Annotated[
    str | None,
    typer.Option("--ca-bundle", help="CA file to trust for both hosts (stored in the profile)."),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="The same as -o json: a summary on stdout (progress on stderr)."),
]


# ------------------------------------------------------------------ output


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class RichHooks:
    """Prompts and progress for :func:`graphkit.onboarding.run_init`, on stderr."""

    def __init__(self, console: Console, *, interactive: bool, yes: bool, profile: str) -> None:
        self.console = console
        self.interactive = interactive
        self.yes = yes
        self.profile = profile
        self.saved_profile: str | None = None
        self._last_attempt = 0
        self._live_line = False
        self._tty = console.is_terminal

    # -- plain lines

    def step(self, message: str) -> None:
        self._end_live_line()
        self.console.print(f"  {message}", soft_wrap=True, markup=False)

    def warn(self, message: str) -> None:
        self._end_live_line()
        self.console.print(f"[yellow]warning:[/] {_esc(message)}", soft_wrap=True)

    # -- questions

    def confirm_reuse(self, existing: Credentials) -> bool:
        if not self.interactive or self.yes:
            return True
        from graphkit.cli import _prompt

        return _prompt.confirm(
            self.console,
            f"Profile [bold]{_esc(self.profile)}[/] already has a key and certificate "
            f"(SHA-1 {existing.thumbprint}, expires {existing.not_after:%Y-%m-%d}). "
            "Reuse them?",
            # A certificate about to expire is better replaced than reused.
            default=not existing.expiry_warning_due,
        )

    def show_upload(self, credentials: Credentials, instructions: UploadInstructions) -> None:
        show_upload(self.console, credentials, instructions)

    def saved(self, profile: str, config_path: Path | None, made_default: bool) -> None:
        self.saved_profile = profile
        where = f" in {config_path}" if config_path else ""
        default = " (the default profile)" if made_default else ""
        self.console.print(
            f"[green]✓[/] Saved profile [bold]{_esc(profile)}[/]{_esc(where)}{default}.",
            soft_wrap=True,
        )

    def confirm_upload(self, instructions: UploadInstructions) -> bool:
        if self.yes:
            return True
        if not self.interactive:
            self.console.print(
                "Next: upload the certificate, then test the profile with "
                f"[bold]graphkit init --profile {_esc(self.profile)} --yes[/] "
                f"(or [bold]graphkit doctor --profile {_esc(self.profile)}[/]).",
                soft_wrap=True,
            )
            return False
        from graphkit.cli import _prompt

        ok = _prompt.confirm(
            self.console, "Have you uploaded the certificate? Test the profile now", default=True
        )
        if not ok:
            self.console.print(
                "Skipped the test. Once the certificate is uploaded, run "
                f"[bold]graphkit doctor --profile {_esc(self.profile)}[/].",
                soft_wrap=True,
            )
        return ok

    # -- the wait for propagation

    def waiting(self, retry_in: float, left: float, attempt: int) -> None:
        text = (
            f"Entra ID does not know the certificate yet (AADSTS700027): retrying in "
            f"{max(1, round(retry_in))} s, giving up in {_mmss(left)}"
        )
        if self._tty:
            self.console.file.write("\r\x1b[2K" + text)
            self.console.file.flush()
            self._live_line = True
        elif attempt != self._last_attempt:
            self.console.print(text, soft_wrap=True, markup=False)
        self._last_attempt = attempt

    def _end_live_line(self) -> None:
        if self._live_line:
            self.console.file.write("\r\x1b[2K")
            self.console.file.flush()
            self._live_line = False

    def token(self, smoke: SmokeResult) -> None:
        self._end_live_line()
        waited = f" after waiting {round(smoke.waited)} s" if smoke.waited >= 1 else ""
        self.console.print(f"[green]✓[/] Token acquired{waited}.")
        if smoke.roles:
            self.console.print(f"  Roles: {_esc(', '.join(smoke.roles))}")
        else:
            self.warn(
                "the token carries no roles: add Microsoft Graph application permissions "
                "(e.g. User.Read.All) to the app and have an administrator grant admin consent"
            )


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


def _mmss(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60}:{s % 60:02d}"


def show_upload(
    console: Console, credentials: Credentials, instructions: UploadInstructions
) -> None:
    """The thumbprint and where to upload: the portal page and the az line."""
    i = instructions
    left = credentials.validity
    console.print()
    verb = "Reusing" if credentials.reused else "Created"
    console.print(f"[bold]{verb} the certificate to upload to app {i.client_id}[/]")
    rows = [
        ("Certificate", str(i.cert_path)),
        ("Thumbprint", f"{i.thumbprint}  (SHA-1, as the portal shows it)"),
        ("Expires", f"{credentials.not_after:%Y-%m-%d} ({left})"),
        ("Private key", f"{credentials.key_path}  (mode 0600: never upload or share it)"),
    ]
    for kind, path in sorted(credentials.extra.items()):
        rows.append((kind.upper(), str(path)))
    for label, value in rows:
        console.print(f"  {label + ':':<13} {_esc(value)}", soft_wrap=True)
    console.print()
    console.print("Upload it in the portal (Certificates & secrets > Certificates > Upload):")
    console.print(f"  {_esc(i.portal_url)}", soft_wrap=True)
    console.print("or with the Azure CLI:")
    if i.az_cloud:
        console.print(f"  az cloud set --name {i.az_cloud}", soft_wrap=True)
    console.print(f"  {_esc(i.az_command)}", soft_wrap=True)
    if i.custom_authority:
        console.print(
            f"[dim]  (the authority {_esc(i.custom_authority)} is not a Microsoft cloud: upload "
            "through whatever stands in for the portal there, e.g. the emulator's "
            "upload_certificate() or its /_emulator/ admin API)[/]",
            soft_wrap=True,
        )
    console.print()


def show_smoke(console: Console, result: InitResult, *, try_hint: bool = True) -> None:
    smoke = result.smoke
    if smoke is None or smoke.probe is None:
        return
    probe = smoke.probe
    if not probe.ok:
        console.print(f"[red]✗[/] {_esc(probe.refused or 'GET ' + probe.path)}", soft_wrap=True)
        console.print(f"  [bold]To fix:[/] {_esc(probe.permission_error or '')}", soft_wrap=True)
        return
    org = f" ({_esc(probe.organization)})" if probe.organization else ""
    console.print(f"[green]✓[/] GET {_esc(probe.path)} works{org}.", soft_wrap=True)
    if probe.note:
        console.print(f"  [dim]Note: {_esc(probe.note)}.[/]", soft_wrap=True)
    if try_hint:
        console.print(f"Ready. Try: [bold]{_esc(try_command(result))}[/]", soft_wrap=True)
    else:
        console.print("Ready.")


def try_command(result: InitResult) -> str:
    """The command the "Ready" line suggests: one that works when copied (variables
    that would override the tested profile are unset for it)."""
    import shlex

    unset = "".join(f"-u {var} " for var in sorted(result.env_overrides))
    command = f"graphkit query /users --top 5 --profile {shlex.quote(result.profile)}"
    return f"env {unset}{command}" if unset else command


# ------------------------------------------------------------------ prompts


def _ask(console: Console, label: str, default: str | None, check: Any) -> str:
    """A Rich prompt that repeats until ``check`` accepts the answer."""
    from graphkit.cli import _prompt
    from graphkit.errors import GraphkitError

    while True:
        answer = _prompt.text(console, label, default)
        try:
            return str(check(answer))
        except GraphkitError as exc:
            console.print(f"[red]{_esc(exc.message)}[/]: {_esc(exc.hint or '')}", soft_wrap=True)


def _ask_int(console: Console, label: str, default: int, check: Any) -> int:
    from graphkit.cli import _prompt
    from graphkit.errors import GraphkitError

    while True:
        answer = _prompt.integer(console, label, default)
        try:
            check(answer)
            return int(answer)
        except GraphkitError as exc:
            console.print(f"[red]{_esc(exc.message)}[/]: {_esc(exc.hint or '')}", soft_wrap=True)


_CONNECTION_ENV = {
    "cloud": "GRAPHKIT_CLOUD",
    "authority_host": "AZURE_AUTHORITY_HOST",
    "graph_url": "GRAPHKIT_GRAPH_URL",
    "ca_bundle": "GRAPHKIT_CA_BUNDLE",
}


def _env_default(var: str, check: Any) -> str | None:
    """A prompt's default from the environment, when the variable holds a valid value."""
    import os

    from graphkit.errors import GraphkitError

    value = os.environ.get(var, "").strip()
    if not value:
        return None
    try:
        return str(check(value))
    except GraphkitError:
        return None


def _interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def connection_values(
    console: Console, connection: dict[str, str | None], stored: dict[str, Any]
) -> dict[str, str]:
    """The hosts, cloud and CA bundle a new or updated profile stores: the flags, else
    the profile's, else the environment's (said on ``console``: nothing asks for them),
    so that the profile works, and is tested, on its own."""
    import os

    from graphkit import settings as profiles

    values = {k: v for k, v in connection.items() if v}
    if "cloud" in values:
        values["cloud"] = profiles.normalize_cloud(values["cloud"])
    for key in ("cloud", "authority_host", "graph_url", "ca_bundle"):
        if key not in values and stored.get(key):
            values[key] = stored[key]
    for key, var in _CONNECTION_ENV.items():
        value = os.environ.get(var, "").strip()
        if key not in values and value:
            values[key] = profiles.normalize_cloud(value) if key == "cloud" else value
            console.print(f"  Saving {key} = {_esc(value)} (from {var}) in the profile.")
    if values.get("ca_bundle"):
        values["ca_bundle"] = str(Path(values["ca_bundle"]).expanduser().resolve())
    return values


def build_request(
    console: Console,
    *,
    interactive: bool,
    tenant: str | None,
    client_id: str | None,
    profile: str | None,
    directory: Path | None,
    days: int | None,
    size: int,
    passphrase_file: Path | None,
    no_test: bool,
    new_key: bool,
    cer: bool,
    pfx: bool,
    wait: int,
    connection: dict[str, str | None],
) -> InitRequest:
    """Flags, then the stored profile, then prompts (on a terminal) or errors."""
    from graphkit import onboarding
    from graphkit import settings as profiles
    from graphkit.cli._common import read_passphrase

    if interactive:
        console.print(
            "[bold]graphkit init[/]: a key and certificate for an app registration, "
            "a profile, and a test. Press Ctrl-C at any time: nothing is left half-done."
        )
    name = profile
    # Asked only in a fully interactive run: given IDs as flags, the default name is fine.
    if name is None and interactive and not (tenant or client_id):
        name = _ask(
            console, "Profile name", onboarding.DEFAULT_PROFILE, profiles.check_profile_name
        )
    name = profiles.check_profile_name(name or onboarding.DEFAULT_PROFILE)
    stored = onboarding.stored_profile(name) or {}
    if stored and interactive:
        console.print(f"Updating the existing profile [bold]{_esc(name)}[/].")
    tenant = tenant or stored.get("tenant")
    client_id = client_id or stored.get("client_id")
    # The environment's values (e.g. an emulator's `export AZURE_TENANT_ID=...`) are
    # offered as defaults; what is answered is what is saved, and tested.
    if interactive and not tenant:
        tenant = _ask(
            console,
            "Tenant (directory ID or domain, e.g. contoso.onmicrosoft.com)",
            _env_default("AZURE_TENANT_ID", profiles.check_tenant),
            profiles.check_tenant,
        )
    if interactive and not client_id:
        client_id = _ask(
            console,
            "Application (client) ID",
            _env_default("AZURE_CLIENT_ID", profiles.check_client_id),
            profiles.check_client_id,
        )
    # A value a script must give: a usage error (exit 2), as for a missing argument.
    if not tenant:
        raise UsageError("no tenant given", "give --tenant (a GUID or a domain)")
    if not client_id:
        raise UsageError("no client id given", "give --client-id (the Application (client) ID)")
    has_pair = bool(stored.get("certificate")) and not new_key
    if days is None:
        days = 365
        if interactive and not has_pair:
            days = _ask_int(console, "Certificate validity in days", 365, onboarding._check_days)
    if passphrase_file is None and stored.get("passphrase_file") and not new_key:
        # The profile's key is encrypted: reuse it with the passphrase the profile names.
        passphrase_file = Path(stored["passphrase_file"])
    passphrase = read_passphrase(passphrase_file, False)
    if pfx and not passphrase:
        console.print(
            "[yellow]warning:[/] the PFX will not be protected by a passphrase "
            "(give --passphrase-file); it is written with mode 0600"
        )
    values = connection_values(console, connection, stored)
    return onboarding.InitRequest(
        tenant=tenant,
        client_id=client_id,
        profile=name,
        directory=directory,
        days=days,
        size=size,
        passphrase=passphrase,
        passphrase_file=passphrase_file,
        new_key=new_key,
        write_cer=cer,
        write_pfx=pfx,
        connection=values,
        test=not no_test,
        wait=float(wait),
    )


def _interrupted(console: Console, hooks: RichHooks | None) -> NoReturn:
    """Ctrl-C: one ``graphkit: error: interrupted`` line saying what was kept (a
    profile saved before the upload prompt, or nothing), then exit 130."""
    from graphkit.cli._common import interrupted

    if hooks is not None:
        hooks._end_live_line()
    console.print()
    if hooks is not None and hooks.saved_profile:
        interrupted(
            f"profile {hooks.saved_profile} is saved; once the certificate is uploaded, "
            f"check it with `graphkit doctor --profile {hooks.saved_profile}`"
        )
    else:
        interrupted("no file and no profile were left behind")
    raise typer.Exit(int(ExitCode.INTERRUPTED))


def run_flow(
    console: Console,
    request: InitRequest,
    hooks: RichHooks,
    *,
    as_json: bool | str,
    try_hint: bool = True,
) -> InitResult:
    """Run init with ``hooks``; report an interruption or a Graph 403 properly."""
    from graphkit import onboarding
    from graphkit.cli._common import emit
    from graphkit.errors import PermissionDeniedError

    try:
        result = onboarding.run_init(request, hooks)
    except KeyboardInterrupt:
        _interrupted(console, hooks)
    except EOFError:
        raise InputError("no answer (end of input)", "answer the prompts, or give flags") from None
    show_smoke(console, result, try_hint=try_hint)
    if as_json:
        emit(result.as_dict(), "json" if as_json is True else str(as_json))
    if result.smoke is not None and result.smoke.permission_error:
        raise PermissionDeniedError(
            "the profile's token works but Graph refused the test call",
            "see the advice above: add the permission and grant admin consent",
        )
    return result


# ------------------------------------------------------------------ commands


def init(
    tenant: TenantOpt = None,
    client_id: ClientIdOpt = None,
    profile: ProfileOpt = None,
    directory: DirOpt = None,
    days: DaysOpt = None,
    size: SizeOpt = 2048,
    passphrase_file: PassphraseFileOpt = None,
    yes: YesOpt = False,
    no_test: NoTestOpt = False,
    new_key: NewKeyOpt = False,
    cer: CerOpt = False,
    pfx: PfxOpt = False,
    wait: WaitOpt = DEFAULT_WAIT,
    cloud: CloudOpt = None,
    authority_host: AuthorityHostOpt = None,
    graph_url: GraphUrlOpt = None,
    ca_bundle: CaBundleOpt = None,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Run the offline demo instead (same as `graphkit demo`)."),
    ] = False,
) -> None:
    """Set up a profile: key + self-signed certificate, where to upload it, then a test.

    On a terminal it asks for what the flags do not give; otherwise it runs from flags
    alone (--yes: the certificate is already uploaded, go on to the test). Re-running
    reuses the profile's key and certificate unless --new-key. Ctrl-C leaves no
    half-written file and no half-made profile.
    """
    if sandbox:
        if tenant or client_id:
            raise InputError(
                "--sandbox makes its own tenant and app", "leave out --tenant and --client-id"
            )
        demo(profile=profile or "demo", users=None, home=None, propagation_delay=0.0)
        return
    fmt = output_format(output, as_json)
    if wait < 0:
        raise InputError(f"--wait {wait} is negative", "give a number of seconds")
    install_log_handler()
    console = _stderr_console()
    interactive = _interactive()
    try:
        request = build_request(
            console,
            interactive=interactive,
            tenant=tenant,
            client_id=client_id,
            profile=profile,
            directory=directory,
            days=days,
            size=size,
            passphrase_file=passphrase_file,
            no_test=no_test,
            new_key=new_key,
            cer=cer,
            pfx=pfx,
            wait=wait,
            connection={
                "cloud": cloud,
                "authority_host": authority_host,
                "graph_url": graph_url,
                "ca_bundle": ca_bundle,
            },
        )
    except KeyboardInterrupt:
        _interrupted(console, None)
    except EOFError:
        raise InputError("no answer (end of input)", "answer the prompts, or give flags") from None
    hooks = RichHooks(console, interactive=interactive, yes=yes, profile=request.profile)
    run_flow(console, request, hooks, as_json=False if fmt == "table" else fmt)


def demo(
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile name to create.")] = (
        "demo"
    ),
    users: Annotated[
        int | None, typer.Option("--users", help="Users in the emulated tenant [default: 250].")
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Keep the demo's state (GRAPHKIT_HOME) in this directory instead of a "
            "temporary one that is removed at the end.",
        ),
    ] = None,
    propagation_delay: Annotated[
        float,
        typer.Option(
            "--propagation-delay",
            help="Make the emulator refuse the fresh upload (AADSTS700027) for this many "
            "seconds, to see init wait it out.",
        ),
    ] = 0.0,
) -> None:
    """The whole mission offline: emulator, init, token, and a /users table.

    Starts graphkit's Entra ID + Graph emulator in-process, creates a tenant and an app
    with User.Read.All, runs `graphkit init` against it (the upload done through the
    emulator, standing in for the portal), then `graphkit token` and
    `graphkit query /users`. Your own configuration is not touched: everything lives in
    a temporary GRAPHKIT_HOME unless --home is given.
    """
    from graphkit import demo as demo_lib
    from graphkit.onboarding import check_profile_name

    profile = check_profile_name(profile)
    install_log_handler()
    console = _stderr_console()
    console.print(
        "[bold]graphkit demo[/]: the whole setup, offline. graphkit's own emulator of "
        "Entra ID and Microsoft Graph runs in this process on 127.0.0.1; nothing leaves "
        "this machine."
    )
    console.print("Starting the emulator...")
    with demo_lib.demo_world(users=users, home=home, propagation_delay=propagation_delay) as world:
        emu = world.emulator
        kept = "kept" if not world.temporary else "removed at the end"
        for label, value in (
            ("Emulator", f"{emu.authority_host} (CA bundle {emu.ca_bundle})"),
            ("Tenant", f"{world.tenant.domain} ({world.tenant.id})"),
            (
                "App",
                f"{demo_lib.DEMO_APP!r}, client id {world.app.client_id}, granted "
                f"{', '.join(demo_lib.DEMO_ROLES)}",
            ),
            ("GRAPHKIT_HOME", f"{world.home} ({kept}; your own configuration is untouched)"),
        ):
            console.print(f"  {label + ':':<14} {_esc(value)}", soft_wrap=True)
        request = demo_lib.init_request(world, profile)
        _show_command(
            console,
            [
                "init",
                "--profile",
                profile,
                "--tenant",
                request.tenant,
                "--client-id",
                request.client_id,
                "--authority-host",
                emu.authority_host,
                "--graph-url",
                emu.graph_url,
                "--ca-bundle",
                "<emulator CA>",
                "--yes",
            ],
        )
        hooks = _DemoHooks(console, world, profile=profile)
        # The demo's profile and emulator are gone once it ends: no "Try" naming them.
        run_flow(console, request, hooks, as_json=False, try_hint=False)
        steps = [
            ["token", "--profile", profile],
            [
                "query",
                "/users",
                "--profile",
                profile,
                "--top",
                "10",
                "--select",
                "displayName,userPrincipalName,department",
                "--output",
                "table",
            ],
        ]
        for args in steps:
            _show_command(console, args)
            code = _run_command(args)
            sys.stdout.flush()
            if code:
                raise typer.Exit(code)
        kept = (
            ""
            if world.temporary
            else f" Its state is kept in {_esc(str(world.home))} (the emulator stopped with it)."
        )
        console.print(
            f"\nThat was the first page of the demo tenant's {world.users} users.{kept}\n"
            "Next: `graphkit init` for your own tenant's app; `graphkit emulator serve` "
            "to keep an emulator running for your own scripts.",
            soft_wrap=True,
        )


def _show_command(console: Console, args: list[str]) -> None:
    import shlex

    sys.stdout.flush()
    console.print()
    console.print(f"[bold cyan]$ graphkit {_esc(shlex.join(args))}[/]", soft_wrap=True)


class _DemoHooks(RichHooks):
    """init's hooks, with the emulator's API standing in for the portal's upload."""

    def __init__(self, console: Console, world: Any, *, profile: str) -> None:
        super().__init__(console, interactive=False, yes=True, profile=profile)
        self.world = world

    def confirm_upload(self, instructions: UploadInstructions) -> bool:
        self.console.print(
            f"[bold]Uploading[/] {_esc(str(instructions.cert_path))} to app "
            f"{instructions.client_id} through the emulator's API "
            "(standing in for the portal's Upload certificate)",
            soft_wrap=True,
        )
        self.world.upload(instructions.cert_path)
        return True


def _run_command(args: list[str]) -> int:
    """Run a graphkit command in this process (the demo's `token` and `query` steps)."""
    from typer.main import get_command

    from graphkit.cli import app

    command = get_command(app)
    try:
        # Not standalone: an exit status comes back as the return value.
        rv = command.main(args=args, prog_name="graphkit", standalone_mode=False)
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 1))
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # a usage error
            exc.show()
            return int(exc.exit_code)
        raise
    return rv if isinstance(rv, int) else 0


def register(app: typer.Typer) -> None:
    from graphkit.cli._examples import epilog

    app.command("init", cls=LeanCommand, epilog=epilog("init"))(init)
    app.command("demo", cls=LeanCommand, epilog=epilog("demo"))(demo)
