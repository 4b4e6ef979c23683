"""Printing for people and for scripts: rich in a terminal, plain lines in a pipe, JSON on request.

Nothing dynamic is ever read as rich markup or as an emoji code: every console here has markup,
emoji and highlighting off, and colour is attached to `Text` spans. So a key like
``odd/w[v2].txt`` or a hint like ``pip install 'model-engine-infra[redis]'`` prints as written.
When stdout is not a terminal, tables become plain aligned lines that never wrap or fold, so a
long key stays on one line for ``grep`` and ``awk``; ``--json`` prints one JSON document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

Cell = str | Text
"""A table cell or a piece of a line: plain text, or `styled` text."""

VERDICT_STYLES = {
    "ok": "green",
    "found": "green",
    "copied": "green",
    "warn": "yellow",
    "warning": "yellow",
    "error": "yellow",
    "fail": "red",
    "missing": "red",
    "high": "red",
    "skip": "dim",
    "info": "cyan",
}


def styled(text: object, style: str | None = None) -> Text:
    """``text`` shown literally (no markup), in ``style``."""
    return Text(str(text), style=style or "")


def verdict(word: str) -> Text:
    """A verdict or status word in its usual colour."""
    return styled(word, VERDICT_STYLES.get(word))


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def make_console(stream: IO[str]) -> Console:
    """A console that never interprets text: no markup, no emoji codes, no highlighting."""
    return Console(file=stream, markup=False, emoji=False, highlight=False, soft_wrap=not is_terminal(stream))


class Output:
    """What a command prints, and where: data on stdout, messages and progress on stderr."""

    def __init__(self, *, as_json: bool = False) -> None:
        self.as_json = as_json
        self.terminal = is_terminal(sys.stdout)
        self.stdout = make_console(sys.stdout)
        self.stderr = make_console(sys.stderr)

    # --- lines -----------------------------------------------------------------------------------------
    def print(self, *parts: Cell) -> None:
        """A line of results, never broken by rich (the terminal may still fold it; copying keeps it whole).

        In JSON mode it goes to stderr, so stdout stays one JSON document.
        """
        console = self.stderr if self.as_json else self.stdout
        console.print(_join(parts), soft_wrap=True)

    def info(self, *parts: Cell) -> None:
        """A message about the run (not its result), on stderr."""
        self.stderr.print(_join(parts), soft_wrap=True)

    def warn(self, message: str) -> None:
        self.stderr.print(Text.assemble(styled("warning: ", "yellow"), message), soft_wrap=True)

    # --- structured --------------------------------------------------------------------------------------
    def emit_json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def table(self, title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Cell]]) -> None:
        """A boxed table in a terminal; plain aligned columns, never wrapped, in a pipe."""
        rows = [list(row) for row in rows]
        console = self.stderr if self.as_json else self.stdout
        if not is_terminal(console.file):
            for line in plain_table(title, columns, rows):
                console.print(line, soft_wrap=True)
            return
        table = Table(title=title)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)

    def progress(self, *columns: ProgressColumn | str, transient: bool = False) -> Progress:
        """A progress display on stderr; silent unless stderr is a terminal."""
        return Progress(*columns, console=self.stderr, transient=transient, disable=not is_terminal(self.stderr.file))


def description_column() -> TextColumn:
    """The task description, literally (an object key may hold brackets)."""
    return TextColumn("{task.description}", markup=False)


def plain_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; the last column is not padded."""
    cells = [[_one_line(c) for c in row] for row in [list(columns), *rows]]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(columns))]
    lines = [title] if title else []
    for row in cells:
        padded = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
    return lines


def _one_line(cell: Cell) -> str:
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return " ".join(text.split()) if "\n" in text else text


def _join(parts: Sequence[Cell]) -> Text:
    return Text.assemble(*(p if isinstance(p, Text) else Text(str(p)) for p in parts))


__all__ = ["Cell", "Output", "description_column", "plain_table", "styled", "verdict"]
