"""A progress bar over sessions (rich) for long ingests and exports, from the CLI and notebooks.

`progress_bar` is the bar; each caller says how one session's outcome reads
(`session_progress` is the ingest's, `lake.export.batch` has the export's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

if TYPE_CHECKING:
    from lake.jobs import Outcome

T = TypeVar("T")

_STYLE = {"landed": "green", "unchanged": "dim", "failed": "red"}


@contextmanager
def progress_bar(
    verb: str, total: int, line: Callable[[T], str], *, console: Console | None = None
) -> Iterator[Callable[[T], None]]:
    """A callback that advances a bar by one session per outcome and prints `line(outcome)`.

    Parameters
    ----------
    verb
        What is done to the sessions ("ingest", "export"): the bar's label.
    total
        How many sessions the bar counts to.
    line
        One outcome as a line of rich markup.
    console
        Where to draw (default: stderr).
    """
    console = console or Console(stderr=True, soft_wrap=True)
    columns = (
        SpinnerColumn(),
        TextColumn(f"[bold]{verb}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sessions"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(verb, total=total)

        def advance(outcome: T) -> None:
            bar.console.print(line(outcome), highlight=False)
            bar.advance(task)

        yield advance


def session_progress(
    total: int, *, console: Console | None = None
) -> AbstractContextManager[Callable[[Outcome], None]]:
    """The ingest's bar: one line per source, landed, unchanged or failed (and why)."""
    return progress_bar("ingest", total, _ingest_line, console=console)


def _ingest_line(outcome: Outcome) -> str:
    style = _STYLE[outcome.status]
    text = outcome.problem or f"{outcome.session_id or outcome.source} ({outcome.seconds:.1f} s)"
    return f"[{style}]{outcome.status:9}[/] {escape(text)}"
