"""Allen sync HDF5 files: the metadata, and every edge of every digital line in one pass.

A sync file (FORMATS.md 2.1) has a dataset `data` of shape (N, 2): the sample counter of the
sync clock and the 32-bit word of all line states after a change, one row per change, and a
dataset `meta`, a Python-literal dict string parsed with `ast.literal_eval` (never `eval`, never
`json`).

Conventions
-----------
- The first row is the baseline state: it yields no edge (as the AllenSDK reads these files).
  An edge of line b is a later row whose bit b differs from the previous row's.
- The counter is unwrapped: when it decreases, it rolled over, and every later counter gets
  2**counter_bits more. This also holds for 32-bit counters, which roll over after 11.9 h at
  100 kHz. A file whose meta has no `counter_bits` is read as 32-bit, and a rollover in such a
  file is a DecodeError (the modulus would be a guess).
- A rollover is only visible when a row falls inside every counter period: when no line
  changes for 2**counter_bits samples or more (0.66 s for a 16-bit counter at 100 kHz, 11.9 h
  for 32 bits), a rollover passes unseen and every later time would be short by one period.
  When meta has `total_samples`, a decoded last row one period or more before it is a
  DecodeError (field `meta.ni_daq.counter_bits`; a quiet end of that length trips it too);
  without `total_samples` it cannot be seen.
- `time = sample / counter_output_freq` seconds on the sync clock (the session's master clock).

How it is decoded
-----------------
`decode_sync` makes ONE pass over the rows with the numba kernel in `_kernels.py`: the rows are
split into one contiguous range per thread (lane), each lane reads its range in chunks of
`chunk_rows` rows and appends every changed line's sample to that line's own growing buffer.
The result (`SyncEdges`) is each line's samples, already in (line, sample) order: 8 bytes per
edge, nothing else. `rising` follows from the alternation of a line's edges, and `line`,
`label`, `time` and `rising` are derived per record batch when the lake writes the
`sync_edges` stream (`SyncEdges.batches`), so they never exist for the whole file at once.

The rows come straight from the file when `data` is stored raw (contiguous, or chunked without
filters, little-endian 32-bit): the file is memory-mapped and each lane's next chunk is read
ahead (`madvise(WILLNEED)`) while the current one is decoded, then dropped from the process
(`madvise(DONTNEED)`), so the rows cost no copy and no resident memory beyond two chunks per
lane. Otherwise (compressed or filtered data) chunks are read with h5py into two reused
buffers (2 x lanes x chunk_rows rows), the next while the current is decoded.

Memory: 8 bytes per edge for the result, plus up to two chunks of rows per lane while
decoding, plus one record batch (about 30 bytes per row of it) while a batch is being read.
`decode_edges` (the eager table: line int64, label int8, sample int64, time float64, rising
bool) adds 26 bytes per edge; it is meant for small files and tests.

Examples
--------
>>> sync = read_sync("session.sync")  # doctest: +SKIP
>>> edges = decode_sync(sync)  # doctest: +SKIP
>>> frames = line_edges(edges, "vsync_stim", rising=False)  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import json
import math
import mmap
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numba
import numpy as np
import pyarrow as pa

from ingest._hdf5 import as_text, open_h5
from ingest.rig import _kernels
from schemas import DecodeError

N_LINES = 32
#: Rows each lane reads per chunk by default (8 MB of uint32 pairs).
DEFAULT_CHUNK_ROWS = 1 << 20
#: Edges per record batch of `SyncEdges.batches` (the lake's row group size).
BATCH_ROWS = 1 << 20
#: Longest `meta` string accepted (real ones are well under 1 kB).
MAX_META_CHARS = 1 << 20
#: Rows per lane below which fewer lanes (threads) are used.
_MIN_LANE_ROWS = 1 << 16
#: Edges of a line's first slab (and the least a new slab gets beyond the line's rate).
_MIN_SLAB = 1 << 12
#: Edges of the smallest arena slabs are cut from (4 MB: numpy backs it with huge pages).
_MIN_ARENA = 1 << 19
#: Chunked `data` with more chunks than this is read through h5py (listing them costs more).
_MAX_MAPPED_CHUNKS = 1 << 17

#: Schema of the edges (`SyncEdges.batches`, `decode_edges`); `label` is dictionary-encoded text.
EDGES_SCHEMA = pa.schema(
    [
        pa.field("line", pa.int64(), nullable=False),
        pa.field("label", pa.dictionary(pa.int8(), pa.string())),
        pa.field("sample", pa.int64(), nullable=False),
        pa.field("time", pa.float64(), nullable=False),
        pa.field("rising", pa.bool_(), nullable=False),
    ]
)


@dataclass(frozen=True)
class SyncFile:
    """What `read_sync` learnt about a sync file; `data` itself stays on disk.

    Attributes
    ----------
    path
        The sync file.
    meta
        The parsed `meta` dict, as the file has it.
    line_labels
        32 labels, line 0 first ('' = unused); padded with '' when the file lists fewer.
    counter_output_freq
        Sync clock rate in Hz (100 kHz on Allen rigs).
    counter_bits
        Width of the counter; None when meta does not say (read as 32, see module docstring).
    n_rows
        Rows in `data`.
    total_samples
        `meta['total_samples']` when present (the acquisition's length in samples).
    """

    path: Path
    meta: dict[str, Any] = field(repr=False)
    line_labels: tuple[str, ...]
    counter_output_freq: float
    counter_bits: int | None
    n_rows: int
    total_samples: int | None = None

    @property
    def sample_period(self) -> float:
        """One sync sample in seconds."""
        return 1.0 / self.counter_output_freq

    @property
    def duration(self) -> float | None:
        """Length of the acquisition in seconds (from `total_samples`), when known."""
        if self.total_samples is None:
            return None
        return self.total_samples / self.counter_output_freq

    def line(self, label_or_line: str | int) -> int:
        """The line number of a label (or a line number, checked to be 0-31)."""
        return _resolve_line(self.line_labels, label_or_line, self.path)


def read_sync(path: str | Path) -> SyncFile:
    """Open a sync file and check its `meta` and `data` without reading the rows.

    Raises DecodeError naming the file and the field when `meta` is missing, not a Python
    literal dict, or lacks a required key (`ni_daq.counter_output_freq`, `line_labels`), and when
    `data` is missing or not an (N, 2) integer dataset.

    Examples
    --------
    >>> sync = read_sync("session.sync")  # doctest: +SKIP
    >>> sync.line_labels[2], sync.counter_output_freq  # doctest: +SKIP
    ('stim_vsync', 100000.0)
    """
    path = Path(path)
    with open_h5(path) as fh:
        meta = _read_meta(fh, path)
        data = _data_dataset(fh, path)
        n_rows = int(data.shape[0])
    ni_daq = meta.get("ni_daq")
    if not isinstance(ni_daq, dict):
        msg = "meta has no 'ni_daq' dict"
        raise DecodeError(msg, file=path, field="meta.ni_daq")
    freq = ni_daq.get("counter_output_freq")
    if isinstance(freq, bool) or not isinstance(freq, int | float) or not math.isfinite(freq):
        msg = f"missing or not a number: {freq!r}"
        raise DecodeError(msg, file=path, field="meta.ni_daq.counter_output_freq")
    if freq <= 0:
        msg = f"must be positive, got {freq!r}"
        raise DecodeError(msg, file=path, field="meta.ni_daq.counter_output_freq")
    bits = ni_daq.get("counter_bits")
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int)):
        msg = f"not an integer: {bits!r}"
        raise DecodeError(msg, file=path, field="meta.ni_daq.counter_bits")
    if bits is not None and not 1 <= bits <= 32:
        msg = f"must be 1-32, got {bits}"
        raise DecodeError(msg, file=path, field="meta.ni_daq.counter_bits")
    total = meta.get("total_samples")
    total = int(total) if isinstance(total, int) and not isinstance(total, bool) else None
    return SyncFile(
        path=path,
        meta=meta,
        line_labels=_line_labels(meta, path),
        counter_output_freq=float(freq),
        counter_bits=bits,
        n_rows=n_rows,
        total_samples=total,
    )


@dataclass(frozen=True, eq=False)
class SyncEdges:
    """Every edge of every line of a sync file: each line's samples, in (line, sample) order.

    A `BatchSource` (schema, num_rows, batches) of the `sync_edges` table: the columns other
    than `sample` are derived per record batch. Built by `decode_sync`.

    Attributes
    ----------
    sync
        The file's `SyncFile`.
    pieces
        Per line (0-31), the arrays (int64, unwrapped counter) whose concatenation is the line's
        edge samples in time order.
    baseline
        The first row's word: line b's first edge rises iff bit b is clear in it (a line's
        edges alternate).
    """

    sync: SyncFile
    pieces: tuple[tuple[np.ndarray, ...], ...] = field(repr=False)
    baseline: int

    @cached_property
    def counts(self) -> np.ndarray:
        """Edges per line (int64, 32)."""
        return np.array([sum(len(p) for p in ps) for ps in self.pieces], dtype=np.int64)

    @property
    def num_rows(self) -> int:
        """Edges of all lines."""
        return int(self.counts.sum())

    @cached_property
    def schema(self) -> pa.Schema:
        """`EDGES_SCHEMA` with `line_labels` (JSON list of 32), `counter_output_freq`, `source`."""
        metadata = {
            "line_labels": json.dumps(list(self.sync.line_labels)),
            "counter_output_freq": repr(self.sync.counter_output_freq),
            "source": str(self.sync.path),
        }
        return EDGES_SCHEMA.with_metadata(metadata)

    def samples(self, label_or_line: str | int) -> np.ndarray:
        """One line's edge samples (int64, the unwrapped counter), in time order."""
        parts = self.pieces[self.sync.line(label_or_line)]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def times(self, label_or_line: str | int, rising: bool | None = True) -> np.ndarray:
        """Times (s) of one line's edges: rising (True), falling (False) or both (None)."""
        line = self.sync.line(label_or_line)
        samples = self.samples(line)
        if rising is not None:
            starts_high = (self.baseline >> line) & 1
            samples = samples[starts_high if rising else 1 - starts_high :: 2]
        return samples / self.sync.counter_output_freq

    def batches(self, max_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The edges as record batches of at most `max_rows` rows, in (line, sample) order.

        Only `sample` exists beforehand; `line`, `label`, `time` and `rising` are made per
        batch (about 26 bytes per row of the batch).
        """
        if max_rows < 1:
            msg = f"max_rows must be positive, got {max_rows}"
            raise ValueError(msg)
        alternating = np.zeros(max_rows + 1, dtype=np.bool_)
        alternating[::2] = True
        labels = list(dict.fromkeys(self.sync.line_labels))
        codes = np.array([labels.index(x) for x in self.sync.line_labels], dtype=np.int8)
        dictionary = pa.array(labels, type=pa.string())
        pending: list[tuple[int, np.ndarray, int]] = []  # (line, samples, phase of the first)
        rows = 0
        for line, parts in enumerate(self.pieces):
            index = (self.baseline >> line) & 1  # edge k rises iff (k + index) is even
            for part in parts:
                at = 0
                while at < len(part):
                    take = min(len(part) - at, max_rows - rows)
                    pending.append((line, part[at : at + take], index & 1))
                    at, index, rows = at + take, index + take, rows + take
                    if rows == max_rows:
                        yield self._batch(pending, alternating, codes, dictionary)
                        pending, rows = [], 0
        if pending:
            yield self._batch(pending, alternating, codes, dictionary)

    def to_table(self) -> pa.Table:
        """All edges as one Arrow table (materialises every column: 34 bytes per edge)."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)

    def _batch(
        self,
        pending: list[tuple[int, np.ndarray, int]],
        alternating: np.ndarray,
        codes: np.ndarray,
        dictionary: pa.Array,
    ) -> pa.RecordBatch:
        lines = np.array([p[0] for p in pending], dtype=np.int64)
        lengths = np.array([len(p[1]) for p in pending], dtype=np.int64)
        if len(pending) == 1:
            sample, rising = pending[0][1], alternating[pending[0][2] :][: lengths[0]]
        else:
            sample = np.concatenate([p[1] for p in pending])
            rising = np.concatenate([alternating[p[2] :][: len(p[1])] for p in pending])
        label = pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(codes[lines], lengths), type=pa.int8()), dictionary
        )
        columns = [
            pa.array(np.repeat(lines, lengths)),
            label,
            pa.array(sample),
            pa.array(sample / self.sync.counter_output_freq),
            pa.array(rising),
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)


def decode_sync(
    source: str | Path | SyncFile,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    lanes: int | None = None,
) -> SyncEdges:
    """Every edge of every line of a sync file, decoded in one pass (see the module docstring).

    Raises DecodeError naming the file and the field for a counter that does not fit
    `counter_bits` (`data`), a rollover in a file without `counter_bits`, or a rollover that
    went unseen (`meta.ni_daq.counter_bits`).

    Parameters
    ----------
    source
        A sync file path or what `read_sync` returned for it.
    chunk_rows
        Rows each lane reads and decodes at a time; memory for the rows is bounded by it.
    lanes
        Threads decoding row ranges side by side (default: numba's thread count, fewer for
        small files). The result does not depend on it.

    Examples
    --------
    >>> edges = decode_sync("session.sync")  # doctest: +SKIP
    >>> edges.times("vsync_stim", rising=False)[:2]  # doctest: +SKIP
    array([31.44712, 31.46381])
    """
    sync = source if isinstance(source, SyncFile) else read_sync(source)
    if chunk_rows < 1:
        msg = f"chunk_rows must be positive, got {chunk_rows}"
        raise ValueError(msg)
    if lanes is not None and lanes < 1:
        msg = f"lanes must be positive, got {lanes}"
        raise ValueError(msg)
    modulus = 1 << (sync.counter_bits or 32)
    with open_h5(sync.path) as fh:
        data = _data_dataset(fh, sync.path)
        n = int(data.shape[0])
        if n == 0:
            return SyncEdges(sync, ((),) * N_LINES, 0)
        first = _row(data, 0)
        if first[0] >= modulus:
            msg = f"row 0: counter {first[0]} does not fit counter_bits"
            raise DecodeError(msg, file=sync.path, field="data")
        if n == 1:
            _check_unseen_rollover(sync, first[0], modulus)
            return SyncEdges(sync, ((),) * N_LINES, first[1])
        if lanes is None:
            lanes = min(numba.get_num_threads(), max(1, (n - 1) // _MIN_LANE_ROWS))
        bounds = [1 + (n - 1) * j // lanes for j in range(lanes + 1)]
        starts = [first] + [_row(data, b - 1) for b in bounds[1:-1]]
        ranges = list(itertools.pairwise(bounds))
        runs = _raw_runs(fh, data)
        steps = _mapped_steps(sync.path, runs, ranges, chunk_rows) if runs else None
        if steps is None:
            steps = _read_steps(data, ranges, chunk_rows)
        try:
            pieces, offsets, last_raw = _decode_steps(sync, steps, ranges, starts, modulus)
        finally:
            steps.close()
    rolled = int(offsets.sum())
    if rolled and sync.counter_bits is None:
        msg = "the counter rolled over but meta has no ni_daq.counter_bits to unwrap it with"
        raise DecodeError(msg, file=sync.path, field="meta.ni_daq.counter_bits")
    _check_unseen_rollover(sync, last_raw + rolled, modulus)
    return SyncEdges(sync, pieces, first[1])


def decode_edges(
    source: str | Path | SyncFile, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> pa.Table:
    """Every edge of every line of a sync file as one Arrow table, sorted by (line, sample).

    `decode_sync(...).to_table()`: columns as the `sync_edges` table — `line` (int64), `label`
    (text, dictionary-encoded), `sample` (int64, the unwrapped counter), `time` (float64 s on
    the sync clock), `rising` (bool). The schema metadata carries `line_labels` (JSON list of
    32) and `counter_output_freq`, used by `line_edges`. Every column is materialised (34 bytes
    an edge): for large files use `decode_sync`, whose result streams.

    Examples
    --------
    >>> edges = decode_edges("session.sync")  # doctest: +SKIP
    >>> edges.column_names  # doctest: +SKIP
    ['line', 'label', 'sample', 'time', 'rising']
    """
    return decode_sync(source, chunk_rows=chunk_rows).to_table()


def line_edges(
    edges: pa.Table | SyncEdges, label_or_line: str | int, rising: bool | None = True
) -> np.ndarray:
    """Times (s) of one line's edges: rising (True), falling (False) or both (None).

    `label_or_line` is a label (e.g. 'vsync_stim', 'barcode_ephys', 'lick_sensor') or a line
    number. `edges` is what `decode_sync` or `decode_edges` returned (a table is sliced by its
    (line, sample) order, without a scan).

    Examples
    --------
    >>> licks = line_edges(edges, "lick_sensor", rising=True)  # doctest: +SKIP
    """
    if isinstance(edges, SyncEdges):
        return edges.times(label_or_line, rising)
    meta = edges.schema.metadata or {}
    source = meta.get(b"source", b"").decode() or None
    labels = _labels_from_table(edges)
    line = _resolve_line(labels, label_or_line, source)
    lines = edges.column("line").to_numpy()
    lo, hi = np.searchsorted(lines, [line, line + 1])
    times = edges.column("time").slice(lo, hi - lo).to_numpy()
    if rising is None:
        return times
    flags = edges.column("rising").slice(lo, hi - lo).to_numpy(zero_copy_only=False)
    return times[flags] if rising else times[~flags]


# --- internals -------------------------------------------------------------------------------


def _read_meta(fh: h5py.File, path: Path) -> dict[str, Any]:
    if "meta" not in fh or not isinstance(fh["meta"], h5py.Dataset):
        msg = "no 'meta' dataset"
        raise DecodeError(msg, file=path, field="meta")
    text = as_text(fh["meta"][()])
    if not text:
        msg = "empty"
        raise DecodeError(msg, file=path, field="meta")
    if len(text) > MAX_META_CHARS:
        msg = f"{len(text)} characters; a sync meta string is far shorter"
        raise DecodeError(msg, file=path, field="meta")
    try:
        meta = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        msg = f"not a Python literal ({type(exc).__name__}: {exc})"
        raise DecodeError(msg, file=path, field="meta") from None
    if not isinstance(meta, dict):
        msg = f"not a literal dict (a {type(meta).__name__})"
        raise DecodeError(msg, file=path, field="meta")
    return meta


def _data_dataset(fh: h5py.File, path: Path) -> h5py.Dataset:
    if "data" not in fh or not isinstance(fh["data"], h5py.Dataset):
        msg = "no 'data' dataset"
        raise DecodeError(msg, file=path, field="data")
    data = fh["data"]
    if data.ndim != 2 or data.shape[1] < 2:
        msg = f"expected shape (N, 2), got {data.shape}"
        raise DecodeError(msg, file=path, field="data")
    if data.dtype.kind not in "ui" or data.dtype.itemsize > 4:
        msg = f"expected 32-bit integers (uint32), got {data.dtype}"
        raise DecodeError(msg, file=path, field="data")
    return data


def _line_labels(meta: dict[str, Any], path: Path) -> tuple[str, ...]:
    labels = meta.get("line_labels")
    if not isinstance(labels, list | tuple):
        msg = f"missing or not a list: {type(labels).__name__}"
        raise DecodeError(msg, file=path, field="meta.line_labels")
    if len(labels) > N_LINES:
        msg = f"{len(labels)} labels for {N_LINES} lines"
        raise DecodeError(msg, file=path, field="meta.line_labels")
    bad = [x for x in labels if not isinstance(x, str)]
    if bad:
        msg = f"labels must be strings, got {bad[:3]!r}"
        raise DecodeError(msg, file=path, field="meta.line_labels")
    return tuple(labels) + ("",) * (N_LINES - len(labels))


def _row(data: h5py.Dataset, index: int) -> tuple[int, int]:
    """Row `index` of `data` as (counter, word), both read as unsigned 32-bit."""
    values = data[index]
    return int(values[0]) & 0xFFFFFFFF, int(values[1]) & 0xFFFFFFFF


def _check_unseen_rollover(sync: SyncFile, last_sample: int, modulus: int) -> None:
    """Refuse a file whose last row is more than one counter period before `total_samples`."""
    total = sync.total_samples
    if total is None or total - last_sample < modulus:
        return
    bits = sync.counter_bits or 32
    msg = (
        f"the last row is at sample {last_sample} but total_samples is {total}: at least one "
        f"whole counter period (2**{bits} = {modulus} samples, "
        f"{modulus / sync.counter_output_freq:g} s) passed without a row, so a rollover went "
        "unseen. If that happened inside the recording every later time is one period short; "
        "at its end it is harmless — the two cannot be told apart, so the file is refused "
        f"(a {bits}-bit counter cannot be unwrapped across a gap that long)"
    )
    raise DecodeError(msg, file=sync.path, field="meta.ni_daq.counter_bits")


#: One step of rows for every lane: the words, each lane's (word offset, rows) in them, and
#: each lane's first row number in the file.
_Step = tuple[np.ndarray, np.ndarray, np.ndarray]


def _decode_steps(
    sync: SyncFile,
    steps: Iterator[_Step],
    ranges: list[tuple[int, int]],
    starts: list[tuple[int, int]],
    modulus: int,
) -> tuple[tuple[tuple[np.ndarray, ...], ...], np.ndarray, int]:
    """Run the kernel over every step.

    Returns each line's pieces, each lane's rollover samples and the last row's raw counter.
    """
    state = np.array([[word, raw, 0] for raw, word in starts], dtype=np.int64)
    out = _Buffers(np.array([b - a for a, b in ranges], dtype=np.int64))
    for words, step_lanes, step_rows in steps:
        lanes, rows = step_lanes.copy(), step_rows.copy()
        while lanes[:, 1].any():
            out.make_room(lanes[:, 1])
            done, bad = _run_kernel(words, lanes, state, out, modulus)
            for lane in np.flatnonzero(bad >= 0)[:1]:
                counter = int(words[lanes[lane, 0] + 2 * bad[lane]])
                msg = f"row {rows[lane] + bad[lane]}: counter {counter} does not fit counter_bits"
                raise DecodeError(msg, file=sync.path, field="data")
            lanes[:, 0] += 2 * done
            lanes[:, 1] -= done
            rows += done
            out.left -= done
    return out.finish(state[:, 2]), state[:, 2], int(state[-1, 1])


def _run_kernel(
    words: np.ndarray, lanes: np.ndarray, state: np.ndarray, out: _Buffers, modulus: int
) -> tuple[np.ndarray, np.ndarray]:
    """The kernel over every lane with rows: in parallel, or in this thread when only one has."""
    active = np.flatnonzero(lanes[:, 1])
    if len(active) > 1:
        return _kernels.decode_lanes(words, lanes, state, out.cursor, out.limit, modulus)
    done = np.zeros(len(lanes), dtype=np.int64)
    bad = np.full(len(lanes), -1, dtype=np.int64)
    for lane in active:  # no thread pool to wake for one lane
        done[lane], bad[lane] = _kernels.decode_lane(
            words, *lanes[lane], state[lane], out.cursor[lane], out.limit[lane], modulus
        )
    return done, bad


class _Buffers:
    """Where the kernel appends each (lane, line)'s edges: slabs carved out of per-lane arenas.

    The kernel writes at `cursor` and stops at `limit` (byte addresses). Before each call, a
    line whose slab may not hold its edges of the coming rows (at its rate so far, +25 %) gets
    a new slab sized for the rest of the lane at that rate (+12.5 %; the old slab's filled part
    becomes a piece). Slabs are cut from an arena per lane, a few large arrays (in huge pages,
    which fault 512 times less often than small ones), so a line with few edges costs bytes,
    not a page. Room never written costs address space, not memory. A line's buffer never
    needs more edges than the lane has rows left (a row adds at most one edge per line).
    """

    def __init__(self, lane_rows: np.ndarray) -> None:
        n_lanes = len(lane_rows)
        self.rows = lane_rows.copy()
        self.left = lane_rows.copy()
        self.cursor = np.zeros((n_lanes, N_LINES), dtype=np.int64)
        self.limit = np.zeros((n_lanes, N_LINES), dtype=np.int64)
        self._base = np.zeros((n_lanes, N_LINES), dtype=np.int64)
        self._stored = np.zeros((n_lanes, N_LINES), dtype=np.int64)
        self._slab: list[list[tuple[np.ndarray, int] | None]] = [
            [None] * N_LINES for _ in range(n_lanes)
        ]
        self._arena: list[tuple[np.ndarray, int]] = [(np.empty(0, np.int64), 0)] * n_lanes
        self._sealed: list[list[list[np.ndarray]]] = [
            [[] for _ in range(N_LINES)] for _ in range(n_lanes)
        ]

    def make_room(self, rows: np.ndarray) -> None:
        """Give every line of lane j a slab likely to hold its edges of the next `rows[j]` rows."""
        edge = _kernels.EDGE_BYTES
        filled = (self.cursor - self._base) // edge
        decoded = np.maximum(self.rows - self.left, 1)[:, None]
        rate = (self._stored + filled) / decoded
        room = (self.limit - self.cursor) // edge
        short = (room < rate * rows[:, None] * 1.25 + 64) & (rows[:, None] > 0)
        for lane in np.flatnonzero(short.any(axis=1)):
            left = int(self.left[lane])
            sizes = np.minimum(left, (rate[lane] * left * 1.125).astype(np.int64) + _MIN_SLAB)
            lines = np.flatnonzero(short[lane])
            for line in lines:
                self._seal(lane, line)
            arena, used = self._arena[lane]
            if used + int(sizes[lines].sum()) > len(arena):
                # a new arena for the short lines now and every line's next slab later
                total = int(sizes[lines].sum() + sizes.sum())
                arena, used = np.empty(max(total, _MIN_ARENA), dtype=np.int64), 0
            for line in lines:
                size = int(sizes[line])
                self._slab[lane][line] = (arena, used)
                address = arena.ctypes.data + used * edge
                self._base[lane, line] = self.cursor[lane, line] = address
                self.limit[lane, line] = address + size * edge
                used += size
            self._arena[lane] = (arena, used)

    def finish(self, rollover: np.ndarray) -> tuple[tuple[np.ndarray, ...], ...]:
        """Each line's pieces in (lane, time) order, lanes shifted by earlier lanes' rollovers."""
        pieces: list[list[np.ndarray]] = [[] for _ in range(N_LINES)]
        shift = 0
        for lane, sealed in enumerate(self._sealed):
            for line in range(N_LINES):
                self._seal(lane, line)
                for piece in sealed[line]:
                    if shift:
                        piece += shift
                    pieces[line].append(piece)
            shift += int(rollover[lane])
        self._slab = []
        self._arena = []
        return tuple(tuple(p) for p in pieces)

    def _seal(self, lane: int, line: int) -> None:
        filled = int(self.cursor[lane, line] - self._base[lane, line]) // _kernels.EDGE_BYTES
        if filled:
            arena, start = self._slab[lane][line]
            self._sealed[lane][line].append(arena[start : start + filled])
            self._stored[lane, line] += filled
            self._base[lane, line] = self.cursor[lane, line]
            self._slab[lane][line] = (arena, start + filled)


def _blocks(
    start: int, stop: int, runs: list[tuple[int, int, int]] | None, chunk_rows: int
) -> list[tuple[int, int, int]]:
    """Rows [start, stop) as blocks of at most `chunk_rows` rows, none crossing a run of `runs`.

    A block is (first row, rows, byte offset in the file, or -1 without runs).
    """
    blocks = []
    at = start
    run = 0
    while at < stop:
        hi = min(stop, at + chunk_rows)
        offset = -1
        if runs is not None:
            while runs[run][0] + runs[run][1] <= at:
                run += 1
            first, n, byte = runs[run]
            hi = min(hi, first + n)
            offset = byte + (at - first) * 8
        blocks.append((at, hi - at, offset))
        at = hi
    return blocks


def _read_steps(
    data: h5py.Dataset, ranges: list[tuple[int, int]], chunk_rows: int
) -> Iterator[_Step]:
    """Steps read with h5py into two reused buffers; the next is read while one is decoded."""
    size = min(chunk_rows, max(b - a for a, b in ranges))
    blocks = [_blocks(a, b, None, size) for a, b in ranges]
    n_steps = max(len(b) for b in blocks)
    as_read = np.dtype(f"={'u' if data.dtype.kind == 'u' else 'i'}4")
    buffers = [np.empty(len(ranges) * size * 2, dtype=np.uint32) for _ in range(min(n_steps, 2))]

    def read(step: int) -> _Step:
        buffer = buffers[step % len(buffers)]
        lanes = np.zeros((len(ranges), 2), dtype=np.int64)
        rows = np.zeros(len(ranges), dtype=np.int64)
        for lane, lane_blocks in enumerate(blocks):
            if step < len(lane_blocks):
                first, n, _ = lane_blocks[step]
                at = lane * size * 2
                view = buffer[at : at + 2 * n].view(as_read).reshape(n, 2)
                data.read_direct(view, np.s_[first : first + n, 0:2])
                lanes[lane] = at, n
                rows[lane] = first
        words = buffer.view()
        words.flags.writeable = False
        return words, lanes, rows

    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, 0)
        for step in range(n_steps):
            result = pending.result()
            if step + 1 < n_steps:
                pending = reader.submit(read, step + 1)
            yield result


def _raw_runs(fh: h5py.File, data: h5py.Dataset) -> list[tuple[int, int, int]] | None:
    """Where the rows of `data` lie in the file, as runs (first row, rows, byte offset).

    Only for rows stored raw: little-endian 32-bit, (N, 2), no filters, sec2 driver, no
    userblock. None otherwise (then h5py reads them).
    """
    if sys.byteorder != "little" or data.dtype.str not in ("<u4", "<i4") or data.shape[1] != 2:
        return None
    try:
        if fh.driver != "sec2" or fh.userblock_size:
            return None
        plist = data.id.get_create_plist()
        if plist.get_nfilters() or plist.get_external_count():
            return None
        layout = plist.get_layout()
        if layout == h5py.h5d.CONTIGUOUS:
            offset = data.id.get_offset()
            runs = [] if offset is None else [(0, int(data.shape[0]), int(offset))]
        elif layout == h5py.h5d.CHUNKED:
            runs = _chunk_runs(data)
        else:
            return None
    except (AttributeError, RuntimeError, ValueError, OSError):  # an h5py without these calls
        return None
    if not runs or len({offset % 4 for _, _, offset in runs}) > 1:
        return None  # rows are read as 32-bit words from one base: all runs share its alignment
    return runs


def _chunk_runs(data: h5py.Dataset) -> list[tuple[int, int, int]]:
    """Runs of chunks stored one after the other (empty when a chunk is missing or filtered)."""
    n = int(data.shape[0])
    rows_per_chunk, width = data.chunks
    n_chunks = -(-n // rows_per_chunk)
    if width != 2 or n_chunks > _MAX_MAPPED_CHUNKS:
        return []
    found: list[tuple[int, int, int, int]] = []
    data.id.chunk_iter(
        lambda c: found.append((c.chunk_offset[0], c.byte_offset, c.size, c.filter_mask))
    )
    if len(found) != n_chunks:
        return []  # unwritten chunks read as the fill value: leave them to h5py
    runs: list[list[int]] = []
    for row, offset, size, mask in sorted(found):
        if mask or size != rows_per_chunk * 8:
            return []
        if runs and runs[-1][0] + runs[-1][1] == row and runs[-1][2] + 8 * runs[-1][1] == offset:
            runs[-1][1] += rows_per_chunk
        else:
            runs.append([row, rows_per_chunk, offset])
    runs[-1][1] = n - runs[-1][0]
    return [(a, b, c) for a, b, c in runs]


def _mapped_steps(
    path: Path, runs: list[tuple[int, int, int]], ranges: list[tuple[int, int]], chunk_rows: int
) -> Iterator[_Step] | None:
    """Steps straight from the memory-mapped file (None when it cannot be mapped)."""
    try:
        with open(path, "rb") as raw:
            mapped = mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, OverflowError):
        return None
    if max(offset + 8 * n for _, n, offset in runs) > len(mapped):  # a truncated file
        mapped.close()
        return None
    return _mapped_stream(mapped, [_blocks(a, b, runs, chunk_rows) for a, b in ranges])


def _mapped_stream(mapped: mmap.mmap, blocks: list[list[tuple[int, int, int]]]) -> Iterator[_Step]:
    """Each lane's blocks in turn; the next blocks are read ahead, the decoded ones dropped."""
    skew = next(b[0][2] % 4 for b in blocks if b)  # HDF5 does not align datasets
    words = np.frombuffer(mapped, dtype="<u4", count=(len(mapped) - skew) // 4, offset=skew)
    n_steps = max(len(b) for b in blocks)

    def step_blocks(step: int) -> list[tuple[int, int, int] | None]:
        return [b[step] if step < len(b) else None for b in blocks]

    try:
        _advise(mapped, "MADV_WILLNEED", step_blocks(0))
        for step in range(n_steps):
            current = step_blocks(step)
            _advise(mapped, "MADV_WILLNEED", step_blocks(step + 1))
            lanes = np.zeros((len(blocks), 2), dtype=np.int64)
            rows = np.zeros(len(blocks), dtype=np.int64)
            for lane, block in enumerate(current):
                if block is not None:
                    rows[lane], lanes[lane, 1], lanes[lane, 0] = block[0], block[1], block[2] // 4
            yield words, lanes, rows
            _advise(mapped, "MADV_DONTNEED", current)
    finally:
        del words
        with contextlib.suppress(BufferError):  # a view is still held: unmapped when freed
            mapped.close()


def _advise(mapped: mmap.mmap, option: str, blocks: list[tuple[int, int, int] | None]) -> None:
    """Advise the kernel about the pages of `blocks` (no-op where madvise or `option` is absent)."""
    advice = getattr(mmap, option, None)
    if advice is None or not hasattr(mapped, "madvise"):
        return
    for block in blocks:
        if block is None:
            continue
        start = block[2] - block[2] % mmap.PAGESIZE
        try:
            mapped.madvise(advice, start, block[2] + 8 * block[1] - start)
        except OSError:
            return


def _labels_from_table(edges: pa.Table) -> tuple[str, ...] | None:
    """The 32 line labels: from the schema metadata, else from the rows' (line, label) pairs."""
    raw = (edges.schema.metadata or {}).get(b"line_labels")
    if raw is not None:
        return tuple(json.loads(raw))
    if "label" not in edges.column_names:
        return None
    pairs = edges.select(["line", "label"]).group_by(["line", "label"]).aggregate([])
    labels = [""] * N_LINES
    for line, label in zip(
        pairs.column("line").to_pylist(), pairs.column("label").to_pylist(), strict=True
    ):
        if 0 <= line < N_LINES and label:
            labels[line] = label
    return tuple(labels)


def _resolve_line(
    labels: tuple[str, ...] | None, label_or_line: str | int, path: str | Path | None
) -> int:
    if isinstance(label_or_line, int | np.integer) and not isinstance(label_or_line, bool):
        line = int(label_or_line)
        if not 0 <= line < N_LINES:
            msg = f"line must be 0-{N_LINES - 1}, got {line}"
            raise DecodeError(msg, file=path, field="line_labels")
        return line
    if labels is None:
        msg = "the edges table carries no line_labels metadata; pass a line number"
        raise DecodeError(msg, file=path, field="line_labels")
    hits = [i for i, x in enumerate(labels) if x and x == label_or_line]
    if len(hits) != 1:
        known = sorted({x for x in labels if x})
        what = "no line" if not hits else f"lines {hits}"
        msg = f"{what} labelled {label_or_line!r}; labels: {known}"
        raise DecodeError(msg, file=path, field="line_labels")
    return hits[0]
