"""The ``graphkit`` application: assembles the command groups and maps errors.

Exceptions become a one-line message and an exit status in :class:`GraphkitGroup`,
through :func:`graphkit.cli._report.conclude` (which the direct path,
:mod:`graphkit.cli._direct`, shares): those raised by a command
(:meth:`GraphkitGroup.invoke`) and those raised while the root group itself parses
(``graphkit --bogus``, an unknown command: :meth:`GraphkitGroup.main`). Sub-modules
register commands and import their heavy dependencies inside the command bodies, so
``graphkit --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from graphkit import __version__
from graphkit.cli import _common, _typer_internals
from graphkit.cli._report import conclude, split_debug
from graphkit.errors import ExitCode


def _abort(exc: Exception) -> int | None:
    """End of input while Click prompted: one line, exit 2 (the root group's own case)."""
    if not isinstance(exc, typer.Abort):
        return None
    _common.error_line("no answer (end of input): answer the prompt, or give flags")
    return int(ExitCode.USAGE)


class GraphkitGroup(_common.FirstSentenceHelp, _typer_internals.LeanParams, TyperGroup):
    """Root group: parsing and every command run inside :meth:`main`, which maps errors."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:  # a caller that handles exceptions itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv, debug = split_debug(list(sys.argv[1:] if args is None else args))

        def call() -> int:
            rv = super(GraphkitGroup, self).main(
                argv, prog_name, complete_var, standalone_mode=False, **extra
            )
            return rv if isinstance(rv, int) else 0

        conclude(call, debug=debug, translate=_abort)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            if _common.STATE.debug:
                raise
            _common.interrupted()
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if _common.STATE.debug:
                raise
            code = _common.report_exception(exc)
            raise typer.Exit(code) from None


app = _typer_internals.GraphkitTyper(
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
        bool,
        typer.Option(
            "--debug",
            help="Show tracebacks and debug details on errors (accepted anywhere on the line).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    # Listed here; handled before parsing (cli._typer_internals.run), so that Typer's
    # completion machinery is loaded only when asked for.
    install_completion: Annotated[
        str | None,
        typer.Option(
            "--install-completion",
            metavar="[SHELL]",
            help="Install tab completion for your shell (or the one named: bash, zsh, fish, "
            "powershell, pwsh).",
            show_default=False,
        ),
    ] = None,
    show_completion: Annotated[
        str | None,
        typer.Option(
            "--show-completion",
            metavar="[SHELL]",
            help="Print the completion script, to install it yourself.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """graphkit: keys, certificates, tokens and Graph queries, done safely."""
    _common.STATE.debug = _common.STATE.debug or debug


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

from graphkit.cli import app_certs as _app_certs  # noqa: E402

_app_certs.register(app)

from graphkit.cli import apps as _apps  # noqa: E402

_apps.register(app)

from graphkit.cli import emulator as _emulator  # noqa: E402

_emulator.register(app)


def run(argv: list[str]) -> None:
    """Run ``graphkit ARGV`` (see :func:`graphkit.cli.main`); exits with its status."""
    try:
        _typer_internals.run(app, argv)
    except _typer_internals.CompletionError as exc:
        shells = ", ".join(_typer_internals.COMPLETION_SHELLS)
        _common.error_line(
            f"{exc}: name the shell, e.g. `graphkit --show-completion bash` ({shells})"
        )
        sys.exit(int(ExitCode.USAGE))
