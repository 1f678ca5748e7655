"""A progress bar over sessions for long ingests (rich), usable from the CLI and notebooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

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

from lake.jobs import Outcome

_STYLE = {"landed": "green", "unchanged": "dim", "failed": "red"}


@contextmanager
def session_progress(
    total: int, *, console: Console | None = None
) -> Iterator[Callable[[Outcome], None]]:
    """A callback that advances a bar by one session per outcome and prints each outcome."""
    console = console or Console(stderr=True, soft_wrap=True)
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sessions"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("ingest", total=total)

        def advance(outcome: Outcome) -> None:
            style = _STYLE[outcome.status]
            text = outcome.problem or (
                f"{outcome.session_id or outcome.source} ({outcome.seconds:.1f} s)"
            )
            bar.console.print(f"[{style}]{outcome.status:9}[/] {escape(text)}", highlight=False)
            bar.advance(task)

        yield advance
