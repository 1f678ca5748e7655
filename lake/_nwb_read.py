"""Read one session from the lake for NWB export: small tables whole, spikes as a checked stream.

Small tables come through `Lake.scan` (current rows of the lake version the Lake is pinned to),
in the lake's sort order, as Arrow with plain types. Spikes are never read whole: the session's
Parquet files are streamed column by column in (unit_id, time) order, and the stream checks as
it flows that every spike names a known unit, that spikes are sorted, and that each unit's
spike count matches `units.spike_count`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from schemas import SESSION_SCOPED, TABLES, NplakeError

if TYPE_CHECKING:
    from lake.lake import Lake

#: Rows per record batch read from the spikes files.
READ_BATCH_ROWS = 1 << 20


class InconsistentSession(NplakeError):
    """A session's rows contradict each other (spikes vs units, channels vs probes, ...)."""


@dataclass
class SessionRows:
    """One session's rows: small tables in lake order, column descriptions, the spikes files."""

    session_id: str
    session: dict
    tables: dict[str, pa.Table]
    descriptions: dict[str, dict[str, str]]
    spikes: SpikeFiles | None = None

    def table(self, name: str) -> pa.Table:
        """Rows of `name` (an empty table with no columns when the session has none)."""
        return self.tables.get(name, pa.table({}))

    def inconsistent(self, message: str) -> InconsistentSession:
        """An InconsistentSession error naming this session."""
        return InconsistentSession(f"session {self.session_id}: {message}")


def read_session(lk: Lake, session_id: str) -> SessionRows:
    """The rows of `session_id` in every table of `lk` (spikes as files, not read)."""
    sessions = lk.scan("sessions").filter(pl.col("session_id") == session_id).collect()
    session = sessions.row(0, named=True)
    tables: dict[str, pa.Table] = {}
    descriptions: dict[str, dict[str, str]] = {}
    for name in SESSION_SCOPED:
        if name == "spikes" or not session.get(f"n_{name}"):
            continue
        frame = lk.scan(name).filter(pl.col("session_id") == session_id).collect()
        table = plain_types(frame.drop("session_id").to_arrow())
        tables[name] = _sorted(table, TABLES[name].sort_by)
        described = lk.describe(name)
        descriptions[name] = dict(zip(described["column"], described["description"], strict=True))
    rows = SessionRows(session_id, session, tables, descriptions)
    if session.get("n_spikes"):
        rows.spikes = spike_files(lk, rows)
    return rows


def _sorted(table: pa.Table, sort_by: tuple[str, ...]) -> pa.Table:
    keys = [(c, "ascending") for c in sort_by if c in table.column_names and c != "session_id"]
    return table.sort_by(keys) if keys and table.num_rows > 1 else table


def plain_types(table: pa.Table) -> pa.Table:
    """`table` with polars' large and view types as plain Arrow string and list types."""
    schema = pa.schema([f.with_type(_plain(f.type)) for f in table.schema])
    return table.cast(schema) if schema != table.schema else table


def _plain(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_list(t):
        return pa.list_(_plain(t.value_type))
    return t


# --------------------------------------------------------------------------------------- spikes
@dataclass
class SpikeFiles:
    """The Parquet files holding one session's spikes, in (unit_id, time) order."""

    session_id: str
    paths: list[str]
    filesystem: pafs.FileSystem
    num_rows: int
    #: 'none', 'all' or 'some': how many spikes have an amplitude.
    amplitudes: str
    columns: set[str] = field(default_factory=set)

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """The session's spikes, `columns` only, one record batch at a time."""
        for path in self.paths:
            with self.filesystem.open_input_file(path) as handle:
                reader = pq.ParquetFile(handle)
                have = [c for c in columns if c in reader.schema_arrow.names]
                for batch in reader.iter_batches(batch_size=READ_BATCH_ROWS, columns=have):
                    yield _with_columns(batch, columns)


def _with_columns(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    arrays = [
        batch.column(c) if c in batch.schema.names else pa.nulls(batch.num_rows, pa.float64())
        for c in columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def spike_files(lk: Lake, rows: SessionRows) -> SpikeFiles:
    """The session's spikes files, ordered, with counts checked against the metadata."""
    snapshot = lk._current()  # the lake version this Lake reads
    store = lk._store
    marker = f"/session_id={rows.session_id}/"
    uris = [u for u in snapshot.tables["spikes"].files if marker in u]
    opened = [store._filesystem(u) for u in uris]
    fs = opened[0][0] if opened else pafs.LocalFileSystem()
    paths = [p for _, p in opened]
    firsts, total, names = [], 0, set()
    nulls: int | None = 0
    for path in paths:
        with fs.open_input_file(path) as handle:
            reader = pq.ParquetFile(handle)
            meta = reader.metadata
            total += meta.num_rows
            names |= set(reader.schema_arrow.names)
            found = _null_count(meta, "amplitude")
            nulls = None if found is None or nulls is None else nulls + found
            firsts.append(_first_key(reader))
    order = sorted(range(len(paths)), key=lambda i: firsts[i])
    expected = int(rows.session.get("n_spikes") or 0)
    if total != expected:
        msg = f"its spikes files hold {total} rows, but sessions.n_spikes says {expected}"
        raise rows.inconsistent(msg)
    if nulls is None:  # no statistics: the writer fills whatever nulls it meets with NaN
        amplitudes = "some"
    else:
        amplitudes = "none" if nulls >= total else ("all" if nulls == 0 else "some")
    return SpikeFiles(rows.session_id, [paths[i] for i in order], fs, total, amplitudes, names)


def _null_count(meta: pq.FileMetaData, column: str) -> int | None:
    """Nulls of `column` from the row-group statistics (all rows when absent; None: unknown)."""
    names = meta.schema.to_arrow_schema().names
    if column not in names:
        return meta.num_rows
    index = names.index(column)
    count = 0
    for rg in range(meta.num_row_groups):
        stats = meta.row_group(rg).column(index).statistics
        if stats is None or not stats.has_null_count:
            return None
        count += stats.null_count
    return count


def _first_key(reader: pq.ParquetFile) -> tuple[int, float]:
    """(unit_id, time) of a file's first row, to order the files of one session."""
    if reader.metadata.num_rows == 0:
        return (np.iinfo(np.int64).max, np.inf)
    first = next(reader.iter_batches(batch_size=1, columns=["unit_id", "time"]))
    return (int(first.column(0)[0].as_py()), float(first.column(1)[0].as_py()))


@dataclass
class SpikeCheck:
    """Checks the spikes stream against the units table while it flows (O(units) per batch)."""

    rows: SessionRows
    unit_ids: np.ndarray
    expected: np.ndarray
    counts: np.ndarray = field(init=False)
    last: tuple[int, float] | None = None

    def __post_init__(self) -> None:
        self.counts = np.zeros(len(self.unit_ids), dtype=np.int64)

    def batch(self, unit_id: np.ndarray, time: np.ndarray) -> None:
        """Check one batch: sorted by (unit_id, time), known units; count spikes per unit."""
        if not len(unit_id):
            return
        unsorted = "spikes are not sorted by (unit_id, time)"
        if self.last is not None and (unit_id[0], time[0]) < self.last:
            raise self.rows.inconsistent(unsorted)
        du = np.diff(unit_id)
        if bool(np.any(du < 0)) or bool(np.any((du == 0) & (np.diff(time) < 0))):
            raise self.rows.inconsistent(unsorted)
        if bool(np.isnan(time).any()):
            msg = "some spike times are NaN"
            raise self.rows.inconsistent(msg)
        starts = np.flatnonzero(du) + 1
        run_ids = unit_id[np.concatenate(([0], starts))]
        run_lengths = np.diff(np.concatenate(([0], starts, [len(unit_id)])))
        pos = np.searchsorted(self.unit_ids, run_ids)
        known = pos < len(self.unit_ids)
        known[known] = self.unit_ids[pos[known]] == run_ids[known]
        if not known.all():
            bad = np.unique(run_ids[~known])[:5].tolist()
            msg = f"spikes name units that are not in units: {bad}"
            raise self.rows.inconsistent(msg)
        np.add.at(self.counts, pos, run_lengths)
        self.last = (int(unit_id[-1]), float(time[-1]))

    def finish(self) -> None:
        """Raise when a unit's spikes disagree with its units.spike_count."""
        bad = np.flatnonzero(self.counts != self.expected)[:5]
        if len(bad):
            detail = ", ".join(
                f"unit {self.unit_ids[i]}: {self.counts[i]} spikes, spike_count {self.expected[i]}"
                for i in bad
            )
            msg = f"spike counts disagree with units.spike_count ({detail})"
            raise self.rows.inconsistent(msg)
