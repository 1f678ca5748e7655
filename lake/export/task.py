"""Export: trials, every other interval table, licks and rewards (EventsTables), running speed.

Tables are built from whole columns; list columns become ragged columns (data + index), and
nulls become fill values recorded in the nplake module (see `ingest.nwb.write`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.export.context import ExportContext, nwb_names, record_renames
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
    """One TimeIntervals table per intervals `name` (epochs and invalid_times in their place)."""
    intervals = ctx.rows.table("intervals")
    if not intervals.num_rows:
        return
    names = intervals.column("name").combine_chunks()
    distinct = pc.unique(names).to_pylist()
    wanted = [f"{n}_intervals" if n in _RESERVED_INTERVALS else n for n in distinct]
    nwb = nwb_names(wanted)
    record_renames(ctx, "intervals", "name", distinct, nwb)
    for name, written in zip(distinct, nwb, strict=True):
        rows = np.flatnonzero(pc.equal(names, name).to_numpy(zero_copy_only=False))
        block = intervals.take(pa.array(rows))
        table = _time_intervals(ctx, "intervals", written, block, rows, "row")
        if written in _STANDARD_INTERVALS and name == written:
            setattr(nwbfile, written, table)
        else:
            nwbfile.add_time_intervals(table)


def _time_intervals(
    ctx: ExportContext, lake: str, name: str, rows: pa.Table, positions: np.ndarray, id_column: str
) -> Any:
    """A TimeIntervals table of `rows` (lake positions `positions`), ids from `id_column`."""
    from hdmf.common import ElementIdentifiers
    from pynwb.epoch import TimeIntervals

    skip = {id_column, "name"} if lake == "intervals" else {id_column}
    ordered = [*_TIMES, *(c for c in rows.column_names if c not in (*_TIMES, *skip))]
    columns = []
    for column in ordered:
        if column in _TIMES or has_values(rows, column):
            columns += ctx.columns(lake, column, rows.column(column), positions=positions)
    return TimeIntervals(
        name=name,
        description=f"{name}: exported from the lake table {lake}",
        id=ElementIdentifiers(name="id", data=rows.column(id_column).to_numpy()),
        columns=columns,
    )


def add_events(nwbfile: Any, ctx: ExportContext) -> None:
    """Licks and rewards as EventsTables `/events/licks` and `/events/rewards`."""
    licks = ctx.rows.table("licks")
    if licks.num_rows:
        order = pc.sort_indices(licks, sort_keys=[("time", "ascending")]).to_numpy()
        table = licks.take(pa.array(order))
        nwbfile.add_events_table(
            _events(ctx, "licks", table, order, ("source",), "licks, one row per lick")
        )
    rewards = ctx.rows.table("rewards")
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
    if not running.num_rows:
        return
    speed = running.column("speed").combine_chunks()
    if speed.null_count:
        ctx.writer.fix_nulls(
            "running_speed", "speed", np.flatnonzero(speed.is_null().to_numpy(False))
        )
        speed = pc.fill_null(speed, float("nan"))
    module = nwbfile.create_processing_module("running", "running of the animal on the wheel")
    module.add(
        TimeSeries(
            name="speed",
            data=speed.to_numpy(),
            timestamps=running.column("time").to_numpy(),
            unit="cm/s",
            description="running speed",
        )
    )
