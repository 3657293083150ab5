"""What graphkit.cli._typer_internals relies on in Typer, checked loudly.

The module falls back to Typer's own (slower) path when an internal it uses is gone,
so a Typer release that changes them would cost start-up time without any test
failing. This test fails instead, naming what changed.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import pytest
import typer

from graphkit.cli import _typer_internals as ti


def test_typer_still_has_the_coercion_class_we_replace() -> None:
    import typer._coercion as coercion  # the private module the lean conversion reaches into

    assert hasattr(coercion, "RuntimeParam"), "typer._coercion.RuntimeParam is gone"
    assert callable(getattr(coercion.RuntimeParam, "_coerce_value", None)), (
        "RuntimeParam._coerce_value is gone: lean conversion no longer applies"
    )
    assert ti.plain_runtime_class() is not None, "the lean converter class cannot be built"


def _lean_command() -> tuple[typer.Typer, object]:
    app = typer.Typer()

    @app.command(cls=ti.LeanCommand)
    def cmd(
        name: Annotated[str, typer.Option("--name")] = "x",
        count: Annotated[int, typer.Option("--count")] = 1,
        where: Annotated[Path | None, typer.Option("--where")] = None,
    ) -> None:
        typer.echo(f"{name}:{count}:{where}")

    return app, cmd


def test_lean_command_installs_plain_conversion_on_every_plain_option() -> None:
    from typer._click.core import Context  # Typer's vendored click

    app, _ = _lean_command()
    command = typer.main.get_command(app)
    ctx = Context(command)
    params = [p for p in command.get_params(ctx) if p.name in ("name", "count", "where")]
    assert len(params) == 3
    plain = ti.plain_runtime_class()
    for param in params:
        assert hasattr(param, "type_descriptor"), "Typer options lost their type_descriptor"
        runtime = param._runtime_param  # type: ignore[attr-defined]
        assert isinstance(runtime, plain), f"{param.name}: pydantic conversion still in use"


def test_lean_conversion_converts_and_reports_bad_values() -> None:
    from typer.testing import CliRunner

    app, _ = _lean_command()
    runner = CliRunner()
    ok = runner.invoke(app, ["--name", "a", "--count", "3", "--where", "/tmp"])
    assert ok.exit_code == 0 and ok.stdout.strip() == "a:3:/tmp"
    bad = runner.invoke(app, ["--count", "three"])
    assert bad.exit_code == 2 and "'three' is not a valid integer" in bad.stderr


def test_run_builds_only_the_command_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lazy tree: typer.main.get_command sees one registered command, not all."""
    from graphkit.cli import app

    seen: list[list[str]] = []
    real = typer.main.get_command

    def spy(typer_app: typer.Typer) -> object:
        seen.append([ti._command_name(info) for info in typer_app.registered_commands])
        return real(typer_app)

    monkeypatch.setattr(typer.main, "get_command", spy)
    with pytest.raises(SystemExit):
        ti.run(app, ["thumbprint", "--help"])
    assert seen == [["thumbprint"]]


def test_the_internals_used_by_the_lazy_tree_exist() -> None:
    from typer import main as typer_main
    from typer.models import CommandInfo

    for name in ("get_command", "get_command_name", "solve_typer_info_defaults"):
        assert callable(getattr(typer_main, name, None)), f"typer.main.{name} is gone"
    fields = set(inspect.signature(CommandInfo).parameters)
    assert {"name", "callback", "help", "short_help", "hidden", "deprecated"} <= fields
