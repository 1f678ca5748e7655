"""`lake.analysis`: event-aligned spike counts, PSTHs and rates per area, computed in Python.

The numbers are the same as those of the SQL macros in `queries/macros/` (tested to be equal),
with the same definitions (docs/analysis.md):

- an event at time t has bin edges ``e_k = t + (start + k * width)`` for k = 0..n (float64, in
  that order); a spike at time s is in bin k when ``e_k <= s < e_(k+1)``. A window
  ``(start, stop)`` is the single bin ``[t + start, t + stop)``;
- events with a NULL or NaN time are dropped; empty windows and units without spikes count 0
  (dense results: one row per unit and event of its session); nothing is clipped at the
  session edges;
- ``rate_hz = n_spikes / (n_events * width)``.

How: per session, only the row groups of the lake's spikes files that may hold a chosen unit
are read (their unit_id statistics say which units they hold; the files are sorted by
(unit_id, time) and written in row groups of `lake.storage.SPIKE_ROW_GROUP_ROWS` rows). In a
row group each unit is a slice found with `numpy.searchsorted`; compiled kernels then find,
for every (unit, event), the first spike at or after the first edge (galloping from the
previous event) and count the spikes per bin against the float64 edges, adding into the
result (a unit split over two row groups simply adds twice). There is no Python loop over
units, events or spikes; the loops are over sessions and row groups.

Examples
--------
>>> counts = lk.analysis.aligned_counts(  # doctest: +SKIP
...     "allen_visual_coding", "trials.change_time", window=(0.0, 0.25))
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
import polars as pl

from lake.presets import PRESETS, preset
from schemas.ids import validate_name

if TYPE_CHECKING:
    import duckdb
    import pyarrow.parquet as pq

    from lake.lake import Lake
    from lake.snapshot import Snapshot

#: A unit selection: None (every unit), a quality preset name, or a frame with
#: (session_id, unit_id) columns.
UnitsLike = str | pl.DataFrame | pl.LazyFrame | None
#: Events: a name of the `events` view ('trials.change_time', 'licks', 'rewards',
#: 'intervals.<name>') or a frame with (session_id, time[, event_index]) columns.
EventsLike = str | pl.DataFrame | pl.LazyFrame

_EVENT_KINDS = ("trials", "licks", "rewards", "intervals")
_PARTITION = re.compile(r"/session_id=([^/]+)/")
_MIN_WIDTH = 1e-6
_I64 = np.iinfo(np.int64)


def bin_offsets(start: float, width: float, n_bins: int) -> np.ndarray:
    """Edge offsets ``start + k * width`` for k = 0..n_bins, float64, as the SQL computes them.

    Examples
    --------
    >>> bin_offsets(-0.5, 0.25, 4).tolist()
    [-0.5, -0.25, 0.0, 0.25, 0.5]
    """
    start, width, n_bins = float(start), float(width), int(n_bins)
    if not (np.isfinite(start) and np.isfinite(width)) or not width >= _MIN_WIDTH or n_bins < 1:
        msg = (
            f"bins=(start={start}, width={width}, n_bins={n_bins}): need a finite start, "
            f"a finite width >= {_MIN_WIDTH} s and n_bins >= 1"
        )
        raise ValueError(msg)
    return start + np.arange(n_bins + 1, dtype=np.int64).astype(np.float64) * width


def window_offsets(start: float, stop: float) -> np.ndarray:
    """The two edge offsets of a window ``[t + start, t + stop)``."""
    start, stop = float(start), float(stop)
    if not (np.isfinite(start) and np.isfinite(stop) and stop > start):
        msg = f"window=({start}, {stop}): need finite start < stop (seconds from the event)"
        raise ValueError(msg)
    return np.array([start, stop], dtype=np.float64)


@dataclass(frozen=True)
class _Events:
    """One session's events, sorted by time, with their edges (the documented formula)."""

    time: np.ndarray  # event times in event_index order
    event_index: np.ndarray
    order: np.ndarray  # positions (in event_index order) of the events sorted by time
    edges: np.ndarray  # edges[j, k] = time[order[j]] + offsets[k], rows sorted by time

    @staticmethod
    def of(time: np.ndarray, event_index: np.ndarray, offsets: np.ndarray) -> _Events:
        order = np.argsort(time, kind="stable")
        edges = np.ascontiguousarray(time[order][:, None] + offsets[None, :])
        return _Events(time, event_index, order.astype(np.int64), edges)


class Analysis:
    """Aligned counts, PSTHs and rates of one lake; get it as `lk.analysis`."""

    def __init__(self, lake: Lake) -> None:
        self._lake = lake

    # ---------------------------------------------------------------------------- selections
    def units(self, units: UnitsLike = None) -> pl.DataFrame:
        """The (session_id, unit_id) pairs of a unit selection, distinct and sorted.

        Parameters
        ----------
        units
            None for every unit; a preset name (see `lake.presets.PRESETS`); or a polars frame
            with session_id and unit_id columns.
        """
        return self._units(units, None)

    def _units(self, units: UnitsLike, con: duckdb.DuckDBPyConnection | None) -> pl.DataFrame:
        if units is None or isinstance(units, str):
            # the lake's per-connection units_quality table: the same rows as lk.scan("units")
            # and the same booleans as preset_expr (tested), without reading Parquet again
            where = f"WHERE {preset(units).name}" if isinstance(units, str) else ""
            sql = f"SELECT session_id, unit_id FROM units_quality {where} ORDER BY 1, 2"
            return self._query(sql, con)
        if isinstance(units, pl.DataFrame | pl.LazyFrame):
            frame = units.lazy().select(
                pl.col("session_id").cast(pl.String), pl.col("unit_id").cast(pl.Int64)
            )
            return frame.unique().sort("session_id", "unit_id").collect()
        msg = f"units must be None, a preset name ({', '.join(PRESETS)}) or a polars frame"
        raise TypeError(msg)

    def events(self, events: EventsLike) -> pl.DataFrame:
        """Finite-time events as (session_id, event_index, time), as the `events` view lists them.

        Parameters
        ----------
        events
            A name of the `events` view, e.g. 'trials.change_time', 'licks', 'rewards',
            'intervals.epochs'; or a frame with session_id and time (and optionally
            event_index; else the row number within the session, from 0).
        """
        return self._events(events, None)

    def _events(self, events: EventsLike, con: duckdb.DuckDBPyConnection | None) -> pl.DataFrame:
        if isinstance(events, str):
            frame = self._query(_event_sql(events), con)
            if frame.height == 0:
                _check_event_exists(self, events, con)
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

    # ------------------------------------------------------------------------ aligned counts
    def aligned_counts(
        self,
        units: UnitsLike,
        events: EventsLike,
        *,
        window: tuple[float, float] | None = None,
        bins: tuple[float, float, int] | None = None,
    ) -> pl.DataFrame:
        """Spikes of each unit around each event: in one window, or in bins.

        Parameters
        ----------
        units
            Unit selection (see `units`).
        events
            Events (see `events`).
        window
            ``(start, stop)`` in seconds from the event: counts in ``[t + start, t + stop)``.
        bins
            ``(start, width, n_bins)``: counts in bins k = 0..n_bins-1 (see the module doc).

        Returns
        -------
        One row per (unit, event[, bin]) for every unit and every finite event of its session:
        session_id, unit_id, event_index, event_time, [bin, bin_start,] n_spikes.

        Examples
        --------
        >>> lk.analysis.aligned_counts(None, "licks", window=(-0.1, 0.1))  # doctest: +SKIP
        """
        offsets, binned = _offsets(window, bins)

        def one(sid: str, unit_ids: np.ndarray, ev: _Events, chunks: _Chunks) -> pl.DataFrame:
            n_u, n_e, n_b = len(unit_ids), len(ev.time), len(offsets) - 1
            counts = np.zeros((n_u, n_e, n_b), dtype=np.int64)
            for times, ulo, uhi, rows in chunks:  # counts add up over row groups
                _kernels().count_into(times, ulo, uhi, rows, ev.edges, ev.order, counts)
            cols = {
                "session_id": pl.Series([sid]).new_from_index(0, n_u * n_e * n_b),
                "unit_id": np.repeat(unit_ids, n_e * n_b),
                "event_index": np.tile(np.repeat(ev.event_index, n_b), n_u),
                "event_time": np.tile(np.repeat(ev.time, n_b), n_u),
            }
            if binned:
                cols["bin"] = np.tile(np.arange(n_b, dtype=np.int64), n_u * n_e)
                cols["bin_start"] = np.tile(offsets[:-1], n_u * n_e)
            cols["n_spikes"] = counts.reshape(-1)
            return pl.DataFrame(cols)

        schema = _COUNT_SCHEMA | (_BIN_SCHEMA if binned else {}) | {"n_spikes": pl.Int64}
        return _concat(self._map_sessions(one, units, events, offsets), schema)

    def psth(
        self,
        units: UnitsLike,
        events: EventsLike,
        *,
        bins: tuple[float, float, int],
    ) -> pl.DataFrame:
        """Peri-event time histogram per unit: spikes per bin summed over events, and Hz.

        Returns
        -------
        session_id, unit_id, bin, bin_start, n_events, n_spikes, rate_hz, one row per unit and
        bin (units of sessions without such events get no rows).

        Examples
        --------
        >>> lk.analysis.psth("visual_behavior", "licks", bins=(-0.5, 0.05, 30))  # doctest: +SKIP
        """
        offsets = bin_offsets(*bins)
        width = float(bins[1])

        def one(sid: str, unit_ids: np.ndarray, ev: _Events, chunks: _Chunks) -> pl.DataFrame:
            totals = np.zeros((len(unit_ids), len(offsets) - 1), dtype=np.int64)
            for times, ulo, uhi, rows in chunks:
                _kernels().totals_into(times, ulo, uhi, rows, ev.edges, offsets, totals)
            n_u, n_b = totals.shape
            n_events = len(ev.time)
            return pl.DataFrame(
                {
                    "session_id": pl.Series([sid]).new_from_index(0, n_u * n_b),
                    "unit_id": np.repeat(unit_ids, n_b),
                    "bin": np.tile(np.arange(n_b, dtype=np.int64), n_u),
                    "bin_start": np.tile(offsets[:-1], n_u),
                    "n_events": np.full(n_u * n_b, n_events, dtype=np.int64),
                    "n_spikes": totals.reshape(-1),
                    "rate_hz": totals.reshape(-1).astype(np.float64) / (float(n_events) * width),
                }
            )

        return _concat(self._map_sessions(one, units, events, offsets), _PSTH_SCHEMA)

    def psth_by_area(
        self,
        units: UnitsLike,
        events: EventsLike,
        *,
        bins: tuple[float, float, int],
    ) -> pl.DataFrame:
        """Mean PSTH per brain area across sessions: n_sessions, n_units, rate_hz, rate_hz_sd."""
        per_unit = self.psth(units, events, bins=bins)
        areas = self.annotated_units().select("session_id", "unit_id", "structure_acronym")
        return (
            per_unit.lazy()
            .join(areas, on=["session_id", "unit_id"], how="left")
            .group_by("structure_acronym", "bin")
            .agg(
                pl.col("bin_start").first(),
                pl.col("session_id").n_unique().cast(pl.Int64).alias("n_sessions"),
                pl.len().cast(pl.Int64).alias("n_units"),  # the SQL's BIGINT counts
                pl.col("rate_hz").mean(),
                pl.col("rate_hz").std().alias("rate_hz_sd"),
            )
            .sort("structure_acronym", "bin", nulls_last=True)
            .collect()
        )

    def aligned_spikes(
        self,
        units: UnitsLike,
        events: EventsLike,
        *,
        window: tuple[float, float],
    ) -> pl.DataFrame:
        """Every spike in ``[t + start, t + stop)`` of every event (for rasters).

        Returns
        -------
        session_id, unit_id, event_index, event_time, time, rel_time (= time - event_time).
        """
        offsets = window_offsets(*window)

        def one(sid: str, unit_ids: np.ndarray, ev: _Events, chunks: _Chunks) -> pl.DataFrame:
            n_e = len(ev.time)
            parts = []
            for times, ulo, uhi, rows in chunks:
                pos = _kernels().edge_positions(times, ulo, uhi, ev.edges)  # (units, events, 2)
                lo, hi = pos[:, :, 0].reshape(-1), pos[:, :, 1].reshape(-1)
                n = hi - lo
                first = np.cumsum(n) - n  # where each (unit, event) run starts in the output
                idx = np.repeat(lo - first, n) + np.arange(int(n.sum()), dtype=np.int64)
                event = np.repeat(np.tile(ev.order, len(rows)), n)  # events in time order
                event_time = ev.time[event]
                spike_time = times[idx]
                parts.append(
                    pl.DataFrame(
                        {
                            "session_id": pl.Series([sid]).new_from_index(0, len(idx)),
                            "unit_id": np.repeat(np.repeat(unit_ids[rows], n_e), n),
                            "event_index": ev.event_index[event],
                            "event_time": event_time,
                            "time": spike_time,
                            "rel_time": spike_time - event_time,
                        }
                    )
                )
            return _concat(parts, _SPIKES_SCHEMA)

        return _concat(self._map_sessions(one, units, events, offsets), _SPIKES_SCHEMA)

    # ----------------------------------------------------------------------------- rates
    def annotated_units(self) -> pl.LazyFrame:
        """Units with their probe, peak channel's area, CCF and position, session and subject.

        The rows and columns of the units_annotated view (which every connection of the lake
        holds in memory: no Parquet is read again), as a polars LazyFrame over an Arrow copy
        made once per connection.
        """
        return self._cache(self._lake.connection()).annotated(self._lake).lazy()

    def session_spans(self) -> pl.DataFrame:
        """Per session: first and last spike time, duration_s (their difference), n_spikes.

        Taken from the Parquet min/max statistics of `time` (exact values; spike times are
        never NaN), reading a row group only where a file has no statistics.
        """
        rows = []
        files = self._spike_files()
        for sid in self._lake.sessions()["session_id"].to_list():
            first, last, n = self._time_range(files.get(sid, []))
            if n:  # + 0.0: a statistic of a spike at t = 0 may be stored as -0.0
                rows.append((sid, first + 0.0, last + 0.0, last - first, n))
        return pl.DataFrame(
            rows,
            schema={
                "session_id": pl.String,
                "first_spike_time": pl.Float64,
                "last_spike_time": pl.Float64,
                "duration_s": pl.Float64,
                "n_spikes": pl.Int64,
            },
            orient="row",
        )

    def unit_rates(self) -> pl.DataFrame:
        """One row per unit: n_spikes, duration_s, mean_rate_hz, firing_rate.

        mean_rate_hz = n_spikes / duration_s (the session's span); firing_rate is the source's.
        The same rows as the unit_rates view.
        """
        spans = self.session_spans().lazy().select("session_id", "duration_s")
        return (
            self.annotated_units()
            .join(spans, on="session_id", how="left")
            .select(
                "session_id",
                "unit_id",
                "probe",
                "structure_acronym",
                "quality",
                pl.col("spike_count").alias("n_spikes"),
                "duration_s",
                pl.when(pl.col("duration_s") > 0)
                .then(pl.col("spike_count") / pl.col("duration_s"))
                .alias("mean_rate_hz"),
                "firing_rate",
            )
            .collect()
        )

    def rates_by_area(self, units: UnitsLike = None) -> pl.DataFrame:
        """Per session and area: n_units, n_spikes, mean_rate_hz, mean_firing_rate.

        The same rows as the SQL macro rates_by_area (means equal to float rounding).
        """
        chosen = self.units(units).lazy()
        fr = pl.col("firing_rate")
        return (
            self.unit_rates()
            .lazy()
            .join(chosen, on=["session_id", "unit_id"], how="semi")
            .group_by("session_id", "structure_acronym")
            .agg(
                pl.len().cast(pl.Int64).alias("n_units"),
                pl.col("n_spikes").sum(),
                pl.col("mean_rate_hz").mean(),
                fr.filter(fr.is_not_nan()).mean().alias("mean_firing_rate"),
            )
            .sort("session_id", "structure_acronym", nulls_last=True)
            .collect()
        )

    # ---------------------------------------------------------------------------- spikes
    def spike_times(
        self, session_id: str, unit_ids: list[int] | np.ndarray | None = None
    ) -> dict[int, np.ndarray]:
        """Spike times (s) of chosen units of one session, as {unit_id: sorted float64 array}.

        Units without spikes map to empty arrays; `unit_ids=None` means every unit.
        """
        sid = self._lake.require_session(session_id)
        if unit_ids is None:
            ids = self._query(f"SELECT unit_id FROM units_quality WHERE session_id = '{sid}'")[
                "unit_id"
            ].to_numpy()
        else:
            ids = np.asarray(unit_ids, dtype=np.int64)
        ids = np.unique(ids)
        if ids.size == 0:
            return {}
        owners, parts = [], []
        counts = self._cache(self._lake.connection()).unit_rows(self._lake).get(sid)
        for times, ulo, uhi, rows in self._chunks(self._spike_files().get(sid, []), ids, counts):
            n = uhi - ulo
            first = np.cumsum(n) - n
            idx = np.repeat(ulo - first, n) + np.arange(int(n.sum()), dtype=np.int64)
            owners.append(np.repeat(rows, n))
            parts.append(times[idx])
        owner = np.concatenate([np.empty(0, np.int64), *owners])
        times = np.concatenate([np.empty(0, np.float64), *parts])
        if not _kernels().is_sorted(owner, times):  # row groups may come in any order
            order = np.lexsort((times, owner))
            owner, times = owner[order], times[order]
        ends = np.searchsorted(owner, np.arange(len(ids)), side="right")
        runs = np.split(times, ends[:-1])
        return dict(zip(ids.tolist(), runs, strict=True))

    # ---------------------------------------------------------------------------- internals
    def _query(self, sql: str, con: duckdb.DuckDBPyConnection | None = None) -> pl.DataFrame:
        """Run SQL on `con` (default: the lake's connection, after a snapshot check)."""
        if con is None:
            con = self._lake.connection()
        with self._lake._lock:
            frame = pl.from_arrow(con.sql(sql).to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _map_sessions(
        self,
        work: Callable[[str, np.ndarray, _Events, _Chunks], pl.DataFrame],
        units: UnitsLike,
        events: EventsLike,
        offsets: np.ndarray,
    ) -> list[pl.DataFrame]:
        """Run `work` for every session that has both chosen units and events.

        `work(session_id, sorted unit ids, events, row groups)` runs on a pool of threads
        (reading and the kernels release the GIL); results come in session order.
        """
        con = self._lake.connection()  # one check of the Delta log for the whole call
        snapshot = self._lake._snapshot or self._lake._current()
        chosen = self._units(units, con)
        ev = self._events(events, con)
        files = self._spike_files(snapshot)
        counts = self._cache(con).unit_rows(self._lake)
        shared = sorted(set(chosen["session_id"].unique()) & set(ev["session_id"].unique()))
        unit_groups = chosen.partition_by("session_id", as_dict=True)
        event_groups = ev.partition_by("session_id", as_dict=True)

        def run(sid: str) -> pl.DataFrame:
            u = np.ascontiguousarray(unit_groups[(sid,)]["unit_id"].to_numpy(), dtype=np.int64)
            e = event_groups[(sid,)]
            times = np.ascontiguousarray(e["time"].to_numpy(), dtype=np.float64)
            session_events = _Events.of(times, e["event_index"].to_numpy(), offsets)
            chunks = self._chunks(files.get(sid, []), u, counts.get(sid))
            return work(sid, u, session_events, chunks)

        if len(shared) <= 1:
            return [run(sid) for sid in shared]
        with ThreadPoolExecutor(max_workers=min(len(shared), os.cpu_count() or 1)) as pool:
            return list(pool.map(run, shared))

    def _chunks(
        self, files: list[str], unit_ids: np.ndarray, counts: _UnitRows | None = None
    ) -> _Chunks:
        """Per row group that may hold a chosen unit: (times, ulo, uhi, rows).

        `unit_ids` are sorted and distinct. Row groups whose unit_id statistics exclude every
        chosen unit are not read. In a row group a chosen unit is the slice [ulo, uhi) of
        `times`; `rows` are the positions in `unit_ids` of the chosen units present in the row
        group (only those are listed). Counts add up over row groups, and nothing is copied.

        Where the files declare their (unit_id, time) order and their row-group statistics
        agree with the units' spike counts (`_layout`), the slices come from those counts and
        only `time` is decoded; otherwise unit_id is decoded too, and a row group that is not
        sorted (checked) is sorted here.
        """
        layout = self._layout(files, counts)
        for path in files:
            index = self._index(path)
            first = np.searchsorted(unit_ids, index.unit_min, side="left")
            last = np.searchsorted(unit_ids, index.unit_max, side="right")
            groups = np.flatnonzero(last > first)
            if groups.size == 0:
                continue
            starts = None if layout is None else layout[path]
            with self._open(path, index.metadata) as pf:
                for group in groups.tolist():
                    ids = unit_ids[first[group] : last[group]]
                    found = None
                    if starts is not None and counts is not None:
                        found = self._slices(pf, group, ids, counts, starts[group])
                    if found is None:
                        found = self._decoded_slices(pf, group, ids)
                    times, ulo, uhi = found
                    present = np.flatnonzero(uhi > ulo)
                    if present.size:
                        yield times, ulo[present], uhi[present], present + first[group]

    def _slices(self, pf, group: int, ids: np.ndarray, counts: _UnitRows, start: int):
        """Times of one row group and the [ulo, uhi) of units `ids`, from the spike counts.

        None when a slice is not sorted by time (then the caller decodes unit_id).
        """
        times = self._read_times(pf, group)
        pos = np.minimum(np.searchsorted(counts.unit_ids, ids), len(counts.unit_ids) - 1)
        known = counts.unit_ids[pos] == ids  # a unit the units table does not list: no rows
        ulo = np.clip(counts.starts[pos] - start, 0, len(times))
        uhi = np.where(known, np.clip(counts.ends[pos] - start, 0, len(times)), ulo)
        if not _kernels().slices_sorted(times, ulo, uhi):
            return None
        return times, ulo, uhi

    def _decoded_slices(self, pf, group: int, ids: np.ndarray):
        """Times of one row group and the [ulo, uhi) of units `ids`, from its unit_id column."""
        owner, times = self._read_group(pf, group)
        if not _kernels().is_sorted(owner, times):
            order = np.lexsort((times, owner))
            owner, times = owner[order], times[order]
        return (
            times,
            np.searchsorted(owner, ids, side="left"),
            np.searchsorted(owner, ids, side="right"),
        )

    def _layout(self, files: list[str], counts: _UnitRows | None) -> dict[str, np.ndarray] | None:
        """Per file, the first row of each row group in the session's (unit_id, time) order.

        Only when that order is proven: every file declares itself sorted by (unit_id, time)
        (the lake's writer does), the files' unit ranges follow each other, the session has
        as many spikes as its units' spike_count add up to, and every row group's unit_id
        min and max are the units the spike counts place at its first and last row. Else None.
        """
        if counts is None or not files:
            return None
        indexes = [(path, self._index(path)) for path in files]
        if not all(ix.unit_time_sorted for _, ix in indexes):
            return None
        indexes = [(p, ix) for p, ix in indexes if ix.rows.sum() > 0]
        indexes.sort(key=lambda item: (int(item[1].unit_min[0]), float(item[1].time_min[0])))
        rows = np.concatenate([ix.rows for _, ix in indexes] or [np.empty(0, np.int64)])
        umin = np.concatenate([ix.unit_min for _, ix in indexes] or [np.empty(0, np.int64)])
        umax = np.concatenate([ix.unit_max for _, ix in indexes] or [np.empty(0, np.int64)])
        total = int(counts.ends[-1]) if len(counts.ends) else 0
        if int(rows.sum()) != total:
            return None
        starts = np.cumsum(rows) - rows
        keep = rows > 0
        owner_first = counts.owner(starts[keep])
        owner_last = counts.owner(starts[keep] + rows[keep] - 1)
        if not (np.array_equal(owner_first, umin[keep]) and np.array_equal(owner_last, umax[keep])):
            return None
        layout, at = {}, 0
        for path, ix in indexes:
            layout[path] = starts[at : at + len(ix.rows)]
            at += len(ix.rows)
        return {path: layout.get(path, np.zeros(0, np.int64)) for path in files}

    def _time_range(self, files: list[str]) -> tuple[float, float, int]:
        """First and last spike time and the number of spikes of one session's files."""
        first, last, n = np.inf, -np.inf, 0
        for path in files:
            index = self._index(path)
            known = np.isfinite(index.time_min) & np.isfinite(index.time_max)
            has_rows = index.rows > 0
            if np.any(known & has_rows):
                first = min(first, float(index.time_min[known & has_rows].min()))
                last = max(last, float(index.time_max[known & has_rows].max()))
            unknown = np.flatnonzero(~known & has_rows)
            if unknown.size:
                with self._open(path, index.metadata) as pf:
                    for group in unknown.tolist():
                        times = self._read_group(pf, group)[1]
                        first = min(first, float(times.min()))
                        last = max(last, float(times.max()))
            n += int(index.rows.sum())
        return first, last, n

    def _index(self, path: str) -> _FileIndex:
        """The row-group statistics of one spikes file.

        Read once per process: lake files are immutable (an ingest writes new files).
        """
        with _INDEX_LOCK:
            found = _INDEXES.get(path)
            if found is not None:
                _INDEXES.move_to_end(path)
                return found
        import pyarrow.parquet as pq

        fs, local = self._lake._store._filesystem(path)
        index = _FileIndex.of(pq.read_metadata(local, filesystem=fs))
        with _INDEX_LOCK:
            _INDEXES[path] = index
            while len(_INDEXES) > _INDEX_LIMIT:
                _INDEXES.popitem(last=False)
        return index

    @contextmanager
    def _open(self, path: str, metadata: pq.FileMetaData) -> Iterator[pq.ParquetFile]:
        """A spikes file opened for reading row groups, with its footer already parsed."""
        import pyarrow.parquet as pq

        fs, local = self._lake._store._filesystem(path)
        with fs.open_input_file(local) as handle:
            yield pq.ParquetFile(handle, metadata=metadata)

    @staticmethod
    def _read_times(pf, group: int) -> np.ndarray:
        """Spike times of one row group (one chunk: no copy)."""
        table = pf.read_row_group(group, columns=["time"], use_threads=False)
        return np.ascontiguousarray(table.column("time").to_numpy(), dtype=np.float64)

    @staticmethod
    def _read_group(pf, group: int) -> tuple[np.ndarray, np.ndarray]:
        """unit_id and time of one row group (one chunk each: no copy)."""
        table = pf.read_row_group(group, columns=["unit_id", "time"], use_threads=False)
        owner = np.ascontiguousarray(table.column("unit_id").to_numpy(), dtype=np.int64)
        times = np.ascontiguousarray(table.column("time").to_numpy(), dtype=np.float64)
        return owner, times

    def _cache(self, con: duckdb.DuckDBPyConnection) -> _ConnectionCache:
        """What this lake's connection `con` computed once and keeps (dropped with it)."""
        cache = _CACHES.get(self._lake)
        if cache is None or cache.con is not con:
            cache = _ConnectionCache(con)
            _CACHES[self._lake] = cache
        return cache

    def _spike_files(self, snapshot: Snapshot | None = None) -> dict[str, list[str]]:
        """The spikes files of a snapshot (default: the lake's current one), by session."""
        if snapshot is None:
            snapshot = self._lake._current()
        grouped: dict[str, list[str]] = {}
        for f in snapshot.tables["spikes"].files:
            found = _PARTITION.search(f)
            if found:
                grouped.setdefault(found.group(1), []).append(f)
        return grouped


#: (times, ulo, uhi, rows) per row group read; see Analysis._chunks.
_Chunks = Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class _FileIndex:
    """Per row group of a spikes file: rows and min/max of unit_id and time."""

    metadata: pq.FileMetaData
    rows: np.ndarray
    unit_min: np.ndarray  # int64; the whole int64 range where a group has no statistics
    unit_max: np.ndarray
    time_min: np.ndarray  # float64; NaN where unknown
    time_max: np.ndarray
    unit_time_sorted: bool  # every row group declares sorting_columns (unit_id, time), and
    # every row group has unit_id statistics

    @staticmethod
    def of(metadata: pq.FileMetaData) -> _FileIndex:
        n = metadata.num_row_groups
        names = metadata.schema.names
        unit_col, time_col = names.index("unit_id"), names.index("time")
        rows = np.empty(n, dtype=np.int64)
        bounds = np.empty((n, 4), dtype=object)
        declared = n > 0
        for g in range(n):  # a loop over row groups: statistics live in Thrift structs
            group = metadata.row_group(g)
            rows[g] = group.num_rows
            order = [(c.column_index, c.descending) for c in group.sorting_columns or ()]
            declared &= order[:2] == [(unit_col, False), (time_col, False)]
            unit, time = group.column(unit_col).statistics, group.column(time_col).statistics
            bounds[g, :2] = (
                (unit.min, unit.max) if unit is not None and unit.has_min_max else (None, None)
            )
            bounds[g, 2:] = (
                (time.min, time.max) if time is not None and time.has_min_max else (None, None)
            )
        umin = np.array([_I64.min if b is None else b for b in bounds[:, 0]], dtype=np.int64)
        umax = np.array([_I64.max if b is None else b for b in bounds[:, 1]], dtype=np.int64)
        tmin = np.array([np.nan if b is None else b for b in bounds[:, 2]], dtype=np.float64)
        tmax = np.array([np.nan if b is None else b for b in bounds[:, 3]], dtype=np.float64)
        declared &= all(b is not None for b in bounds[:, 0])
        return _FileIndex(metadata, rows, umin, umax, tmin, tmax, bool(declared))


@dataclass(frozen=True)
class _UnitRows:
    """One session's units in unit_id order and where their spikes are in (unit_id, time) order."""

    unit_ids: np.ndarray
    starts: np.ndarray  # first row of each unit
    ends: np.ndarray  # one past its last row (the running sum of spike_count)

    def owner(self, rows: np.ndarray) -> np.ndarray:
        """The unit at each row."""
        return self.unit_ids[np.searchsorted(self.ends, rows, side="right")]


class _ConnectionCache:
    """Per lake connection: units_annotated as a polars frame, each session's unit rows.

    Polars frames are immutable, so handing out the same frame is safe.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._annotated: pl.DataFrame | None = None
        self._unit_rows: dict[str, _UnitRows] | None = None

    def annotated(self, lake: Lake) -> pl.DataFrame:
        if self._annotated is None:
            with lake._lock:
                table = self.con.sql("SELECT * FROM units_annotated").to_arrow_table()
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            self._annotated = frame.rechunk()
        return self._annotated

    def unit_rows(self, lake: Lake) -> dict[str, _UnitRows]:
        """Sessions whose units all have a spike_count: their _UnitRows."""
        if self._unit_rows is None:
            units = self.annotated(lake).select(
                "session_id", "unit_id", pl.col("spike_count").cast(pl.Int64)
            )
            found = {}
            for (sid,), group in units.sort("session_id", "unit_id").group_by(
                "session_id", maintain_order=True
            ):  # a loop over sessions
                count = group["spike_count"]
                if count.null_count() or (count < 0).any():
                    continue
                ends = np.cumsum(count.to_numpy()).astype(np.int64)
                ids = group["unit_id"].to_numpy().astype(np.int64)
                found[str(sid)] = _UnitRows(ids, ends - count.to_numpy(), ends)
            self._unit_rows = found
        return self._unit_rows


#: Row-group statistics of spikes files, by file URI (least recently used dropped first).
_INDEXES: OrderedDict[str, _FileIndex] = OrderedDict()
_INDEX_LIMIT = 16_384
_INDEX_LOCK = threading.Lock()
#: Per lake: what its current DuckDB connection computed once (see _ConnectionCache).
_CACHES: weakref.WeakKeyDictionary[Lake, _ConnectionCache] = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------------------- helpers
_COUNT_SCHEMA = {
    "session_id": pl.String,
    "unit_id": pl.Int64,
    "event_index": pl.Int64,
    "event_time": pl.Float64,
}
_BIN_SCHEMA = {"bin": pl.Int64, "bin_start": pl.Float64}
_PSTH_SCHEMA = {
    "session_id": pl.String,
    "unit_id": pl.Int64,
    "bin": pl.Int64,
    "bin_start": pl.Float64,
    "n_events": pl.Int64,
    "n_spikes": pl.Int64,
    "rate_hz": pl.Float64,
}
_SPIKES_SCHEMA = _COUNT_SCHEMA | {"time": pl.Float64, "rel_time": pl.Float64}


def _offsets(window, bins) -> tuple[np.ndarray, bool]:
    if (window is None) == (bins is None):
        msg = "give exactly one of window=(start, stop) or bins=(start, width, n_bins)"
        raise ValueError(msg)
    if window is not None:
        return window_offsets(*window), False
    return bin_offsets(*bins), True


def _concat(parts: list[pl.DataFrame], schema: dict) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(parts).cast(schema)  # type: ignore[arg-type]


def _check_event_exists(an: Analysis, name: str, con) -> None:
    """ValueError for an event naming a trials column or interval table that no session has."""
    kind, _, rest = name.partition(".")
    if kind == "trials":
        known = an._query("SELECT * FROM trials LIMIT 0", con).columns
        what = "column (trials has"
    elif kind == "intervals":
        known = an._query("SELECT DISTINCT name FROM intervals ORDER BY 1", con)["name"].to_list()
        what = "interval table (there are"
    else:
        return
    if rest not in known:
        msg = f"event {name!r}: the lake has no such {what} {known})"
        raise ValueError(msg)


def _event_sql(name: str) -> str:
    """SQL selecting (session_id, event_index, time) of one event of the `events` view.

    The same rows as ``SELECT ... FROM events WHERE event = name`` (tested), read from the
    per-connection task_events table (trials, licks, rewards) or from intervals. Names are
    validated before they reach the SQL.
    """
    kind, _, rest = name.partition(".")
    if kind not in _EVENT_KINDS or (kind in ("trials", "intervals")) != bool(rest):
        msg = (
            f"event {name!r}: use 'trials.<column>' (e.g. trials.change_time), 'licks', "
            "'rewards' or 'intervals.<table name>'"
        )
        raise ValueError(msg)
    order = "ORDER BY session_id, event_index"
    if kind == "intervals":
        table = validate_name(rest, what="interval table")
        return (
            'SELECT session_id, "row" AS event_index, start_time AS time FROM intervals '
            f"WHERE name = '{table}' AND isfinite(start_time) {order}"
        )
    if kind == "trials":
        column = validate_name(rest, what="trials column")
        if not column.endswith("_time"):
            msg = f"event {name!r}: trial events are the *_time columns of trials"
            raise ValueError(msg)
        name = f"trials.{column}"
    return f"SELECT session_id, event_index, time FROM task_events WHERE event = '{name}' {order}"


# ------------------------------------------------------------------------------- kernels
_jit = numba.njit(cache=True, nogil=True)

# Compiled with numba (cached on disk after the first call). Arrays in, arrays out. `import
# lake` does not import this module: `Lake.analysis` imports it when first used. Every kernel
# takes a row group's `times` and, per chosen unit present in it, its slice [ulo, uhi); event
# edges are rows edges[j] = t_j + offsets, sorted by time.


@_jit
def _first_at_or_after(times, a, b, edge):
    """First index in [a, b) with times[index] >= edge (b if none): galloping, then bisection."""
    step = 1
    while a + step < b and times[a + step - 1] < edge:  # gallop from a (cheap when close)
        a += step
        step *= 2
    hi = min(a + step, b)
    while a < hi:
        m = (a + hi) >> 1
        if times[m] < edge:
            a = m + 1
        else:
            hi = m
    return a


@_jit
def _first_event(edges, last, s):
    """First event j whose last edge edges[j, last] is above s (windows before end at s)."""
    a, b = 0, edges.shape[0]
    while a < b:
        m = (a + b) >> 1
        if edges[m, last] <= s:
            a = m + 1
        else:
            b = m
    return a


@_jit
def _count_into(times, ulo, uhi, rows, edges, order, out):
    """out[rows[i], order[j], k] += spikes of unit i in [edges[j, k], edges[j, k + 1])."""
    n_events, n_edges = edges.shape
    for i in range(ulo.shape[0]):
        lo_unit, hi_unit, row = ulo[i], uhi[i], rows[i]
        start = lo_unit
        for j in range(_first_event(edges, n_edges - 1, times[lo_unit]), n_events):
            a = _first_at_or_after(times, start, hi_unit, edges[j, 0])
            if a == hi_unit:  # this and every later window start after the unit's spikes
                break
            start = a
            column = order[j]
            for k in range(1, n_edges):
                b = _first_at_or_after(times, a, hi_unit, edges[j, k])
                out[row, column, k - 1] += b - a
                a = b


@_jit
def _totals_into(times, ulo, uhi, rows, edges, offsets, out):
    """out[rows[i], k] += spikes of unit i in bin k, summed over the events.

    A spike's bin is guessed as (s - e_0) * n_bins / (offsets[n] - offsets[0]) and then moved
    until edges[j, k] <= s < edges[j, k + 1] holds for the float64 edges: exact, and no bound
    checks are needed because e_0 <= s < e_n.
    """
    n_events, n_edges = edges.shape
    n_bins = n_edges - 1
    per_second = n_bins / (offsets[n_bins] - offsets[0])
    for i in range(ulo.shape[0]):
        lo_unit, hi_unit, row = ulo[i], uhi[i], rows[i]
        start = lo_unit
        for j in range(_first_event(edges, n_bins, times[lo_unit]), n_events):
            first, last = edges[j, 0], edges[j, n_bins]
            a = _first_at_or_after(times, start, hi_unit, first)
            if a == hi_unit:
                break
            start = a
            while a < hi_unit:
                s = times[a]
                if s >= last:
                    break
                k = min(int((s - first) * per_second), n_bins - 1)  # a guess, >= 0
                while s < edges[j, k]:
                    k -= 1
                while s >= edges[j, k + 1]:
                    k += 1
                out[row, k] += 1
                a += 1


@_jit
def _edge_positions(times, ulo, uhi, edges):
    """pos[i, j, k]: first index in [ulo[i], uhi[i]) with times >= edges[j, k]."""
    n_units = ulo.shape[0]
    n_events, n_edges = edges.shape
    out = np.empty((n_units, n_events, n_edges), dtype=np.int64)
    for i in range(n_units):
        lo_unit, hi_unit = ulo[i], uhi[i]
        start = lo_unit
        for j in range(n_events):
            a = _first_at_or_after(times, start, hi_unit, edges[j, 0])
            start = a
            out[i, j, 0] = a
            for k in range(1, n_edges):
                a = _first_at_or_after(times, a, hi_unit, edges[j, k])
                out[i, j, k] = a
    return out


@_jit
def _slices_sorted(times, ulo, uhi):
    """Whether times are non-decreasing within every slice [ulo[i], uhi[i])."""
    for i in range(ulo.shape[0]):
        for a in range(ulo[i] + 1, uhi[i]):
            if times[a] < times[a - 1]:
                return False
    return True


@_jit
def _is_sorted(owner, times):
    """Whether rows are sorted by (owner, time)."""
    for i in range(1, owner.shape[0]):
        if owner[i] < owner[i - 1] or (owner[i] == owner[i - 1] and times[i] < times[i - 1]):
            return False
    return True


class _Compiled:
    """The kernels, as the call sites name them."""

    count_into = staticmethod(_count_into)
    totals_into = staticmethod(_totals_into)
    edge_positions = staticmethod(_edge_positions)
    is_sorted = staticmethod(_is_sorted)
    slices_sorted = staticmethod(_slices_sorted)


def _kernels() -> type[_Compiled]:
    """The compiled kernels."""
    return _Compiled
