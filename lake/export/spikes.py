"""A session's spikes for NWB export: its Parquet files, streamed in order and checked.

Spikes are never read whole: the files are streamed column by column in (unit_id, time) order
(a background thread reads ahead), and a check run as they flow makes sure that every spike
names a known unit, that spikes are sorted, and that each unit's spike count matches
`units.spike_count`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from lake.export.session import SessionRows

#: Rows per record batch read from the spikes files.
READ_BATCH_ROWS = 1 << 20
#: Batches read ahead of the writer.
PREFETCH = 2
#: Opens one of the lake's files for random-access reads (`Lake.store.open_input`).
Opener = Callable[[str], pa.NativeFile]


@dataclass
class SpikeFiles:
    """The Parquet files holding one session's spikes, in (unit_id, time) order."""

    session_id: str
    uris: list[str]
    open_input: Opener
    num_rows: int
    #: 'none', 'all' or 'some': how many spikes have an amplitude.
    amplitudes: str

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """The session's spikes, `columns` only, one record batch at a time.

        A background thread reads ahead (at most PREFETCH batches): Parquet decoding runs
        while the caller writes the previous batch.
        """
        return _prefetched(self._read(columns), PREFETCH)

    def _read(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        for uri in self.uris:
            with self.open_input(uri) as handle:
                # row group by row group: pre-buffering would hold a whole file's column chunks
                # (reading several row groups per call was measured slower, and +110 MB)
                reader = pq.ParquetFile(handle, pre_buffer=False)
                have = [c for c in columns if c in reader.schema_arrow.names]
                for group in range(reader.metadata.num_row_groups):
                    table = reader.read_row_group(group, columns=have)
                    for batch in table.to_batches(max_chunksize=READ_BATCH_ROWS):
                        yield _with_columns(batch, columns)


def _prefetched(source: Iterator, depth: int) -> Iterator:
    """Iterate `source` in a background thread, at most `depth` items ahead of the caller."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((done, None))
        except BaseException as exc:  # handed to the caller, raised there
            items.put((done, exc))

    thread = threading.Thread(target=produce, name="nplake-spikes-read", daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                items.get_nowait()
            thread.join(timeout=0.05)


def _with_columns(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    arrays = [
        batch.column(c) if c in batch.schema.names else pa.nulls(batch.num_rows, pa.float64())
        for c in columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def spike_files(rows: SessionRows, uris: Iterable[str], open_input: Opener) -> SpikeFiles:
    """The session's spikes files (`uris`), ordered, counts checked against the metadata.

    `open_input` opens one of them (`Lake.store.open_input`).
    """
    uris = list(uris)
    firsts, total = [], 0
    nulls: int | None = 0
    for uri in uris:
        with open_input(uri) as handle:
            reader = pq.ParquetFile(handle)
            meta = reader.metadata
            total += meta.num_rows
            found = _null_count(meta, "amplitude")
            nulls = None if found is None or nulls is None else nulls + found
            firsts.append(_first_key(reader))
    order = sorted(range(len(uris)), key=lambda i: firsts[i])
    expected = int(rows.session.get("n_spikes") or 0)
    if total != expected:
        msg = f"its spikes files hold {total} rows, but sessions.n_spikes says {expected}"
        raise rows.inconsistent(msg)
    if nulls is None:  # no statistics: the writer fills whatever nulls it meets with NaN
        amplitudes = "some"
    else:
        amplitudes = "none" if nulls >= total else ("all" if nulls == 0 else "some")
    ordered = [uris[i] for i in order]
    return SpikeFiles(rows.session_id, ordered, open_input, total, amplitudes)


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
    """Checks a session's spikes against its units table, batch by batch (O(units) each)."""

    rows: SessionRows
    unit_ids: np.ndarray
    expected: np.ndarray
    counts: np.ndarray = field(init=False)
    last: int | None = None

    def __post_init__(self) -> None:
        self.counts = np.zeros(len(self.unit_ids), dtype=np.int64)

    def run(self, spikes: SpikeFiles, stop: threading.Event | None = None) -> None:
        """Check every spike of the session (reads the unit_id column only).

        Returns early, unchecked, once `stop` is set (the export failed for another reason).
        """
        with contextlib.closing(spikes.batches(["unit_id"])) as batches:
            for batch in batches:
                if stop is not None and stop.is_set():
                    return
                self.batch(batch.column(0).to_numpy())
        self.finish()

    def batch(self, unit_id: np.ndarray) -> None:
        """Check one batch: sorted by unit, known units; count spikes per unit.

        Times within a unit are sorted by every ingest (the lake checks it on commit).
        """
        if not len(unit_id):
            return
        unsorted = "spikes are not sorted by unit_id"
        if self.last is not None and unit_id[0] < self.last:
            raise self.rows.inconsistent(unsorted)
        if bool((unit_id[1:] < unit_id[:-1]).any()):
            raise self.rows.inconsistent(unsorted)
        # sorted: each unit's spikes are one run, found by binary search (O(units log rows))
        got = np.searchsorted(unit_id, self.unit_ids, "right")
        got -= np.searchsorted(unit_id, self.unit_ids, "left")
        if int(got.sum()) != len(unit_id):
            bad = np.unique(unit_id[~np.isin(unit_id, self.unit_ids)])[:5].tolist()
            msg = f"spikes name units that are not in units: {bad}"
            raise self.rows.inconsistent(msg)
        self.counts += got
        self.last = int(unit_id[-1])

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


def spike_checks(rows: SessionRows) -> list[Callable[[threading.Event], None]]:
    """The background check of the session's spikes against its units (none without spikes).

    Units come sorted by unit_id; repeated ids are reported by the units writer.
    """
    spikes = rows.spikes
    if spikes is None:
        return []
    units = rows.table("units")
    if units.num_rows:
        unit_ids = units.column("unit_id").to_numpy()
        counts = units.column("spike_count").to_numpy()
    else:
        unit_ids = counts = np.array([], np.int64)
    check = SpikeCheck(rows, unit_ids, counts)
    return [lambda stop: check.run(spikes, stop)]
