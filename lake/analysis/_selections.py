"""Unit and event selections as frames: a preset or event name through `Lake.sql`, or your frame."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from lake.analysis import _sql
from lake.presets import PRESETS

if TYPE_CHECKING:
    from lake.lake import Lake

#: A unit selection: None (every unit), a quality preset name, or a frame with
#: (session_id, unit_id) columns.
UnitsLike = str | pl.DataFrame | pl.LazyFrame | None
#: Events: a name of the `events` view ('trials.change_time', 'licks', 'rewards',
#: 'intervals.<name>') or a frame with (session_id, time[, event_index]) columns.
EventsLike = str | pl.DataFrame | pl.LazyFrame


def unit_pairs(lake: Lake, units: UnitsLike) -> pl.DataFrame:
    """The (session_id, unit_id) pairs of a unit selection, distinct and sorted."""
    if units is None or isinstance(units, str):
        return lake.sql(_sql.unit_selection(units))
    if isinstance(units, pl.DataFrame | pl.LazyFrame):
        frame = units.lazy().select(
            pl.col("session_id").cast(pl.String), pl.col("unit_id").cast(pl.Int64)
        )
        return frame.unique().sort("session_id", "unit_id").collect()
    msg = f"units must be None, a preset name ({', '.join(PRESETS)}) or a polars frame"
    raise TypeError(msg)


def event_rows(lake: Lake, events: EventsLike) -> pl.DataFrame:
    """Finite-time events as (session_id, event_index, time), sorted by session and index."""
    if isinstance(events, str):
        frame = lake.sql(_sql.event_rows(events))
        if frame.height == 0:
            _check_event_exists(lake, events)
        return frame
    if isinstance(events, pl.DataFrame | pl.LazyFrame):
        frame = events.lazy()
        if "event_index" not in frame.collect_schema().names():
            frame = frame.with_columns(
                pl.int_range(pl.len(), dtype=pl.Int64).over("session_id").alias("event_index")
            )
        return (
            frame.select(
                pl.col("session_id").cast(pl.String),
                pl.col("event_index").cast(pl.Int64),
                pl.col("time").cast(pl.Float64),
            )
            .filter(pl.col("time").is_finite())
            .sort("session_id", "event_index", maintain_order=True)
            .collect()
        )
    msg = "events must be an event name (e.g. 'trials.change_time') or a polars frame"
    raise TypeError(msg)


def _check_event_exists(lake: Lake, name: str) -> None:
    """ValueError for an event naming a trials column or interval table that no session has."""
    kind, _, rest = name.partition(".")
    if kind == "trials":
        known = lake.sql(_sql.TRIALS_COLUMNS).columns
        what = "column (trials has"
    elif kind == "intervals":
        known = lake.sql(_sql.INTERVAL_NAMES)["name"].to_list()
        what = "interval table (there are"
    else:
        return
    if rest not in known:
        msg = f"event {name!r}: the lake has no such {what} {known})"
        raise ValueError(msg)
