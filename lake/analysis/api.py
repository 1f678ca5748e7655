"""`Analysis` (`lk.analysis`): aligned counts, PSTHs and rates, the Python twins of the SQL.

Each method is named after the SQL view or macro it re-implements (`units_annotated`,
`aligned_counts`, `psth`, ...) and gives the same rows (tested), with the same definitions
(docs/analysis.md):

- an event at time t has bin edges ``e_k = t + (start + k * width)`` for k = 0..n (float64, in
  that order); a spike at time s is in bin k when ``e_k <= s < e_(k+1)``. A window
  ``(start, stop)`` is the single bin ``[t + start, t + stop)``;
- events with a NULL or NaN time are dropped; empty windows and units without spikes count 0
  (dense results: one row per unit and event of its session); nothing is clipped at the
  session edges;
- ``rate_hz = n_spikes / (n_events * width)``.

Return types: every table comes back as an eager `polars.DataFrame`, as `Lake.sql` returns
the SQL twin (call `.lazy()` to go on lazily); `spike_times` returns {unit_id: array}. Each
call reads one lake version, even while sessions are ingested.

Examples
--------
>>> counts = lk.analysis.aligned_counts(  # doctest: +SKIP
...     "allen_visual_coding", "trials.change_time", window=(0.0, 0.25))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from lake.analysis import _kernels, _reader, _sql
from lake.analysis._selections import EventsLike, UnitsLike, event_rows, unit_pairs
from lake.analysis._state import computed, pinned
from lake.analysis.edges import Events, bin_offsets, window_offsets, window_or_bins
from lake.analysis.trains import SpikeTrains
from lake.regions import Level, area_at

if TYPE_CHECKING:
    from lake.lake import Lake

#: work(session_id, sorted unit ids, events, row groups) -> that session's rows
_Work = Callable[[str, np.ndarray, Events, _reader.Chunks], pl.DataFrame]


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
        return unit_pairs(pinned(self._lake), units)

    def events(self, events: EventsLike) -> pl.DataFrame:
        """Finite-time events as (session_id, event_index, time), as the `events` view lists them.

        Parameters
        ----------
        events
            A name of the `events` view, e.g. 'trials.change_time', 'licks', 'rewards',
            'intervals.epochs'; or a frame with session_id and time (and optionally
            event_index; else the row number within the session, from 0).
        """
        return event_rows(pinned(self._lake), events)

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

        The SQL macros aligned_counts (window) and aligned_bins (bins).

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
        offsets, binned = window_or_bins(window, bins)

        def one(sid: str, unit_ids: np.ndarray, ev: Events, chunks: _reader.Chunks):
            n_u, n_e, n_b = len(unit_ids), len(ev.time), len(offsets) - 1
            counts = np.zeros((n_u, n_e, n_b), dtype=np.int64)
            for times, ulo, uhi, rows in chunks:  # counts add up over row groups
                _kernels.count_into(times, ulo, uhi, rows, ev.edges, ev.order, counts)
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
        return _concat(_per_session(self._lake, one, units, events, offsets), schema)

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

        def one(sid: str, unit_ids: np.ndarray, ev: Events, chunks: _reader.Chunks):
            totals = np.zeros((len(unit_ids), len(offsets) - 1), dtype=np.int64)
            for times, ulo, uhi, rows in chunks:
                _kernels.totals_into(times, ulo, uhi, rows, ev.edges, offsets, totals)
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

        return _concat(_per_session(self._lake, one, units, events, offsets), _PSTH_SCHEMA)

    def psth_by_area(
        self,
        units: UnitsLike,
        events: EventsLike,
        *,
        bins: tuple[float, float, int],
        level: Level = "structure",
    ) -> pl.DataFrame:
        """Mean PSTH per brain area across sessions: n_sessions, n_units, rate_hz, rate_hz_sd.

        `level` groups the units as SQL's ``psth_by_area(..., level := ...)``: "structure" (the
        acronym as the source wrote it), "beryl", "cosmos", or a depth of the Allen ontology
        (`lake.regions.area_at`); the group's acronym is in structure_acronym.
        """
        area = area_at(level)
        an = Analysis(pinned(self._lake))  # both reads at one lake version
        areas = an.units_annotated().select("session_id", "unit_id", area)
        return (
            an.psth(units, events, bins=bins)
            .lazy()
            .join(areas.lazy(), on=["session_id", "unit_id"], how="left")
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

        def one(sid: str, unit_ids: np.ndarray, ev: Events, chunks: _reader.Chunks):
            n_e = len(ev.time)
            parts = []
            for times, ulo, uhi, rows in chunks:
                pos = _kernels.edge_positions(times, ulo, uhi, ev.edges)  # (units, events, 2)
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

        return _concat(_per_session(self._lake, one, units, events, offsets), _SPIKES_SCHEMA)

    # ----------------------------------------------------------------------------- rates
    def units_annotated(self) -> pl.DataFrame:
        """Units with their probe, peak channel's area, CCF and position, session and subject.

        The rows and columns of the units_annotated view, copied from the lake's connection
        (which holds the view in memory: no Parquet is read) once per lake version.
        """
        lake = pinned(self._lake)
        return computed(lake).units_annotated(lake)

    def session_spans(self) -> pl.DataFrame:
        """Per session: first and last spike time, duration_s (their difference), n_spikes.

        Taken from the Parquet min/max statistics of `time` (see `_reader.time_range`).
        """
        lake = pinned(self._lake)
        snapshot = lake.snapshot()
        rows = []
        for sid in snapshot.sessions.column("session_id").to_pylist():
            first, last, n = _reader.time_range(lake.store, snapshot.files("spikes", sid))
            if n:  # + 0.0: a statistic of a spike at t = 0 may be stored as -0.0
                rows.append((sid, first + 0.0, last + 0.0, last - first, n))
        return pl.DataFrame(rows, schema=_SPANS_SCHEMA, orient="row")

    def unit_rates(self) -> pl.DataFrame:
        """One row per unit: n_spikes, duration_s, mean_rate_hz, firing_rate.

        mean_rate_hz = n_spikes / duration_s (the session's span); firing_rate is the source's.
        The same rows as the unit_rates view.
        """
        an = Analysis(pinned(self._lake))  # both reads at one lake version
        spans = an.session_spans().lazy().select("session_id", "duration_s")
        return (
            an.units_annotated()
            .lazy()
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

    def rates_by_area(self, units: UnitsLike = None, *, level: Level = "structure") -> pl.DataFrame:
        """Per session and area: n_units, n_spikes, mean_rate_hz, mean_firing_rate.

        The same rows as the SQL macro rates_by_area (means equal to float rounding); `level`
        groups the units as there ("structure", "beryl", "cosmos" or a depth of the Allen
        ontology; see `lake.regions.area_at`).
        """
        area = area_at(level)
        an = Analysis(pinned(self._lake))  # both reads at one lake version
        chosen = an.units(units).lazy()
        areas = an.units_annotated().lazy().select("session_id", "unit_id", area)
        fr = pl.col("firing_rate")
        return (
            an.unit_rates()
            .lazy()
            .drop("structure_acronym")
            .join(chosen, on=["session_id", "unit_id"], how="semi")
            .join(areas, on=["session_id", "unit_id"], how="left")
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
        return self.spike_trains(session_id, unit_ids).as_dict()

    def spike_trains(
        self, session_id: str, unit_ids: list[int] | np.ndarray | None = None
    ) -> SpikeTrains:
        """Spike times of chosen units of one session as one flat array and unit boundaries.

        `unit_ids=None` means every unit of the session (listed in units, spikes or not); the
        times are sorted by (unit_id, time). For a whole session whose files prove the lake's
        (unit_id, time) layout, each row group's times are copied straight into place.

        Examples
        --------
        >>> trains = lk.analysis.spike_trains("1052076410")  # doctest: +SKIP
        >>> trains.as_dict()[trains.unit_ids[0]][:3]  # doctest: +SKIP
        """
        lake = pinned(self._lake)
        sid = lake.require_session(session_id)
        counts = computed(lake).unit_rows(lake).get(sid)
        files = lake.snapshot().files("spikes", sid)
        if unit_ids is None:
            ids = lake.sql(_sql.session_units(sid))["unit_id"].to_numpy()
        else:
            ids = np.asarray(unit_ids, dtype=np.int64)
        ids = np.unique(ids).astype(np.int64)
        if unit_ids is None and counts is not None and np.array_equal(ids, counts.unit_ids):
            flat = _reader.session_times(lake.store, files, counts)
            if flat is not None:
                return SpikeTrains(sid, ids, flat, counts.ends.copy())
        if ids.size == 0:
            empty = np.empty(0, np.float64)
            return SpikeTrains(sid, ids, empty, np.empty(0, np.int64))
        runs = _reader.spike_times(lake.store, files, ids, counts)
        parts = [runs[u] for u in ids.tolist()]
        ends = np.cumsum([len(r) for r in parts], dtype=np.int64)
        return SpikeTrains(sid, ids, np.concatenate(parts), ends)


def _per_session(
    lake: Lake, work: _Work, units: UnitsLike, events: EventsLike, offsets: np.ndarray
) -> list[pl.DataFrame]:
    """Run `work` for every session that has both chosen units and events, at one lake version.

    `work(session_id, sorted unit ids, events, row groups)` runs on a pool of threads (reading
    and the kernels release the GIL); results come in session order.
    """
    lake = pinned(lake)
    snapshot = lake.snapshot()
    chosen = unit_pairs(lake, units)
    ev = event_rows(lake, events)
    counts = computed(lake).unit_rows(lake)
    shared = sorted(set(chosen["session_id"].unique()) & set(ev["session_id"].unique()))
    unit_groups = chosen.partition_by("session_id", as_dict=True)
    event_groups = ev.partition_by("session_id", as_dict=True)

    def run(sid: str) -> pl.DataFrame:
        u = np.ascontiguousarray(unit_groups[(sid,)]["unit_id"].to_numpy(), dtype=np.int64)
        e = event_groups[(sid,)]
        times = np.ascontiguousarray(e["time"].to_numpy(), dtype=np.float64)
        session_events = Events.of(times, e["event_index"].to_numpy(), offsets)
        files = snapshot.files("spikes", sid)
        return work(sid, u, session_events, _reader.chunks(lake.store, files, u, counts.get(sid)))

    if len(shared) <= 1:
        return [run(sid) for sid in shared]
    with ThreadPoolExecutor(max_workers=min(len(shared), os.cpu_count() or 1)) as pool:
        return list(pool.map(run, shared))


def _concat(parts: list[pl.DataFrame], schema: dict) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(parts).cast(schema)  # type: ignore[arg-type]


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
_SPANS_SCHEMA = {
    "session_id": pl.String,
    "first_spike_time": pl.Float64,
    "last_spike_time": pl.Float64,
    "duration_s": pl.Float64,
    "n_spikes": pl.Int64,
}
