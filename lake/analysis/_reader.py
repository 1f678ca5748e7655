"""The spike reader: chosen units' spike times of one session, one Parquet row group at a time.

It reads through the lake's public seam only: `Snapshot.files("spikes", session_id)` names a
session's files and `Store.open_input` opens one. Only the row groups whose unit_id statistics
may hold a chosen unit are read (the lake writes spikes sorted by (unit_id, time) in row groups
of `SPIKE_ROW_GROUP_ROWS` rows); in a row group each unit is a slice, found from the units'
spike counts where the files prove that layout, else with `numpy.searchsorted` on unit_id.
Row-group statistics are read once per file and process: lake files never change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from lake.analysis import _kernels

if TYPE_CHECKING:
    import pyarrow.parquet as pq

    from lake.storage import Store

#: (times, ulo, uhi, rows) per row group read; see `chunks`.
Chunks = Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]

_I64 = np.iinfo(np.int64)


@dataclass(frozen=True)
class FileIndex:
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
    def of(metadata: pq.FileMetaData) -> FileIndex:
        """The index of a file from its Parquet footer."""
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
        return FileIndex(metadata, rows, umin, umax, tmin, tmax, bool(declared))


@dataclass(frozen=True)
class UnitRows:
    """One session's units in unit_id order and where their spikes are in (unit_id, time) order."""

    unit_ids: np.ndarray
    starts: np.ndarray  # first row of each unit
    ends: np.ndarray  # one past its last row (the running sum of spike_count)

    def owner(self, rows: np.ndarray) -> np.ndarray:
        """The unit at each row."""
        return self.unit_ids[np.searchsorted(self.ends, rows, side="right")]


def unit_rows(units: pl.DataFrame) -> dict[str, UnitRows]:
    """Per session whose units all have a spike_count, its `UnitRows`.

    `units` has session_id, unit_id and spike_count columns (e.g. units_annotated).
    """
    units = units.select("session_id", "unit_id", pl.col("spike_count").cast(pl.Int64))
    found = {}
    for (sid,), group in units.sort("session_id", "unit_id").group_by(
        "session_id", maintain_order=True
    ):  # a loop over sessions
        count = group["spike_count"]
        if count.null_count() or (count < 0).any():
            continue
        ends = np.cumsum(count.to_numpy()).astype(np.int64)
        ids = group["unit_id"].to_numpy().astype(np.int64)
        found[str(sid)] = UnitRows(ids, ends - count.to_numpy(), ends)
    return found


def chunks(
    store: Store, files: tuple[str, ...], unit_ids: np.ndarray, counts: UnitRows | None = None
) -> Chunks:
    """Per row group of one session's `files` that may hold a chosen unit: (times, ulo, uhi, rows).

    `unit_ids` are sorted and distinct. Row groups whose unit_id statistics exclude every
    chosen unit are not read. In a row group a chosen unit is the slice [ulo, uhi) of `times`;
    `rows` are the positions in `unit_ids` of the chosen units present in the row group (only
    those are listed). Counts add up over row groups, and nothing is copied.

    Where the files declare their (unit_id, time) order and their row-group statistics agree
    with the units' spike counts (`layout`), the slices come from those counts and only `time`
    is decoded; otherwise unit_id is decoded too, and a row group that is not sorted (checked)
    is sorted here.
    """
    starts_of = layout(store, files, counts)
    for uri in files:
        index = file_index(store, uri)
        first = np.searchsorted(unit_ids, index.unit_min, side="left")
        last = np.searchsorted(unit_ids, index.unit_max, side="right")
        groups = np.flatnonzero(last > first)
        if groups.size == 0:
            continue
        starts = None if starts_of is None else starts_of[uri]
        with _open(store, uri, index.metadata) as pf:
            for group in groups.tolist():
                ids = unit_ids[first[group] : last[group]]
                found = None
                if starts is not None and counts is not None:
                    found = _slices(pf, group, ids, counts, starts[group])
                if found is None:
                    found = _decoded_slices(pf, group, ids)
                times, ulo, uhi = found
                present = np.flatnonzero(uhi > ulo)
                if present.size:
                    yield times, ulo[present], uhi[present], present + first[group]


def spike_times(
    store: Store, files: tuple[str, ...], unit_ids: np.ndarray, counts: UnitRows | None
) -> dict[int, np.ndarray]:
    """{unit_id: sorted spike times} of the chosen units (sorted, distinct) of one session."""
    owners, parts = [], []
    for times, ulo, uhi, rows in chunks(store, files, unit_ids, counts):
        n = uhi - ulo
        first = np.cumsum(n) - n
        idx = np.repeat(ulo - first, n) + np.arange(int(n.sum()), dtype=np.int64)
        owners.append(np.repeat(rows, n))
        parts.append(times[idx])
    owner = np.concatenate([np.empty(0, np.int64), *owners])
    times = np.concatenate([np.empty(0, np.float64), *parts])
    if not _kernels.is_sorted(owner, times):  # row groups may come in any order
        order = np.lexsort((times, owner))
        owner, times = owner[order], times[order]
    ends = np.searchsorted(owner, np.arange(len(unit_ids)), side="right")
    runs = np.split(times, ends[:-1])
    return dict(zip(unit_ids.tolist(), runs, strict=True))


def session_times(
    store: Store, files: tuple[str, ...], counts: UnitRows | None
) -> np.ndarray | None:
    """Every spike time of one session in (unit_id, time) order, one flat array; or None.

    Only where `layout` proves that order from the files' statistics and the units' spike
    counts (the lake's writer makes it so): each row group's times are then copied straight to
    their place, and only `time` is decoded. None otherwise (read with `spike_times`).
    """
    starts = layout(store, files, counts)
    if starts is None or counts is None:
        return None
    out = np.empty(int(counts.ends[-1]) if len(counts.ends) else 0, dtype=np.float64)
    for uri in files:
        index = file_index(store, uri)
        groups = np.flatnonzero(index.rows > 0)
        if groups.size == 0:
            continue
        with _open(store, uri, index.metadata) as pf:
            for group in groups.tolist():  # a loop over row groups (128 Ki spikes each)
                first = int(starts[uri][group])
                out[first : first + int(index.rows[group])] = read_times(pf, group)
    return out


def time_range(store: Store, files: tuple[str, ...]) -> tuple[float, float, int]:
    """First and last spike time and the number of spikes of one session's files.

    From the Parquet min/max statistics of `time` (exact values; spike times are never NaN),
    reading a row group only where a file has no statistics.
    """
    first, last, n = np.inf, -np.inf, 0
    for uri in files:
        index = file_index(store, uri)
        known = np.isfinite(index.time_min) & np.isfinite(index.time_max)
        has_rows = index.rows > 0
        if np.any(known & has_rows):
            first = min(first, float(index.time_min[known & has_rows].min()))
            last = max(last, float(index.time_max[known & has_rows].max()))
        unknown = np.flatnonzero(~known & has_rows)
        if unknown.size:
            with _open(store, uri, index.metadata) as pf:
                for group in unknown.tolist():
                    times = read_group(pf, group)[1]
                    first = min(first, float(times.min()))
                    last = max(last, float(times.max()))
        n += int(index.rows.sum())
    return first, last, n


def layout(
    store: Store, files: tuple[str, ...], counts: UnitRows | None
) -> dict[str, np.ndarray] | None:
    """Per file, the first row of each row group in the session's (unit_id, time) order.

    Only when that order is proven: every file declares itself sorted by (unit_id, time) (the
    lake's writer does), the files' unit ranges follow each other, the session has as many
    spikes as its units' spike_count add up to, and every row group's unit_id min and max are
    the units the spike counts place at its first and last row. Else None.
    """
    if counts is None or not files:
        return None
    indexes = [(uri, file_index(store, uri)) for uri in files]
    if not all(ix.unit_time_sorted for _, ix in indexes):
        return None
    indexes = [(u, ix) for u, ix in indexes if ix.rows.sum() > 0]
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
    found, at = {}, 0
    for uri, ix in indexes:
        found[uri] = starts[at : at + len(ix.rows)]
        at += len(ix.rows)
    return {uri: found.get(uri, np.zeros(0, np.int64)) for uri in files}


def file_index(store: Store, uri: str) -> FileIndex:
    """The row-group statistics of one spikes file, read once per process (files never change)."""
    with _INDEX_LOCK:
        found = _INDEXES.get(uri)
        if found is not None:
            _INDEXES.move_to_end(uri)
            return found
    import pyarrow.parquet as pq

    with store.open_input(uri) as handle:
        index = FileIndex.of(pq.read_metadata(handle))
    with _INDEX_LOCK:
        _INDEXES[uri] = index
        while len(_INDEXES) > _INDEX_LIMIT:
            _INDEXES.popitem(last=False)
    return index


def read_times(pf: pq.ParquetFile, group: int) -> np.ndarray:
    """Spike times of one row group (one chunk: no copy)."""
    table = pf.read_row_group(group, columns=["time"], use_threads=False)
    return np.ascontiguousarray(table.column("time").to_numpy(), dtype=np.float64)


def read_group(pf: pq.ParquetFile, group: int) -> tuple[np.ndarray, np.ndarray]:
    """unit_id and time of one row group (one chunk each: no copy)."""
    table = pf.read_row_group(group, columns=["unit_id", "time"], use_threads=False)
    owner = np.ascontiguousarray(table.column("unit_id").to_numpy(), dtype=np.int64)
    times = np.ascontiguousarray(table.column("time").to_numpy(), dtype=np.float64)
    return owner, times


#: Row-group statistics of spikes files, by file URI (least recently used dropped first).
_INDEXES: OrderedDict[str, FileIndex] = OrderedDict()
_INDEX_LIMIT = 16_384
_INDEX_LOCK = threading.Lock()


@contextmanager
def _open(store: Store, uri: str, metadata: pq.FileMetaData) -> Iterator[pq.ParquetFile]:
    """A spikes file opened for reading row groups, with its footer already parsed."""
    import pyarrow.parquet as pq

    with store.open_input(uri) as handle:
        yield pq.ParquetFile(handle, metadata=metadata)


def _slices(pf: pq.ParquetFile, group: int, ids: np.ndarray, counts: UnitRows, start: int):
    """Times of one row group and the [ulo, uhi) of units `ids`, from the spike counts.

    None when a slice is not sorted by time (then the caller decodes unit_id).
    """
    times = read_times(pf, group)
    pos = np.minimum(np.searchsorted(counts.unit_ids, ids), len(counts.unit_ids) - 1)
    known = counts.unit_ids[pos] == ids  # a unit the units table does not list: no rows
    ulo = np.clip(counts.starts[pos] - start, 0, len(times))
    uhi = np.where(known, np.clip(counts.ends[pos] - start, 0, len(times)), ulo)
    if not _kernels.slices_sorted(times, ulo, uhi):
        return None
    return times, ulo, uhi


def _decoded_slices(pf: pq.ParquetFile, group: int, ids: np.ndarray):
    """Times of one row group and the [ulo, uhi) of units `ids`, from its unit_id column."""
    owner, times = read_group(pf, group)
    if not _kernels.is_sorted(owner, times):
        order = np.lexsort((times, owner))
        owner, times = owner[order], times[order]
    return (
        times,
        np.searchsorted(owner, ids, side="left"),
        np.searchsorted(owner, ids, side="right"),
    )
