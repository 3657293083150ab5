"""The ``graphkit`` application: assembles the command groups and maps errors.

This is the one place where exceptions become a one-line message and an exit status
(:class:`GraphkitGroup`): those raised by a command (:meth:`GraphkitGroup.invoke`) and
those raised while the root group itself parses (``graphkit --bogus``, an unknown
command: :meth:`GraphkitGroup.main`). Sub-modules register commands and import their
heavy dependencies inside the command bodies, so ``graphkit --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from graphkit import __version__
from graphkit.cli import _common, _typer_internals
from graphkit.errors import ExitCode


def split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether it was there (anywhere before ``--``)."""
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    else:
        head, tail = argv, []
    kept = [arg for arg in head if arg != "--debug"]
    return kept + tail, len(kept) != len(head)


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
        # Per run (tests run many in one process): from this command line only.
        _common.STATE.debug = debug
        _common.STATE.interrupted_shown = False
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except KeyboardInterrupt:
            if _common.STATE.debug:
                raise
            code = int(ExitCode.INTERRUPTED)
        except typer.Abort:  # end of input while Click prompted
            if _common.STATE.debug:
                raise
            _common.error_line("no answer (end of input): answer the prompt, or give flags")
            code = int(ExitCode.USAGE)
        except Exception as exc:
            if _common.STATE.debug:
                # The traceback, then the usual line and status: a script run with
                # --debug still tells exit 10 (a POST that may have been applied) from 1.
                import traceback

                traceback.print_exc()
            code = _common.report_exception(exc)
        if code == ExitCode.INTERRUPTED:
            # Typer turns an interrupt while parsing into a silent exit 130: say it.
            _common.interrupted()
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _common.silence_stdout()
        except (OSError, ValueError, AttributeError):
            pass
        sys.exit(code)

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
