"""What the README promises, read from the README itself: expected values derived
independently of the implementation (a test comparing graphkit with its own constants
cannot fail when both change together)."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def readme_table(first_header: str, after: str) -> list[str]:
    """The first column of the first Markdown table whose first header is
    ``first_header``, below the line starting with ``after``."""
    lines = readme_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    rows: list[str] = []
    in_table = False
    for line in lines[start:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not in_table:
            in_table = line.startswith("|") and cells[0] == first_header
            continue
        if not line.startswith("|"):
            break
        if set(cells[0]) <= {"-", ":"}:
            continue  # the | --- | line
        rows.append(cells[0])
    assert rows, f"no table headed {first_header!r} after {after!r} in the README"
    return rows
