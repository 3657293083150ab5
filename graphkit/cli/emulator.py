"""`graphkit emulator serve`: the local Entra ID + Graph emulator in the foreground."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from graphkit.cli._common import GraphkitSubgroup
from graphkit.cli._typer_internals import GraphkitTyper, LeanCommand

emulator_app = GraphkitTyper(
    name="emulator",
    help="A local Entra ID + Microsoft Graph emulator over HTTPS, for tests and demos.",
    no_args_is_help=True,
    cls=GraphkitSubgroup,
)


def _get_emulator(
    port: int,
    users: int,
    seed: int,
    token_lifetime: int,
    propagation_delay: float,
    state_dir: Path | None = None,
    throttle: str = "off",
    throttle_window: float = 10.0,
) -> Any:
    from graphkit.emulator import Emulator
    from graphkit.errors import InputError, NetworkError

    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is out of range", "use 1-65535, or 0 for a free port")
    if users < 0:
        raise InputError("--users cannot be negative", "use 0 or more")
    if token_lifetime < 1:
        raise InputError("--token-lifetime must be positive", "use e.g. 3599 seconds")
    if propagation_delay < 0:
        raise InputError("--propagation-delay cannot be negative", "use 0 or more seconds")
    from graphkit.emulator.throttle import ThrottleBudget

    try:
        ThrottleBudget(lambda: 0.0, throttle, throttle_window)
    except ValueError as exc:
        raise InputError(
            f"--throttle {throttle}: {exc}",
            "use off, auto, small, medium, large, or a number of resource units; "
            "--throttle-window a positive number of seconds",
        ) from None
    try:
        emu = Emulator(
            users=users,
            seed=seed,
            port=port,
            token_lifetime=token_lifetime,
            propagation_delay=propagation_delay,
            state_dir=state_dir,
            throttle=throttle,
            throttle_window=throttle_window,
        )
    except ValueError as exc:  # a state directory others could write, or a damaged state
        raise InputError(
            f"--state-dir: {exc}", "use a directory only you can write, or a new one"
        ) from None
    try:
        return emu.start()
    except OSError as exc:
        raise NetworkError(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})",
            "choose another --port, or --port 0 for any free one",
        ) from None


def _holds_key(data: bytes) -> bool:
    return b"PRIVATE KEY-----" in data


def _upload(emu: Any, certificate: Path) -> dict[str, Any]:
    from graphkit.emulator.backend import load_certificate
    from graphkit.errors import InputError
    from graphkit.files import read_bytes

    data = read_bytes(certificate, "certificate")
    try:
        # Only the (first) certificate is read: a combined PEM's key is never touched.
        cert = load_certificate(data)
    except ValueError:
        raise InputError(
            f"{certificate} holds no PEM or DER certificate",
            "give the public .crt/.pem (a PFX is not accepted here)",
        ) from None
    try:
        result: dict[str, Any] = emu.upload_certificate(emu.default_app, cert)
    except ValueError:  # kept from an earlier run with --state-dir
        result = next(
            k
            for k in emu.key_credentials(emu.default_app)
            if k["customKeyIdentifier"] == _sha1_b64(cert)
        )
    if _holds_key(data):
        # azure-identity's EnvironmentCredential takes a PEM with the key and certificate.
        result["certificate_path"] = str(certificate.expanduser().absolute())
    return result


def _sha1_b64(cert: Any) -> str:
    import base64

    from cryptography.hazmat.primitives import hashes

    # The manifest's customKeyIdentifier is the SHA-1 thumbprint: a name, not a signature.
    return base64.b64encode(cert.fingerprint(hashes.SHA1())).decode()  # nosec B303


# azure-identity cannot take this from the environment: without it, msal first asks
# login.microsoftonline.com about the emulator's host (and fails offline).
AZURE_IDENTITY_NOTE = (
    "azure-identity: also pass disable_instance_discovery=True to the credential "
    "(no environment variable carries it)"
)


def _environment(info: dict[str, Any], uploaded: dict[str, Any] | None) -> dict[str, str]:
    env = dict(info["environment"])
    if uploaded is not None and uploaded.get("certificate_path"):
        env["AZURE_CLIENT_CERTIFICATE_PATH"] = uploaded["certificate_path"]
    return env


def _render(info: dict[str, Any], uploaded: dict[str, Any] | None) -> str:
    app = info["app"]
    base = info["graph_url"]
    ca = info["ca_bundle"]
    upload_url = f"{base}/_emulator/apps/{app['client_id']}/certificates"
    lines = [
        "graphkit emulator running (Ctrl-C to stop)",
        "",
        f"  Entra ID (authority host)  {info['authority_host']}",
        f"  Microsoft Graph            {base}/v1.0  (and {base}/beta)",
        f"  Admin API                  {base}/_emulator/",
        f"  CA bundle (trust this)     {ca}",
        "",
        f"  Tenant   {info['tenant']['domain']}  id {info['tenant']['id']}",
        f"  App      {app['display_name']}  client id {app['client_id']}",
        f"           roles: {', '.join(app['roles']) or '(none)'}",
    ]
    if info.get("state_dir"):
        lines.insert(6, f"  State kept in              {info['state_dir']}")
    if uploaded is not None:
        lines.append(f"           certificate uploaded: {uploaded['displayName']}")
    elif info["app"]["certificates"]:
        lines.append(f"           certificates: {info['app']['certificates']} (kept)")
    else:
        lines += [
            "           no certificate yet: tokens are refused (AADSTS700027) until you",
            "           upload one (the public .crt/.pem, never the key):",
            f"             curl --cacert {ca} --data-binary @my.crt \\",
            f"               {upload_url}",
            "           or from Python:",
            f'             requests.post("{upload_url}",',
            f'                 data=open("my.crt", "rb").read(), verify="{ca}")',
            "           or start with --certificate my.crt",
        ]
    lines += ["", "Environment for graphkit and azure-identity:"]
    lines += [f"  export {name}={value}" for name, value in _environment(info, uploaded).items()]
    lines += [f"  # {AZURE_IDENTITY_NOTE}"]
    lines += [
        "",
        "Then, for example:",
        "  graphkit token --certificate my.crt --private-key my.key",
        "  graphkit query /users --certificate my.crt --private-key my.key",
        "",
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM raise KeyboardInterrupt while the emulator serves.

    Installed by serve itself, not left to Python: Python installs no SIGINT handler when
    the process started with SIGINT ignored (a background job of a non-interactive shell,
    as some CI runners start commands), and then Ctrl-C would never stop the emulator.
    The previous handlers come back afterwards (serve may run inside another program).
    """
    import signal

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous: dict[signal.Signals, Any] = {}
    for stop in (signal.SIGINT, signal.SIGTERM):
        # Outside the main thread (embedded use) signal() refuses: nothing to install.
        with contextlib.suppress(ValueError):
            previous[stop] = signal.signal(stop, _stop)
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def _wait_forever() -> None:
    import threading

    # A timed wait: a signal that lands on a connection's thread only flags the main
    # thread, which an endless lock wait would never notice (Ctrl-C would hang).
    forever = threading.Event()
    while not forever.wait(0.5):
        pass


def serve(
    port: Annotated[
        int, typer.Option("--port", help="TCP port on 127.0.0.1; 0 picks a free one.")
    ] = 0,
    users: Annotated[
        int, typer.Option("--users", help="Seeded users in the default tenant.")
    ] = 250,
    seed: Annotated[int, typer.Option("--seed", help="Seed for ids and users.")] = 0,
    certificate: Annotated[
        Path | None,
        typer.Option(
            "--certificate",
            help="Upload this certificate (PEM or DER; a combined key+certificate PEM works: "
            "only the certificate is read) to the ready-made app at start.",
            show_default=False,
        ),
    ] = None,
    token_lifetime: Annotated[
        int, typer.Option("--token-lifetime", help="Access-token lifetime in seconds.")
    ] = 3599,
    propagation_delay: Annotated[
        float,
        typer.Option(
            "--propagation-delay",
            help="Refuse a newly uploaded certificate (AADSTS700027) for this many seconds.",
        ),
    ] = 0.0,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="Keep the CA, tenants, apps, certificates, grants and clock in this "
            "directory across restarts, and reuse the port if it is free.",
            show_default=False,
        ),
    ] = None,
    throttle: Annotated[
        str,
        typer.Option(
            "--throttle",
            help="Throttle as Graph's identity and access service: off, auto (by the "
            "tenant's size), small (3,500 RU per 10 s), medium (5,000), large (8,000), or "
            "a number of resource units per --throttle-window.",
        ),
    ] = "off",
    throttle_window: Annotated[
        float,
        typer.Option("--throttle-window", help="Seconds of the throttling window."),
    ] = 10.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the connection details as one JSON line.")
    ] = False,
) -> None:
    """Run the emulator in the foreground until Ctrl-C."""
    from graphkit.cli._common import install_log_handler, say

    install_log_handler()  # a serving error is one line (with --debug, a traceback)
    with _stop_on_signals():
        _serve(
            port,
            users,
            seed,
            certificate,
            token_lifetime,
            propagation_delay,
            state_dir,
            as_json,
            throttle,
            throttle_window,
        )
    say("graphkit emulator stopped")


def _serve(
    port: int,
    users: int,
    seed: int,
    certificate: Path | None,
    token_lifetime: int,
    propagation_delay: float,
    state_dir: Path | None,
    as_json: bool,
    throttle: str = "off",
    throttle_window: float = 10.0,
) -> None:
    import json
    import sys

    emu = _get_emulator(
        port,
        users,
        seed,
        token_lifetime,
        propagation_delay,
        state_dir,
        throttle,
        throttle_window,
    )
    try:
        uploaded = _upload(emu, certificate) if certificate is not None else None
        info = emu.info()
        if as_json:
            info["upload_url"] = (
                f"{info['graph_url']}/_emulator/apps/{info['app']['client_id']}/certificates"
            )
            info["environment"] = _environment(info, uploaded)
            info["notes"] = [AZURE_IDENTITY_NOTE]
            sys.stdout.write(json.dumps(info) + "\n")
        else:
            sys.stdout.write(_render(info, uploaded) + "\n")
        sys.stdout.flush()
        _wait_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


def register(app: typer.Typer) -> None:
    from graphkit.cli._examples import epilog

    emulator_app.command("serve", cls=LeanCommand, epilog=epilog("emulator serve"))(serve)
    app.add_typer(emulator_app, name="emulator")
