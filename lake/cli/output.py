"""Printing and saving result frames: table, csv, json or parquet (`nplake sql`)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import polars as pl
import typer
from rich.markup import escape

from lake.cli.app import err


class OutputFormat(str, Enum):
    """Output formats of `nplake sql` and other listing commands."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def write_frame(frame: pl.DataFrame, fmt: OutputFormat, out: Path | None, *, max_rows: int) -> None:
    """Print or save a result frame in the chosen format."""
    unfit = _columns_the_format_cannot_hold(frame, fmt)
    if unfit:
        err.print(
            f"[red]error:[/] --format {fmt.value} cannot hold {_UNFIT[fmt]}: column(s) "
            f"{escape(', '.join(unfit))}; use --format parquet, or convert them in the query",
            highlight=False,
        )
        raise typer.Exit(2)
    if fmt is OutputFormat.parquet:
        if out is None:
            err.print("[red]error:[/] --format parquet needs --out FILE")
            raise typer.Exit(2)
        frame.write_parquet(out)
    elif fmt is OutputFormat.csv:
        text = frame.write_csv()
        _emit(text, out)
    elif fmt is OutputFormat.json:
        text = frame.write_json()
        _emit(text + "\n", out)
    else:
        with pl.Config(tbl_rows=max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
            _emit(f"{frame}\n", out)
        if frame.height > max_rows and out is None:
            err.print(f"({frame.height} rows; showing {max_rows}: use --max-rows or --format csv)")
    if out is not None:
        err.print(f"wrote {frame.height} rows to {escape(str(out))}", highlight=False)


#: What each text format cannot represent (`nplake sql` refuses such results up front).
_UNFIT = {OutputFormat.csv: "lists, structs or bytes", OutputFormat.json: "bytes"}


def _columns_the_format_cannot_hold(frame: pl.DataFrame, fmt: OutputFormat) -> list[str]:
    """Columns CSV (nested or binary) or JSON (binary) cannot represent."""
    if fmt is OutputFormat.csv:
        return [c for c, t in frame.schema.items() if t.is_nested() or t == pl.Binary]
    if fmt is OutputFormat.json:
        return [c for c, t in frame.schema.items() if _holds_binary(t)]
    return []


def _holds_binary(dtype: pl.DataType) -> bool:
    if dtype == pl.Binary:
        return True
    if isinstance(dtype, pl.Struct):
        return any(_holds_binary(f.dtype) for f in dtype.fields)
    inner = getattr(dtype, "inner", None)
    return inner is not None and _holds_binary(inner)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
