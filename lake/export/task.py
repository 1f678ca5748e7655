"""Export: trials, every other interval table, licks and rewards (EventsTables), running speed.

Tables are built from whole columns; list columns become ragged columns (data + index), and
nulls become fill values recorded in the nplake module (see `ingest.nwb.write`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.export.context import ExportContext, free_name, nwb_names, record_renames
from lake.export.values import has_values

#: Interval tables with their own place in an NWBFile.
_STANDARD_INTERVALS = ("epochs", "invalid_times")
#: Interval table names another part of the file uses.
_RESERVED_INTERVALS = ("trials",)
_TIMES = ("start_time", "stop_time")


def add_trials(nwbfile: Any, ctx: ExportContext) -> None:
    """/intervals/trials: id = trial_index, start and stop time, then every task column."""
    trials = ctx.rows.table("trials")
    if trials.num_rows:
        nwbfile.trials = _time_intervals(
            ctx, "trials", "trials", trials, np.arange(trials.num_rows), "trial_index"
        )


def add_intervals(nwbfile: Any, ctx: ExportContext) -> None:
    """One TimeIntervals per `name` of intervals and stimulus_presentations.

    epochs and invalid_times go to their NWB places, tables of a processing module (`module`)
    into that module, the others under `/intervals`.
    """
    taken: set[str] = set()
    for lake in ("intervals", "stimulus_presentations"):
        rows = ctx.rows.table(lake)
        if rows.num_rows:
            _add_named_tables(nwbfile, ctx, lake, rows, taken)


def _add_named_tables(
    nwbfile: Any, ctx: ExportContext, lake: str, intervals: pa.Table, taken: set[str]
) -> None:
    names = intervals.column("name").combine_chunks()
    distinct = pc.unique(names).to_pylist()
    modules = _modules(intervals, names, distinct)
    # a module's table is named by its place (`module/name` when the name is taken): its NWB
    # name is the last part, and the decoder names it the same way again (no rename)
    plain = [n for n in distinct if modules[n] is None]
    wanted = [f"{n}_intervals" if n in _RESERVED_INTERVALS else n for n in plain]
    written_names = dict(zip(plain, nwb_names(wanted, taken=taken), strict=True))
    taken.update(written_names.values())
    record_renames(ctx, lake, "name", plain, [written_names[n] for n in plain])
    for n in distinct:
        if modules[n] is not None:
            written_names[n] = free_name(n.rsplit("/", 1)[-1], set())
    nwb = [written_names[n] for n in distinct]
    for name, written in zip(distinct, nwb, strict=True):
        rows = np.flatnonzero(pc.equal(names, name).to_numpy(zero_copy_only=False))
        block = intervals.take(pa.array(rows))
        module = modules[name]
        path = f"/processing/{module}/{written}" if module else f"/intervals/{written}"
        table = _time_intervals(ctx, lake, written, block, rows, "row", path=path)
        if module is not None:
            ctx.module_named(nwbfile, module).add(table)
        elif written in _STANDARD_INTERVALS and name == written:
            setattr(nwbfile, written, table)
        else:
            nwbfile.add_time_intervals(table)


def _modules(table: pa.Table, names: pa.Array, distinct: list[str]) -> dict[str, str | None]:
    """The processing module of each interval table (None: `/intervals`)."""
    if "module" not in table.column_names:
        return dict.fromkeys(distinct)
    module = table.column("module").combine_chunks()
    out = {}
    for name in distinct:
        values = module.filter(pc.equal(names, name)).drop_null()
        out[name] = values[0].as_py() if len(values) else None
    return out


def _time_intervals(
    ctx: ExportContext,
    lake: str,
    name: str,
    rows: pa.Table,
    positions: np.ndarray,
    id_column: str,
    *,
    path: str | None = None,
) -> Any:
    """A TimeIntervals table of `rows` (lake positions `positions`), ids from `id_column`."""
    from hdmf.common import ElementIdentifiers
    from pynwb.epoch import TimeIntervals

    path = path or f"/intervals/{name}"
    skip = {id_column, "name", "module"} if lake != "trials" else {id_column}
    ordered = [*_TIMES, *(c for c in rows.column_names if c not in (*_TIMES, *skip))]
    columns = []
    for column in ordered:
        if column in _TIMES or has_values(rows, column):
            columns += ctx.columns(
                lake, column, rows.column(column), positions=positions, path=path
            )
    description = ctx.source_description(path, "")
    return TimeIntervals(
        name=name,
        description=description or f"{name}: exported from the lake table {lake}",
        id=ElementIdentifiers(name="id", data=rows.column(id_column).to_numpy()),
        columns=columns,
    )


def add_events(nwbfile: Any, ctx: ExportContext) -> None:
    """Licks and rewards as EventsTables `/events/licks` and `/events/rewards`."""
    licks = _not_from_series(ctx, "licks")
    if licks.num_rows:
        order = pc.sort_indices(licks, sort_keys=[("time", "ascending")]).to_numpy()
        table = licks.take(pa.array(order))
        nwbfile.add_events_table(
            _events(ctx, "licks", table, order, ("source",), "licks, one row per lick")
        )
    rewards = _not_from_series(ctx, "rewards")
    if rewards.num_rows:
        present = tuple(c for c in ("volume", "auto_rewarded") if has_values(rewards, c))
        nwbfile.add_events_table(
            _events(
                ctx,
                "rewards",
                rewards,
                np.arange(rewards.num_rows),
                (*present, "source"),
                "rewards, one row per delivered reward (volume in mL)",
            )
        )


def _events(ctx: ExportContext, name: str, rows: pa.Table, positions, columns, description: str):
    """An EventsTable: timestamps, then `columns` (a per-row `source` column always)."""
    from hdmf.common import ElementIdentifiers
    from pynwb.event import EventsTable, TimestampVectorData

    stamps = TimestampVectorData(
        name="timestamp",
        description=f"{name} times in seconds on the session's master clock",
        data=rows.column("time").to_numpy(),
    )
    written = [stamps]
    for column in columns:
        values = rows.column(column) if column in rows.column_names else pa.nulls(len(rows))
        written += ctx.columns(name, column, values, positions=positions)
    # ids as an array: hdmf would convert the default list of ids one by one (~30 ms / 2,000)
    ids = ElementIdentifiers(name="id", data=np.arange(len(rows), dtype=np.int64))
    return EventsTable(name=name, description=description, columns=written, id=ids)


def add_running(nwbfile: Any, ctx: ExportContext) -> None:
    """Running speed as the TimeSeries `/processing/running/speed` (cm/s)."""
    from pynwb import TimeSeries

    running = ctx.rows.table("running_speed")
    if not running.num_rows or _series_sources(ctx, "running_speed"):
        return  # written as the series it was decoded from (lake.export.series)
    speed = running.column("speed").combine_chunks()
    if speed.null_count:
        ctx.writer.fix_nulls(
            "running_speed", "speed", np.flatnonzero(speed.is_null().to_numpy(False))
        )
        speed = pc.fill_null(speed, float("nan"))
    module = ctx.module_named(nwbfile, "running", "running of the animal on the wheel")
    ctx.table_series.append(("/processing/running/speed", "running_speed"))
    module.add(
        TimeSeries(
            name="speed",
            data=speed.to_numpy(),
            timestamps=running.column("time").to_numpy(),
            unit="cm/s",
            description="running speed",
        )
    )


def _series_sources(ctx: ExportContext, table: str) -> set[str]:
    """`source` values of `table` rows decoded from series the export writes as series."""
    info = ctx.rows.table("timeseries_info")
    if not info.num_rows:
        return set()
    rows = [r for r in info.to_pylist() if r["lake_table"] == table]
    sources = {r["path"].rsplit("/", 1)[-1] for r in rows}
    if table == "rewards" and any(r["path"].startswith("/processing/rewards/") for r in rows):
        sources.add("rewards")  # Allen's volume and autorewarded series
    return sources


def _not_from_series(ctx: ExportContext, table: str) -> pa.Table:
    """Rows of `table` that did not come from a series of the source (those come back with it)."""
    rows = ctx.rows.table(table)
    sources = _series_sources(ctx, table)
    if not rows.num_rows or not sources or "source" not in rows.column_names:
        return rows
    known = pc.is_in(rows.column("source"), pa.array(sorted(sources)))
    keep = pc.invert(pc.fill_null(known, False))
    return rows.filter(keep)
