"""`graphkit doctor`: check a configuration end to end and say how to fix what fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from graphkit.cli import _connection
from graphkit.cli._common import OutputOpt, emit, output_format
from graphkit.cli._typer_internals import LeanCommand

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from graphkit.doctor import Check, Report

_BADGES = {
    "pass": "[green]PASS[/]",  # nosec B105  # a badge for a passed check
    "warn": "[yellow]WARN[/]",
    "fail": "[bold red]FAIL[/]",
    "skip": "[dim]SKIP[/]",
}


def _print_check(console: Console, check: Check) -> None:
    from rich.markup import escape

    console.print(
        f" {_BADGES[check.status]}  {check.name:<13} {escape(check.detail)}", soft_wrap=True
    )
    if check.fix and check.status in ("warn", "fail"):
        console.print(f"{'':20}[bold]fix:[/] {escape(check.fix)}", soft_wrap=True)


def _print_summary(console: Console, report: Report) -> None:
    n = report.counts()
    parts = [f"{n['pass']} passed", f"{n['warn']} warning(s)", f"{n['fail']} failed"]
    if n["skip"]:
        parts.append(f"{n['skip']} skipped")
    verdict = "[green]OK[/]" if report.ok else "[bold red]PROBLEMS FOUND[/]"
    console.print(f"{verdict}: {', '.join(parts)}")


@_connection.with_connection_flags
def doctor(
    as_json: Annotated[
        bool, typer.Option("--json", help="The same as -o json (for monitoring).")
    ] = False,
    output: OutputOpt = None,
    graph_path: Annotated[
        str | None,
        typer.Option(
            "--path",
            help="The Graph call to try, e.g. /users. Default: /organization, or when the "
            "app lacks Organization.Read.All, a read its roles allow.",
            show_default=False,
        ),
    ] = None,
    *,
    connection: _connection.Connection,
) -> None:
    """Check the configuration, key, certificate, clock, discovery, token, roles and Graph.

    Each check passes, warns or fails with the fix. Exits 1 when any check fails
    (warnings alone exit 0).
    """
    from rich.console import Console

    from graphkit.doctor import run_doctor

    fmt = output_format(output, as_json)
    as_json = fmt != "table"

    def resolve() -> Any:
        return connection.settings(validate=False)

    console = Console(highlight=False)
    on_check = None if as_json else (lambda check: _print_check(console, check))
    if not as_json:
        console.print("[bold]graphkit doctor[/]")
    report = run_doctor(resolve, graph_path=graph_path, on_check=on_check)
    if as_json:
        data = report.as_dict()
        # TSV: a line per check (name, status, detail, fix), as az's -o tsv of a list.
        emit(
            [{k: c.get(k) for k in ("name", "status", "detail", "fix")} for c in data["checks"]]
            if fmt == "tsv"
            else data,
            fmt,
        )
    else:
        _print_summary(console, report)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    from graphkit.cli._examples import epilog

    app.command("doctor", cls=LeanCommand, epilog=epilog("doctor"))(doctor)
