"""`graphkit batch [FILE|-]`: many Graph requests as $batch, retried item by item.

Built on :mod:`graphkit.batch`; everything that prints lives here. Results go to
stdout as items complete; the summary and retry notes go to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from graphkit.cli import _connection
from graphkit.cli._common import say
from graphkit.cli._typer_internals import LeanCommand
from graphkit.errors import ExitCode, InputError, UsageError

FORMATS = ("jsonl", "json", "table", "csv", "tsv")
# The most input read (from a file or stdin): every line is parsed and checked before
# anything is sent, so all of it is held; about a million requests. (Keys and
# certificates have files.MAX_INPUT_BYTES, 1 MiB: 20,000 requests are 1.6 MB.)
MAX_INPUT = 128 * 1024 * 1024


@_connection.with_connection_flags
def batch(
    source: Annotated[
        str,
        typer.Argument(
            help='JSON lines {"id", "method", "url", "body", "headers", "dependsOn"}: '
            "a file, or - for stdin.",
            show_default=False,
        ),
    ] = "-",
    ordered: Annotated[
        bool, typer.Option("--ordered", help="Print results in input order (buffers them).")
    ] = False,
    output_format: Annotated[
        str, typer.Option("--output", "-o", help="jsonl (default), json, table, csv or tsv.")
    ] = "jsonl",
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Most $batch requests in flight (1-32).")
    ] = 8,
    api: Annotated[
        str,
        typer.Option(
            "--api", help="The Graph API version of the $batch and every request: v1.0 or beta."
        ),
    ] = "v1.0",
    *,
    connection: _connection.Connection,
) -> None:
    """Send many requests as Graph $batch requests (20 per batch, several at once).

    Each item throttled (429) or refused for the moment (503/504) is retried on its own
    after its Retry-After; concurrency backs off when Graph throttles. One JSON line per
    item, {"id", "status", "body"}, as items complete. Exit 0 only if every item got a
    2xx answer (1 otherwise).
    """
    import time

    from graphkit import output
    from graphkit.batch import BatchRunner, parse_items
    from graphkit.graph import API_VERSIONS, GraphClient

    fmt = output_format.lower()
    if fmt not in FORMATS:
        raise UsageError(
            f"--output {output_format!r} is not a batch format", f"use one of {', '.join(FORMATS)}"
        )
    if not 1 <= concurrency <= 32:
        raise UsageError(f"--concurrency {concurrency} is out of range", "use 1 to 32")
    if api not in API_VERSIONS:
        raise UsageError(f"--api {api!r} is not a Graph API version", "use v1.0 or beta")
    settings = connection.settings()
    lines = _read_lines(source)
    items = parse_items(lines, settings.graph_url, api)  # all refused before anything is sent
    if not items:
        raise InputError("no requests in the input", 'give JSON lines such as {"method": ...}')
    credential = _connection.credential_from_settings(settings)

    def client() -> GraphClient:
        return GraphClient.from_settings(settings, credential=credential, validate=False, api=api)

    runner = BatchRunner.for_clients(client, max_concurrency=concurrency)
    started = time.monotonic()
    counts = {"ok": 0, "failed": 0}
    unknown: list[int] = []  # the lines of requests that may have been applied

    def results() -> Any:
        stream = runner.run(items)
        failure: Exception | None = None
        if ordered:
            position = {item.id: n for n, item in enumerate(items)}
            answered: list[Any] = []
            try:
                answered.extend(stream)
            except Exception as exc:  # printed after the results already answered
                failure = exc
            stream = iter(sorted(answered, key=lambda r: position[r.id]))
        for result in stream:
            counts["ok" if result.ok else "failed"] += 1
            if result.outcome_unknown:
                unknown.append(result.line)
            yield result.as_dict()
        if failure is not None:
            raise failure

    try:
        output.write_items(results(), fmt, sys.stdout, select="id,status,body")
        sys.stdout.flush()
    finally:
        runner.close()
    seconds = time.monotonic() - started
    say(
        f"{len(items)} requests in {runner.batches_sent} batches: {counts['ok']} succeeded, "
        f"{counts['failed']} failed, {runner.retried} retries; {seconds:.1f} s "
        f"(concurrency {runner.concurrency.lowest}-{runner.concurrency.highest})"
    )
    if unknown:
        from graphkit.errors import OutcomeUnknownError

        n = len(unknown)
        raise OutcomeUnknownError(
            f"{n} request{'s' if n != 1 else ''} may have been applied ({_spans(unknown)} of "
            "the input): their $batch met a 5xx or a dropped connection and was not sent "
            'again (status "outcomeUnknown" in the output)',
            "check whether they took effect before sending them again",
        )
    if counts["failed"]:
        raise typer.Exit(int(ExitCode.ERROR))


def _spans(lines: list[int]) -> str:
    """'line 3', 'lines 21-40, 45': input line numbers, runs joined."""
    runs: list[list[int]] = []
    for n in sorted(lines):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)
    return f"line{'s' if len(lines) != 1 else ''} {text}"


def _read_lines(source: str) -> list[str]:
    """The input's lines, at most MAX_INPUT bytes of it (a stdin that never ends, such
    as /dev/zero, is refused rather than read into memory)."""
    if source == "-":
        raw = sys.stdin.buffer.read(MAX_INPUT + 1)
        if len(raw) > MAX_INPUT:
            raise InputError(
                f"the input on stdin is too large (more than {MAX_INPUT:,} bytes)",
                "split it into several runs",
            )
        source = "the input on stdin"
    else:
        from graphkit.files import read_bytes

        raw = read_bytes(
            Path(source),
            "batch input file",
            max_size=MAX_INPUT,
            special_hint="give a file on disk, or pipe it in: graphkit batch - < FILE",
        )
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{source} is not UTF-8 text", "give JSON lines") from None


def register(app: typer.Typer) -> None:
    from graphkit.cli._examples import epilog

    app.command("batch", cls=LeanCommand, epilog=epilog("batch"))(batch)
