"""Reading commands: sql, sessions, tables, describe, history, diff (all take --at)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import duckdb
import polars as pl
import typer
from rich.markup import escape

from lake.cli.app import AtOption, LakeOption, app, err, fail, open_lake
from lake.cli.output import OutputFormat, write_frame


@app.command(rich_help_panel="Ask across sessions")
def sql(
    query: Annotated[str, typer.Argument(help="A read-only DuckDB query over the lake.")],
    lake: LakeOption = None,
    at: AtOption = None,
    format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")] = None,
    max_rows: Annotated[int, typer.Option(help="Rows shown by --format table.")] = 50,
) -> None:
    """Run a SQL query across every session (tables: `nplake tables`); results via --out."""
    try:
        frame = open_lake(lake, at).sql(query)
    except duckdb.Error as exc:  # syntax or binder errors: the user's query
        err.print(f"[red]query failed:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except Exception as exc:
        fail(exc)
        return
    write_frame(frame, format, out, max_rows=max_rows)


def show(read: Callable[[], pl.DataFrame], *, max_rows: int) -> None:
    """Print the frame `read()` returns, or fail with one line."""
    try:
        frame = read()
    except Exception as exc:
        fail(exc)
        return
    write_frame(frame, OutputFormat.table, None, max_rows=max_rows)


@app.command(rich_help_panel="Ask across sessions")
def sessions(lake: LakeOption = None, at: AtOption = None) -> None:
    """List the sessions in the lake."""
    columns = [
        "session_id",
        "session_start_time",
        "subject_id",
        "genotype",
        "session_type",
        "source_kind",
        "n_units",
        "n_spikes",
        "n_trials",
        "ingested_at",
    ]
    show(lambda: open_lake(lake, at).sessions().select(columns), max_rows=1000)


@app.command(rich_help_panel="Ask across sessions")
def tables(lake: LakeOption = None, at: AtOption = None) -> None:
    """List the tables with their current rows, columns and files."""
    show(lambda: open_lake(lake, at).tables(), max_rows=100)


@app.command(rich_help_panel="Ask across sessions")
def describe(
    table: Annotated[str, typer.Argument(help="A table name (see `nplake tables`).")],
    lake: LakeOption = None,
    at: AtOption = None,
) -> None:
    """Show every column of a table: type, unit and meaning."""
    show(lambda: open_lake(lake, at).describe(table), max_rows=1000)


@app.command(rich_help_panel="Ask across sessions")
def history(
    lake: LakeOption = None,
    limit: Annotated[int, typer.Option(help="Newest versions to list (0: all).")] = 20,
) -> None:
    """List the lake's versions: when, what, which sessions."""
    show(lambda: open_lake(lake).history.versions(limit=limit or None), max_rows=10_000)


@app.command(rich_help_panel="Ask across sessions")
def diff(
    before: Annotated[str, typer.Argument(help="A version, release name or date-time.")],
    after: Annotated[str, typer.Argument(help="A later one (or any other).")],
    lake: LakeOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
) -> None:
    """What changed between two versions: sessions added, removed, replaced; rows per table."""
    if format not in ("text", "json"):
        err.print("[red]error:[/] --format is text or json")
        raise typer.Exit(2)
    try:
        result = open_lake(lake).diff(before, after)
    except Exception as exc:
        fail(exc)
        return
    print(result.to_json() if format == "json" else str(result))
