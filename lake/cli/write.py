"""Writing commands: ingest, export, demo, plot."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lake.cli.app import DEBUG, AtOption, LakeOption, app, err, fail, open_lake
from schemas import NplakeError


@app.command(rich_help_panel="Ingest and share")
def ingest(
    paths: Annotated[
        list[str],  # not Path: s3:// and https:// sources must keep their '//'
        typer.Argument(help="NWB files, rig session folders, folders; s3:// or https:// NWB."),
    ],
    lake: LakeOption = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = 1,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="A Dask scheduler address (tcp://host:8786): prepare sessions on that "
            'cluster (pip install "nplake[distributed]").',
        ),
    ] = None,
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
    force: Annotated[
        bool, typer.Option("--force", help="Make a lake in a non-empty folder that is not one.")
    ] = False,
) -> None:
    """Ingest sessions into the lake; each session lands whole or not at all."""
    client = None
    try:
        lk = open_lake(lake)
        if scheduler is not None:
            client = _dask_client(scheduler)
        report = lk.ingest(
            paths,
            jobs=jobs,
            client=client,
            session_id=session_id,
            pickles=pickle or (),
            progress=True,
            force=force,
        )
    except Exception as exc:
        fail(exc)
        return
    finally:
        if client is not None:
            client.close()
    for outcome in report.failed:
        if outcome.traceback and DEBUG["on"]:
            err.print(f"[red]internal error while ingesting {escape(outcome.source)}:[/]")
            err.print(outcome.traceback, highlight=False, markup=False)
    print(report)
    if any(o.traceback for o in report.failed) and not DEBUG["on"]:
        err.print("(internal errors above: run with --debug for their tracebacks, and report them)")
    print(f"lake: {lk.uri}")
    if not report.ok:
        raise typer.Exit(1)


def _dask_client(address: str):
    """A Dask client connected to `address` (one-line error when Dask is missing)."""
    try:
        from distributed import Client
    except ImportError:
        from schemas import LakeError

        msg = 'distributed ingest needs Dask: pip install "nplake[distributed]"'
        raise LakeError(msg) from None
    return Client(address, timeout="30s")


@app.command(rich_help_panel="Ingest and share")
def export(
    session_ids: Annotated[list[str], typer.Argument(help="Session ids to export.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the files: sub-<subject>/<file>.nwb.")
    ],
    lake: LakeOption = None,
    at: AtOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files.")] = False,
    version: Annotated[
        int | None, typer.Option("--version", min=0, help="Same as --at VERSION.")
    ] = None,
) -> None:
    """Write sessions as NWB files (DANDI names); ingesting them again gives the same rows."""
    from lake.export import export_sessions

    try:
        lk = open_lake(lake, at if version is None else str(version))
        report = export_sessions(lk, session_ids, out, overwrite=overwrite, progress=True)
    except Exception as exc:
        fail(exc)
        return
    print(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command(rich_help_panel="Ingest and share")
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
    except Exception as exc:
        fail(exc)


class PlotKind(str, Enum):
    """Figures `nplake plot` draws."""

    raster = "raster"
    psth = "psth"
    areas = "areas"


@app.command(rich_help_panel="Ingest and share")
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
    at: AtOption = None,
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
        lk = open_lake(lake, at)
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
        fail(exc)
        return
    except ValueError as exc:  # bad window, bins, unit ids or event name
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except Exception as exc:
        fail(exc)
        return
    print(f"wrote {path}")
