"""The direct path (graphkit/cli/_direct.py): a plain `graphkit query` runs without
Typer, from the same option declarations, with the same values, output, errors and exit
statuses as through Typer; and a warm query process imports none of Typer, msal,
cryptography, rich or pydantic.

The direct path is entered only through :func:`graphkit.cli.main` (a real process, or
``main()`` in-process); CliRunner always goes through Typer, which is what the
comparisons use as the reference.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
from _auth_helpers import token_cache_file
from typer.testing import CliRunner

from graphkit.cli import _direct, main
from graphkit.cli import app as cli_app
from graphkit.cli import query as query_module
from graphkit.cli._options import Option, parameters

runner = CliRunner()

# Command lines the direct path runs: what reaches the command must be what Typer passes.
PLAIN = [
    ["/users"],
    ["/users", "--top", "5", "--select", "id,displayName", "-o", "json"],
    ["--all", "/users", "--max-items", "7", "--output", "jsonl"],
    ["/users", "-H", "Prefer: a", "--header", "X-A: b", "--header=ConsistencyLevel: eventual"],
    ["/users", "--filter", "-x", "--search=displayName:ada"],
    ["/users", "--top=-5", "--count"],
    ["/users", "--top", " 12 "],
    ["beta/groups", "--api", "beta", "--orderby", "displayName", "--expand", "manager"],
    ["/users", "--query", "[].id", "--force-refresh", "--filter="],
    ["-"],
    [
        "/organization", "--profile", "p", "--tenant", "t", "--client-id", "c",
        "--certificate", "c.pem", "--private-key", "k.pem", "--cloud", "global",
        "--authority-host", "https://a", "--graph-url", "https://g", "--ca-bundle", "ca",
        "--passphrase-file", "pf",
    ],
    ["/users", "-p", "q", "--all"],
    ["/users", "-X", "POST", "--body", '{"displayName": "A"}', "--content-type", "text/plain"],
    ["/users/x/photo/$value", "--output-file", "p.jpg", "--force", "--dry-run"],
    ["/users/delta", "--delta-state", "state.json", "--delta-reset", "--select", "id"],
]  # fmt: skip

# Command lines it leaves to Typer (help, errors Typer words, forms it does not parse).
TYPERS = [
    [],
    ["--help"],
    ["/users", "-h"],
    ["/users", "extra"],
    ["/users", "--top", "x"],
    ["/users", "--top", "1", "--top", "2"],
    ["/users", "-ojson"],
    ["/users", "--bogus"],
    ["/users", "--all=true"],
    ["/users", "--", "x"],
    ["/users", "--top"],
    ["--version"],
]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What reaches the query function, by either path (its body does not run)."""
    seen: list[dict[str, Any]] = []

    def record(*, connection: Any, **kwargs: Any) -> None:
        seen.append({**kwargs, "connection": dict(connection.flags)})

    # The connection wrapper both paths call holds the function in its closure.
    (cell,) = [c for c in query_module.query.__closure__ or () if callable(c.cell_contents)]
    monkeypatch.setattr(cell, "cell_contents", record)
    return seen


@pytest.mark.parametrize("args", PLAIN, ids=" ".join)
def test_plain_command_lines_reach_the_command_with_the_values_typer_passes(
    args: list[str], calls: list[dict[str, Any]]
) -> None:
    result = runner.invoke(cli_app, ["query", *args])
    assert result.exit_code == 0, result.output
    kwargs = _direct.parse(parameters(query_module.query), args)
    assert kwargs is not None, "the direct path should run this command line"
    query_module.query(**kwargs)
    assert len(calls) == 2
    typer_values, direct_values = calls
    assert direct_values == typer_values
    assert {type(v) for v in direct_values.values()} == {type(v) for v in typer_values.values()}


@pytest.mark.parametrize("args", TYPERS, ids=lambda a: " ".join(a) or "(none)")
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert _direct.parse(parameters(query_module.query), args) is None


def test_a_command_line_the_direct_path_leaves_runs_through_typer(
    calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["query", "/users", "--top", "x"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("graphkit: error: ") and "--top" in err and calls == []


# ------------------------------------------- against the emulator, in-process


def _direct_run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    out = capsys.readouterr()
    code = exit_.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


@pytest.mark.parametrize(
    "args",
    [
        ["query", "/users", "--top", "3", "--select", "id,displayName", "-o", "json"],
        ["query", "/users", "--max-items", "4", "-o", "csv", "--select", "displayName"],
        ["query", "/users", "--top", "0"],  # graphkit's usage error, exit 2
        ["query", "/users/00000000-0000-0000-0000-000000000000"],  # Graph's 404, exit 7
        ["query", "/users", "-o", "xml"],
        ["query", "/users", "-H", "Authorization: Bearer x"],
        ["--debug", "query", "/users", "--top", "2", "-o", "jsonl"],
    ],
    ids=" ".join,
)
def test_same_output_errors_and_exit_status_as_through_typer(
    signed_in_env: Any, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _direct.parse(parameters(query_module.query), args[1 + ("--debug" in args) :])
    runner.invoke(cli_app, ["query", "/users", "--top", "1"])  # once-only notices: shown
    code, out, err = _direct_run(args, capsys)
    via_typer = runner.invoke(cli_app, args)
    out = out.replace("\r\n", "\n")  # as click's Result.stdout reads what it captured
    assert (code, out, _ids(err)) == (via_typer.exit_code, via_typer.stdout, _ids(via_typer.stderr))


def _ids(text: str) -> str:
    """Without the request ids, new on each request."""
    return re.sub(r"request-id [0-9a-f-]{36}", "request-id ...", text)


# ------------------------------------------------------------ a real process

_PROBE = """
import sys
from graphkit.cli import main
try:
    main()
finally:
    sys.stderr.write("MODULES " + ",".join(sorted({m.split(".")[0] for m in sys.modules})) + "\\n")
"""
# What the warm path must never load: the command-line framework, msal (the token comes
# from the cache), cryptography (the certificate check is remembered), rich, pydantic.
NOT_ON_THE_WARM_PATH = ("typer", "click", "msal", "msal_extensions", "cryptography", "rich",
                        "pydantic", "jmespath", "yaml")  # fmt: skip


def test_a_warm_query_process_imports_no_typer_msal_cryptography_rich_or_pydantic(
    signed_in_env: Any,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    args = ["query", "/users", "--top", "3", "--output", "json"]

    def probe() -> tuple[subprocess.CompletedProcess[str], set[str]]:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, *args], env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        marker = [ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES ")]
        assert marker, proc.stderr
        return proc, set(marker[-1][len("MODULES ") :].split(","))

    cold, loaded = probe()
    assert cold.returncode == 0, cold.stderr
    assert {"msal", "cryptography"} <= loaded  # a cold run gets a token: the probe sees it
    if not token_cache_file(Path(signed_in_env.home)).exists():
        pytest.skip("this machine has an encrypted token store: the warm path is not used")
    signed_in_env.emu.clear_requests()
    warm, loaded = probe()
    assert warm.returncode == 0, warm.stderr
    assert json.loads(warm.stdout) == json.loads(cold.stdout)
    assert [r["kind"] for r in signed_in_env.emu.requests()] == ["graph"]
    assert sorted(loaded & set(NOT_ON_THE_WARM_PATH)) == []


def test_an_option_with_anything_but_help_settings_is_left_to_typer() -> None:
    def command(
        days: Annotated[int, Option("--days", help="Days.", min=1)] = 5,
        name: Annotated[str | None, Option("--name", help="A name.")] = None,
    ) -> None: ...

    params = parameters(command)
    assert _direct.parse(params, ["--name", "x"]) == {"days": 5, "name": "x"}
    assert _direct.parse(params, ["--days", "3"]) is None  # min=1 is Typer's to check


def test_every_command_gets_its_declarations_from_typer_with_their_help() -> None:
    """Declarations made with graphkit.cli._options reach Typer for every command of
    every group (a group made with plain typer.Typer would show them without help)."""
    import typer.main

    def walk(command: Any, path: str) -> Any:
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")
        if not getattr(command, "commands", None):
            yield path, command

    for path, command in walk(typer.main.get_command(cli_app), "graphkit"):
        for param in command.params:
            assert param.name != "connection", path
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"{path}: {param.opts} has no help"
