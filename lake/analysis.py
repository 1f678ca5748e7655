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

How: per session, the spikes of the chosen units are read from the lake's Parquet files; they
are sorted by (unit_id, time), so each unit is a slice found with `numpy.searchsorted`, and one
compiled kernel finds, for every (unit, event), the first spike at or after each edge (a binary
search, then a forward walk over the edges). There is no Python loop over units, events or
spikes; the only loop is over sessions.

Examples
--------
>>> counts = lk.analysis.aligned_counts(  # doctest: +SKIP
...     "allen_visual_coding", "trials.change_time", window=(0.0, 0.25))
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numba
import numpy as np
import polars as pl

from lake.presets import PRESETS, preset
from schemas.ids import validate_name

if TYPE_CHECKING:
    from lake.lake import Lake

#: A unit selection: None (every unit), a quality preset name, or a frame with
#: (session_id, unit_id) columns.
UnitsLike = str | pl.DataFrame | pl.LazyFrame | None
#: Events: a name of the `events` view ('trials.change_time', 'licks', 'rewards',
#: 'intervals.<name>') or a frame with (session_id, time[, event_index]) columns.
EventsLike = str | pl.DataFrame | pl.LazyFrame

_EVENT_KINDS = ("trials", "licks", "rewards", "intervals")
_PARTITION = re.compile(r"/session_id=([^/]+)/")
_MIN_WIDTH = 1e-6


def bin_offsets(start: float, width: float, n_bins: int) -> np.ndarray:
    """Edge offsets ``start + k * width`` for k = 0..n_bins, float64, as the SQL computes them.

    Examples
    --------
    >>> bin_offsets(-0.5, 0.25, 4).tolist()
    [-0.5, -0.25, 0.0, 0.25, 0.5]
    """
    start, width, n_bins = float(start), float(width), int(n_bins)
    if not np.isfinite(start) or not width >= _MIN_WIDTH or n_bins < 1:
        msg = (
            f"bins=(start={start}, width={width}, n_bins={n_bins}): need a finite start, "
            f"width >= {_MIN_WIDTH} s and n_bins >= 1"
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
        if units is None or isinstance(units, str):
            # the lake's per-connection units table: the same rows as lk.scan("units") and the
            # same booleans as preset_expr (tested), without re-reading the Delta log
            where = f"WHERE {preset(units).name}" if isinstance(units, str) else ""
            frame = self._lake.sql(f"SELECT session_id, unit_id FROM units_quality {where}").lazy()
        elif isinstance(units, pl.DataFrame | pl.LazyFrame):
            frame = units.lazy().select(
                pl.col("session_id").cast(pl.String), pl.col("unit_id").cast(pl.Int64)
            )
        else:
            msg = f"units must be None, a preset name ({', '.join(PRESETS)}) or a polars frame"
            raise TypeError(msg)
        return frame.unique().sort("session_id", "unit_id").collect()

    def events(self, events: EventsLike) -> pl.DataFrame:
        """Finite-time events as (session_id, event_index, time), as the `events` view lists them.

        Parameters
        ----------
        events
            A name of the `events` view, e.g. 'trials.change_time', 'licks', 'rewards',
            'intervals.epochs'; or a frame with session_id and time (and optionally
            event_index; else the row number within the session, from 0).
        """
        if isinstance(events, str):
            import duckdb

            try:
                frame = self._lake.sql(_event_sql(events)).lazy()
            except duckdb.BinderException as exc:  # e.g. a trials column no session has
                msg = f"event {events!r}: the lake has no such column ({exc})"
                raise ValueError(msg) from None
        elif isinstance(events, pl.DataFrame | pl.LazyFrame):
            frame = events.lazy()
            if "event_index" not in frame.collect_schema().names():
                frame = frame.with_columns(
                    pl.int_range(pl.len(), dtype=pl.Int64).over("session_id").alias("event_index")
                )
            frame = frame.select(
                pl.col("session_id").cast(pl.String),
                pl.col("event_index").cast(pl.Int64),
                pl.col("time").cast(pl.Float64),
            )
        else:
            msg = "events must be an event name (e.g. 'trials.change_time') or a polars frame"
            raise TypeError(msg)
        return (
            frame.filter(pl.col("time").is_finite())
            .sort("session_id", "event_index", maintain_order=True)
            .collect()
        )

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

        def one(sid: str, unit_ids: np.ndarray, ev: dict[str, np.ndarray], files) -> pl.DataFrame:
            n_u, n_e, n_b = len(unit_ids), len(ev["time"]), len(offsets) - 1
            counts = np.zeros((n_u, n_e, n_b), dtype=np.int64)
            for times, ulo, uhi in self._chunks(files, unit_ids):  # counts add up over chunks
                pos = _kernels().edge_positions(times, ulo, uhi, ev["time"], offsets)
                counts += np.diff(pos, axis=2)  # (units, events, bins)
            cols = {
                "session_id": pl.Series([sid]).new_from_index(0, n_u * n_e * n_b),
                "unit_id": np.repeat(unit_ids, n_e * n_b),
                "event_index": np.tile(np.repeat(ev["event_index"], n_b), n_u),
                "event_time": np.tile(np.repeat(ev["time"], n_b), n_u),
            }
            if binned:
                cols["bin"] = np.tile(np.arange(n_b, dtype=np.int64), n_u * n_e)
                cols["bin_start"] = np.tile(offsets[:-1], n_u * n_e)
            cols["n_spikes"] = counts.reshape(-1)
            return pl.DataFrame(cols)

        schema = _COUNT_SCHEMA | (_BIN_SCHEMA if binned else {}) | {"n_spikes": pl.Int64}
        return _concat(self._map_sessions(one, units, events), schema)

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

        def one(sid: str, unit_ids: np.ndarray, ev: dict[str, np.ndarray], files) -> pl.DataFrame:
            totals = np.zeros((len(unit_ids), len(offsets) - 1), dtype=np.int64)
            for times, ulo, uhi in self._chunks(files, unit_ids):
                totals += _kernels().bin_totals(times, ulo, uhi, ev["time"], offsets)
            n_u, n_b = totals.shape
            n_events = len(ev["time"])
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

        return _concat(self._map_sessions(one, units, events), _PSTH_SCHEMA)

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
                pl.col("session_id").n_unique().alias("n_sessions"),
                pl.len().alias("n_units"),
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

        def one(sid: str, unit_ids: np.ndarray, ev: dict[str, np.ndarray], files) -> pl.DataFrame:
            n_u, n_e = len(unit_ids), len(ev["time"])
            parts = []
            for times, ulo, uhi in self._chunks(files, unit_ids):
                pos = _kernels().edge_positions(times, ulo, uhi, ev["time"], offsets)
                lo, hi = pos[:, :, 0].reshape(-1), pos[:, :, 1].reshape(-1)
                n = hi - lo
                first = np.cumsum(n) - n  # where each (unit, event) run starts in the output
                idx = np.repeat(lo - first, n) + np.arange(int(n.sum()), dtype=np.int64)
                event_time = np.repeat(np.tile(ev["time"], n_u), n)
                spike_time = times[idx]
                parts.append(
                    pl.DataFrame(
                        {
                            "session_id": pl.Series([sid]).new_from_index(0, len(idx)),
                            "unit_id": np.repeat(np.repeat(unit_ids, n_e), n),
                            "event_index": np.repeat(np.tile(ev["event_index"], n_u), n),
                            "event_time": event_time,
                            "time": spike_time,
                            "rel_time": spike_time - event_time,
                        }
                    )
                )
            return _concat(parts, _SPIKES_SCHEMA)

        return _concat(self._map_sessions(one, units, events), _SPIKES_SCHEMA)

    # ----------------------------------------------------------------------------- rates
    def annotated_units(self) -> pl.LazyFrame:
        """Units with their probe, peak channel's area, CCF and position, session and subject.

        The rows and columns of the units_annotated view (which every connection of the lake
        holds in memory: no Parquet is read again), as a polars LazyFrame.
        """
        return self._lake.sql("SELECT * FROM units_annotated").lazy()

    def session_spans(self) -> pl.DataFrame:
        """Per session: first and last spike time, duration_s (their difference), n_spikes."""
        rows = []
        files = self._spike_files()
        for sid in self._lake.sessions()["session_id"].to_list():
            first, last, n = self._time_range(files.get(sid, []))
            if n:
                rows.append((sid, first, last, last - first, n))
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
                pl.len().alias("n_units"),
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
        sid = self._lake_session(session_id)
        if unit_ids is None:
            ids = (
                self._lake.scan("units")
                .filter(pl.col("session_id") == sid)
                .select("unit_id")
                .collect()["unit_id"]
                .to_numpy()
            )
        else:
            ids = np.asarray(unit_ids, dtype=np.int64)
        ids = np.unique(ids)
        times, ulo, uhi = self._spikes(self._spike_files().get(sid, []), ids)
        runs = np.split(times, np.stack([ulo, uhi], 1).ravel())[1::2]  # the [lo, hi) slices
        return dict(zip(ids.tolist(), runs, strict=True))

    # ---------------------------------------------------------------------------- internals
    def _map_sessions(
        self,
        work: Callable[[str, np.ndarray, dict[str, np.ndarray], list[str]], pl.DataFrame],
        units: UnitsLike,
        events: EventsLike,
    ) -> list[pl.DataFrame]:
        """Run `work` for every session that has both chosen units and events.

        `work(session_id, sorted unit ids, {'time', 'event_index'}, spike files)` runs on a pool
        (reading and the kernels release the GIL); results come in session order.
        """
        chosen = self.units(units)
        ev = self.events(events)
        files = self._spike_files()
        shared = sorted(set(chosen["session_id"].unique()) & set(ev["session_id"].unique()))
        unit_groups = chosen.partition_by("session_id", as_dict=True)
        event_groups = ev.partition_by("session_id", as_dict=True)

        def run(sid: str) -> pl.DataFrame:
            u = unit_groups[(sid,)]["unit_id"].to_numpy()
            e = event_groups[(sid,)]
            arrays = {
                "time": np.ascontiguousarray(e["time"].to_numpy(), dtype=np.float64),
                "event_index": e["event_index"].to_numpy(),
            }
            return work(sid, np.ascontiguousarray(u, dtype=np.int64), arrays, files.get(sid, []))

        if len(shared) <= 1:
            return [run(sid) for sid in shared]
        with ThreadPoolExecutor(max_workers=min(len(shared), os.cpu_count() or 1)) as pool:
            return list(pool.map(run, shared))

    def _spikes(self, files: list[str], unit_ids: np.ndarray):
        """Spike times of a session sorted by (unit, time), and each chosen unit's [lo, hi)."""
        cols = self._read_spikes(files, ["unit_id", "time"])
        owner = np.ascontiguousarray(cols["unit_id"], dtype=np.int64)
        times = np.ascontiguousarray(cols["time"], dtype=np.float64)
        if not _kernels().is_sorted(owner, times):  # files of a session may come in any order
            order = np.lexsort((times, owner))
            owner, times = owner[order], times[order]
        ulo = np.searchsorted(owner, unit_ids, side="left").astype(np.int64)
        uhi = np.searchsorted(owner, unit_ids, side="right").astype(np.int64)
        return times, ulo, uhi

    def _chunks(self, files: list[str], unit_ids: np.ndarray):
        """Per Parquet row group that may hold a chosen unit: (times, ulo, uhi).

        Row groups whose unit_id statistics exclude every chosen unit are not read. Each row
        group is sorted by (unit_id, time) (checked; sorted here if not), so a unit is the slice
        [ulo, uhi) of it; counts add up over row groups, and nothing is copied.
        """
        import pyarrow.parquet as pq

        if not files:
            return
        fs, _ = self._lake._store._filesystem(files[0])
        for path in files:
            pf = pq.ParquetFile(path.split("://", 1)[1] if "://" in path else path, filesystem=fs)
            meta = pf.metadata
            column = meta.schema.names.index("unit_id")
            for group in range(meta.num_row_groups):
                stats = meta.row_group(group).column(column).statistics
                if stats is not None and stats.has_min_max:
                    first = np.searchsorted(unit_ids, stats.min, side="left")
                    if first == len(unit_ids) or unit_ids[first] > stats.max:
                        continue  # no chosen unit in this row group
                owner, times = self._read_group(pf, group)
                if not _kernels().is_sorted(owner, times):
                    order = np.lexsort((times, owner))
                    owner, times = owner[order], times[order]
                ulo = np.searchsorted(owner, unit_ids, side="left").astype(np.int64)
                uhi = np.searchsorted(owner, unit_ids, side="right").astype(np.int64)
                yield times, ulo, uhi

    def _time_range(self, files: list[str]) -> tuple[float, float, int]:
        """First and last spike time and the number of spikes of one session's files.

        Taken from the Parquet min/max statistics of `time` (exact values; spike times are
        never NaN), reading a row group only where a file has no statistics.
        """
        import pyarrow.parquet as pq

        first, last, n = np.inf, -np.inf, 0
        if not files:
            return first, last, n
        fs, _ = self._lake._store._filesystem(files[0])
        for path in files:
            pf = pq.ParquetFile(path.split("://", 1)[1] if "://" in path else path, filesystem=fs)
            meta = pf.metadata
            column = meta.schema.names.index("time")
            for group in range(meta.num_row_groups):
                rows = meta.row_group(group).num_rows
                if rows == 0:
                    continue
                stats = meta.row_group(group).column(column).statistics
                if stats is not None and stats.has_min_max:
                    low, high = float(stats.min), float(stats.max)
                else:
                    times = self._read_group(pf, group)[1]
                    low, high = float(times.min()), float(times.max())
                first, last, n = min(first, low), max(last, high), n + rows
        return first, last, n

    @staticmethod
    def _read_group(pf, group: int) -> tuple[np.ndarray, np.ndarray]:
        """unit_id and time of one row group (one chunk each: no copy)."""
        table = pf.read_row_group(group, columns=["unit_id", "time"])
        owner = np.ascontiguousarray(table.column("unit_id").to_numpy(), dtype=np.int64)
        times = np.ascontiguousarray(table.column("time").to_numpy(), dtype=np.float64)
        return owner, times

    def _spike_files(self) -> dict[str, list[str]]:
        """The spikes files of the lake's current snapshot, by session (one snapshot per call)."""
        grouped: dict[str, list[str]] = {}
        for f in self._lake._current().tables["spikes"].files:
            found = _PARTITION.search(f)
            if found:
                grouped.setdefault(found.group(1), []).append(f)
        return grouped

    def _read_spikes(self, files: list[str], columns: list[str]) -> dict[str, np.ndarray]:
        """Columns of one session's spikes files (no files: empty columns)."""
        import pyarrow.parquet as pq

        if not files:
            empty = {"unit_id": np.int64, "time": np.float64}
            return {c: np.empty(0, dtype=empty.get(c, np.float64)) for c in columns}
        fs, _ = self._lake._store._filesystem(files[0])
        paths = [f.split("://", 1)[1] if "://" in f else f for f in files]
        table = pq.read_table(paths, columns=columns, filesystem=fs)
        return {c: table.column(c).to_numpy() for c in columns}

    def _lake_session(self, session_id: str) -> str:
        from schemas.errors import UnknownSession
        from schemas.ids import validate_session_id

        sid = validate_session_id(session_id)
        known = self._lake.sessions()["session_id"].to_list()
        if sid not in known:
            msg = f"session {sid!r} is not in the lake ({len(known)} sessions)"
            raise UnknownSession(msg)
        return sid


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


def _event_sql(name: str) -> str:
    """SQL selecting (session_id, event_index, time) of one event of the `events` view.

    The same rows as ``SELECT ... FROM events WHERE event = name`` (tested), read straight
    from the one table the event comes from. Names are validated before they reach the SQL.
    """
    kind, _, rest = name.partition(".")
    if kind not in _EVENT_KINDS or (kind in ("trials", "intervals")) != bool(rest):
        msg = (
            f"event {name!r}: use 'trials.<column>' (e.g. trials.change_time), 'licks', "
            "'rewards' or 'intervals.<table name>'"
        )
        raise ValueError(msg)
    if kind == "trials":
        column = validate_name(rest, what="trials column")
        if not column.endswith("_time"):
            msg = f"event {name!r}: trial events are the *_time columns of trials"
            raise ValueError(msg)
        return (
            "SELECT session_id, trial_index AS event_index, "
            f'TRY_CAST("{column}" AS DOUBLE) AS time FROM trials'
        )
    if kind == "intervals":
        table = validate_name(rest, what="interval table")
        return (
            'SELECT session_id, "row" AS event_index, start_time AS time FROM intervals '
            f"WHERE name = '{table}'"
        )
    order = "time, source" if kind == "licks" else "time"
    return (
        "SELECT session_id, row_number() OVER (PARTITION BY session_id ORDER BY "
        f"{order}) - 1 AS event_index, time FROM {kind} WHERE isfinite(time)"
    )


# ------------------------------------------------------------------------------- kernels
_jit = numba.njit(cache=True, nogil=True)

# Compiled with numba (cached on disk after the first call). Arrays in, arrays out. `import
# lake` does not import this module: `Lake.analysis` imports it when first used.


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
def _edge_positions(times, ulo, uhi, event_times, offsets):
    """First spike index at or after each edge, per (unit, event, edge).

    pos[i, j, k] = first index in [ulo[i], uhi[i]) with times >= event_times[j] + offsets[k],
    that is ulo[i] + the number of the unit's spikes before that edge.
    """
    n_units, n_events, n_edges = ulo.shape[0], event_times.shape[0], offsets.shape[0]
    out = np.empty((n_units, n_events, n_edges), dtype=np.int64)
    for i in range(n_units):
        lo_unit, hi_unit = ulo[i], uhi[i]
        if lo_unit == hi_unit:  # no spike of this unit here
            out[i, :, :] = lo_unit
            continue
        start = lo_unit
        previous = -np.inf
        for j in range(n_events):
            t = event_times[j]
            if t < previous:  # events out of time order: search the whole unit again
                start = lo_unit
            previous = t
            a = _first_at_or_after(times, start, hi_unit, t + offsets[0])
            start = a
            out[i, j, 0] = a
            for k in range(1, n_edges):  # then walk forward edge by edge
                edge = t + offsets[k]
                while a < hi_unit and times[a] < edge:
                    a += 1
                out[i, j, k] = a
    return out


@_jit
def _bin_totals(times, ulo, uhi, event_times, offsets):
    """totals[i, k] = spikes of unit i in bin k, summed over events (same edges as above).

    A spike's bin is guessed as (s - e_0) * n_bins / (e_n - e_0) and then moved until
    e_k <= s < e_(k+1) holds for the float64 edges e_k = t + offsets[k]: exact.
    """
    n_units, n_events, n_edges = ulo.shape[0], event_times.shape[0], offsets.shape[0]
    n_bins = n_edges - 1
    per_second = n_bins / (offsets[n_bins] - offsets[0])
    out = np.zeros((n_units, n_bins), dtype=np.int64)
    for i in range(n_units):
        lo_unit, hi_unit = ulo[i], uhi[i]
        if lo_unit == hi_unit:
            continue
        start = lo_unit
        previous = -np.inf
        for j in range(n_events):
            t = event_times[j]
            if t < previous:
                start = lo_unit
            previous = t
            first, last = t + offsets[0], t + offsets[n_bins]
            a = _first_at_or_after(times, start, hi_unit, first)
            start = a
            while a < hi_unit and times[a] < last:
                s = times[a]
                k = min(max(int((s - first) * per_second), 0), n_bins - 1)  # a guess
                while k > 0 and s < t + offsets[k]:
                    k -= 1
                while k < n_bins - 1 and s >= t + offsets[k + 1]:
                    k += 1
                out[i, k] += 1
                a += 1
    return out


@_jit
def _is_sorted(owner, times):
    """Whether rows are sorted by (owner, time)."""
    for i in range(1, owner.shape[0]):
        if owner[i] < owner[i - 1] or (owner[i] == owner[i - 1] and times[i] < times[i - 1]):
            return False
    return True


class _Compiled:
    """The kernels, as the call sites name them."""

    edge_positions = staticmethod(_edge_positions)
    bin_totals = staticmethod(_bin_totals)
    is_sorted = staticmethod(_is_sorted)


def _kernels() -> type[_Compiled]:
    """The compiled kernels."""
    return _Compiled
