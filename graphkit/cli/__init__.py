"""The ``graphkit`` command line: assembles the command groups and maps errors.

This is the one place where exceptions become a one-line message and an exit status
(:class:`GraphkitGroup.invoke`). Sub-modules register commands and import their
heavy dependencies inside the command bodies, so ``graphkit --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from graphkit import __version__
from graphkit.cli import _common, _typer_internals


class GraphkitGroup(_typer_internals.LeanParams, TyperGroup):
    """Root group: every command runs inside :meth:`invoke`, which maps errors."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            if _common.STATE.debug:
                raise
            _common.error_line("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if _common.STATE.debug:
                raise
            code = _common.report_exception(exc)
            raise typer.Exit(code) from None


app = typer.Typer(
    cls=GraphkitGroup,
    name="graphkit",
    help="Certificate-based, app-only Microsoft Graph access: keys, certificates, "
    "tokens and queries, with a local Entra ID + Graph emulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich costs ~70 ms of startup
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"graphkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and debug details on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """graphkit: keys, certificates, tokens and Graph queries, done safely."""
    _common.STATE.debug = debug


from graphkit.cli import certs  # noqa: E402

certs.register(app)

from graphkit.cli import query as _query  # noqa: E402

_query.register(app)

from graphkit.cli import batch as _batch  # noqa: E402

_batch.register(app)

from graphkit.cli import config as _config_cli  # noqa: E402
from graphkit.cli import token as _token  # noqa: E402

_token.register(app)
_config_cli.register(app)

from graphkit.cli import doctor as _doctor  # noqa: E402
from graphkit.cli import init as _init  # noqa: E402

_init.register(app)
_doctor.register(app)

from graphkit.cli import emulator as _emulator  # noqa: E402

_emulator.register(app)


def interruptible() -> None:
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt however graphkit was started.

    Python installs its SIGINT handler only when SIGINT is not already ignored, and a
    non-interactive shell starts its background jobs (``cmd &``, as some CI runners and
    ``make`` recipes do) with SIGINT ignored: Ctrl-C, or a test's SIGINT, then did nothing.
    """
    import contextlib
    import signal

    # Outside the main thread (graphkit embedded in another program) signal() refuses.
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    interruptible()
    _typer_internals.run(app, argv if argv is not None else sys.argv[1:])
