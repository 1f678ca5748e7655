"""The `nplake` command: ingest sessions, ask SQL, look at tables, run the demo."""

from __future__ import annotations

import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape

import lake as lake_pkg
from lake.location import default_lake_uri
from schemas import NplakeError

app = typer.Typer(
    name="nplake",
    help="A columnar data lake for Neuropixels sessions: ingest NWB files and raw rig sessions, "
    "then ask questions across all sessions with SQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: Messages go to stderr, one line each however narrow the terminal or pipe.
err = Console(stderr=True, soft_wrap=True)

LakeOption = Annotated[
    str | None,
    typer.Option(
        "--lake",
        help="Lake folder or s3:// URI. Default: $NPLAKE_LAKE, else ~/.local/share/nplake/lake.",
        show_default=False,
    ),
]


class OutputFormat(str, Enum):
    """Output formats of `nplake sql`."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def _open(uri: str | None) -> lake_pkg.Lake:
    return lake_pkg.open(uri or default_lake_uri())


def _fail(exc: NplakeError) -> None:
    err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(2)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="NWB files, rig session folders, folders.")],
    lake: LakeOption = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = 1,
    session_id: Annotated[
        str | None, typer.Option(help="Session id to use instead of the source's (one source).")
    ] = None,
    pickle: Annotated[
        list[Path] | None,
        typer.Option(
            "--pickle",
            help="A behaviour pickle you trust to be loaded (pickles can run code); repeatable.",
        ),
    ] = None,
) -> None:
    """Ingest sessions into the lake; each session lands whole or not at all."""
    try:
        lk = _open(lake)
        report = lk.ingest(
            paths, jobs=jobs, session_id=session_id, pickles=pickle or (), progress=True
        )
    except NplakeError as exc:
        _fail(exc)
        return
    for outcome in report.failed:
        if outcome.traceback:
            err.print(f"[red]internal error while ingesting {escape(outcome.source)}:[/]")
            err.print(outcome.traceback, highlight=False, markup=False)
    print(report)
    print(f"lake: {lk.uri}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="DuckDB SQL over the lake's tables and views.")],
    lake: LakeOption = None,
    format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")] = None,
    max_rows: Annotated[int, typer.Option(help="Rows shown by --format table.")] = 50,
) -> None:
    """Run a SQL query across every session (tables: `nplake tables`)."""
    try:
        frame = _open(lake).sql(query)
    except NplakeError as exc:
        _fail(exc)
        return
    except Exception as exc:  # DuckDB syntax or binder errors: the user's query
        err.print(f"[red]query failed:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    write_frame(frame, format, out, max_rows=max_rows)


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


def _show(read, *, max_rows: int) -> None:
    """Print the frame `read()` returns, or fail with its nplake error."""
    try:
        frame = read()
    except NplakeError as exc:
        _fail(exc)
        return
    write_frame(frame, OutputFormat.table, None, max_rows=max_rows)


@app.command()
def sessions(lake: LakeOption = None) -> None:
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
    _show(lambda: _open(lake).sessions().select(columns), max_rows=1000)


@app.command()
def tables(lake: LakeOption = None) -> None:
    """List the tables with their current row counts."""
    _show(lambda: _open(lake).tables(), max_rows=100)


@app.command()
def describe(
    table: Annotated[str, typer.Argument(help="A table name (see `nplake tables`).")],
    lake: LakeOption = None,
) -> None:
    """Show every column of a table: type, unit and meaning."""
    _show(lambda: _open(lake).describe(table), max_rows=1000)


@app.command()
def export(
    session_ids: Annotated[list[str], typer.Argument(help="Session ids to export.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the files: sub-<subject>/<file>.nwb.")
    ],
    lake: LakeOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files.")] = False,
    version: Annotated[
        int | None, typer.Option("--version", min=0, help="Export the lake as of this version.")
    ] = None,
) -> None:
    """Write sessions as NWB files (DANDI names); ingesting them again gives the same rows."""
    from lake.export import export_sessions

    try:
        lk = _open(lake)
        lk = lk.at(version) if version is not None else lk
        report = export_sessions(lk, session_ids, out, overwrite=overwrite, progress=True)
    except NplakeError as exc:
        _fail(exc)
        return
    print(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def demo(
    lake: Annotated[
        str | None,
        typer.Option(help="Lake for the demo. Default: ~/.local/share/nplake/demo-lake."),
    ] = None,
    n_sessions: Annotated[int, typer.Option("--sessions", min=1, help="Sessions to make.")] = 4,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1)] = 1,
) -> None:
    """Generate synthetic sessions, ingest them, and answer three cross-session questions."""
    from lake.demo import run_demo

    try:
        run_demo(lake, n_sessions=n_sessions, jobs=jobs)
    except NplakeError as exc:
        _fail(exc)


class PlotKind(str, Enum):
    """Figures `nplake plot` draws."""

    raster = "raster"
    psth = "psth"
    areas = "areas"


@app.command()
def plot(
    kind: Annotated[
        PlotKind,
        typer.Argument(
            help="raster: raster + PSTH of --units of one --session around --event; "
            "psth: mean PSTH per brain area over all sessions; areas: units per area and session."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNG file.")] = Path("."),
    lake: LakeOption = None,
    session: Annotated[str | None, typer.Option(help="Session id (raster).")] = None,
    units: Annotated[
        str | None, typer.Option(help="Comma-separated unit ids of --session (raster).")
    ] = None,
    event: Annotated[
        str,
        typer.Option(help="trials.<time column>, licks, rewards or intervals.<table>."),
    ] = "trials.change_time",
    window: Annotated[
        tuple[float, float], typer.Option(help="Seconds around the event: START STOP.")
    ] = (-0.5, 1.0),
    bin_width: Annotated[float, typer.Option(help="PSTH bin width (s).")] = 0.02,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Quality preset (psth, areas): allen_visual_coding, visual_behavior, ibl."
        ),
    ] = None,
) -> None:
    """Draw a figure as a PNG file: raster, psth or areas."""
    from lake import plots

    try:
        lk = _open(lake)
        if kind is PlotKind.raster:
            if session is None or not units:
                err.print("[red]error:[/] raster needs --session and --units")
                raise typer.Exit(2)
            ids = [int(u) for u in units.split(",") if u.strip()]
            name = f"raster_{session}_{event}.png"
            path = plots.raster_psth(
                lk, session, ids, event, out=out / name, window=window, bin_width=bin_width
            )
        elif kind is PlotKind.psth:
            bins = plots.window_bins(window, bin_width)
            name = f"psth_{event}" + (f"_{preset}" if preset else "") + ".png"
            path = plots.area_psth(lk, event, out=out / name, preset=preset, bins=bins)
        else:
            name = "units_per_area" + (f"_{preset}" if preset else "") + ".png"
            path = plots.units_per_area(lk, out=out / name, preset=preset)
    except NplakeError as exc:
        _fail(exc)
        return
    except ValueError as exc:  # bad window, bins, unit ids or event name
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    print(f"wrote {path}")


def main() -> None:
    """Console entry point."""
    try:
        app()
    except NplakeError as exc:  # pragma: no cover - commands catch their own
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception:
        err.print(traceback.format_exc(), markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
