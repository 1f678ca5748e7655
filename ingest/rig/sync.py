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
- `time = sample / counter_output_freq` seconds on the sync clock (the session's master clock).

`decode_edges` reads `data` in chunks of rows with the numba kernels in `_kernels.py` (a count
pass and a scatter pass per chunk, both over all 32 lines at once), carrying the previous word
and the rollover state across chunks, then gathers the chunks into (line, sample) order. Memory
beyond the output is one chunk of rows plus the chunks' edges (9 bytes an edge).

Examples
--------
>>> sync = read_sync("session.sync")  # doctest: +SKIP
>>> edges = decode_edges(sync)  # doctest: +SKIP
>>> frames = line_edges(edges, "vsync_stim", rising=False)  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa

from ingest._hdf5 import as_text, open_h5
from ingest.rig import _kernels
from schemas import DecodeError

N_LINES = 32
#: Rows read per chunk by default (32 MB of uint32 pairs).
DEFAULT_CHUNK_ROWS = 1 << 22
#: Rows per parallel block inside a chunk.
_BLOCK_ROWS = 1 << 16
#: Longest `meta` string accepted (real ones are well under 1 kB).
MAX_META_CHARS = 1 << 20

#: Schema of `decode_edges` output; `label` is dictionary-encoded text (one entry per label).
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


def decode_edges(
    source: str | Path | SyncFile, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> pa.Table:
    """Every edge of every line of a sync file, sorted by (line, sample).

    Columns as the `sync_edges` table: `line` (int64), `label` (text, dictionary-encoded),
    `sample` (int64, the unwrapped counter), `time` (float64 s on the sync clock), `rising`
    (bool). The schema metadata carries `line_labels` (JSON list of 32) and
    `counter_output_freq`, used by `line_edges`.

    Parameters
    ----------
    source
        A sync file path or what `read_sync` returned for it.
    chunk_rows
        Rows of `data` decoded per chunk; memory is bounded by it, not by the file.

    Examples
    --------
    >>> edges = decode_edges("session.sync")  # doctest: +SKIP
    >>> edges.column_names  # doctest: +SKIP
    ['line', 'label', 'sample', 'time', 'rising']
    """
    sync = source if isinstance(source, SyncFile) else read_sync(source)
    if chunk_rows < 1:
        msg = f"chunk_rows must be positive, got {chunk_rows}"
        raise ValueError(msg)
    modulus = 1 << (sync.counter_bits or 32)
    with open_h5(sync.path) as fh:
        data = _data_dataset(fh, sync.path)
        chunks, rolled = _decode_chunks(data, sync, modulus, chunk_rows)
    if rolled and sync.counter_bits is None:
        msg = "the counter rolled over but meta has no ni_daq.counter_bits to unwrap it with"
        raise DecodeError(msg, file=sync.path, field="meta.ni_daq.counter_bits")
    return _gather(sync, chunks)


def line_edges(edges: pa.Table, label_or_line: str | int, rising: bool | None = True) -> np.ndarray:
    """Times (s) of one line's edges: rising (True), falling (False) or both (None).

    `label_or_line` is a label (e.g. 'vsync_stim', 'barcode_ephys', 'lick_sensor') or a line
    number. Uses the (line, sample) order of `decode_edges` output to slice without a scan.

    Examples
    --------
    >>> licks = line_edges(edges, "lick_sensor", rising=True)  # doctest: +SKIP
    """
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
    if data.dtype.kind not in "ui":
        msg = f"expected integers, got {data.dtype}"
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


@dataclass
class _Chunk:
    """One chunk's edges as `scatter_blocks` left them, and each block's sample offset."""

    counts: np.ndarray
    offsets: np.ndarray
    packed: np.ndarray


def _decode_chunks(
    data: h5py.Dataset, sync: SyncFile, modulus: int, chunk_rows: int
) -> tuple[list[_Chunk], bool]:
    """Decode `data` chunk by chunk (the next chunk is read while the kernels run on this one).

    Returns the chunks' edges and whether the counter rolled over anywhere.
    """
    n = int(data.shape[0])
    size = min(chunk_rows, max(n, 1))
    buffers = [np.empty((size, 2), dtype=data.dtype) for _ in range(2 if n > size else 1)]
    bounds = [(a, min(n, a + chunk_rows)) for a in range(0, n, chunk_rows)]

    def read(k: int) -> np.ndarray:
        start, stop = bounds[k]
        view = buffers[k % len(buffers)][: stop - start]
        data.read_direct(view, np.s_[start:stop, 0:2], np.s_[0 : stop - start, 0:2])
        return view

    chunks: list[_Chunk] = []
    prev_word = prev_raw = wrapped = 0
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, 0) if bounds else None
        for k, (start, _) in enumerate(bounds):
            view = pending.result()
            pending = reader.submit(read, k + 1) if k + 1 < len(bounds) else None
            if k == 0:  # the first row is the baseline
                prev_word, prev_raw = int(view[0, 1]) & 0xFFFFFFFF, int(view[0, 0])
            counts = _kernels.count_blocks(view, prev_word, _BLOCK_ROWS)
            packed = np.empty(int(counts.sum()), dtype=np.int64)
            wraps, bad = _kernels.scatter_blocks(
                view, prev_word, prev_raw, _BLOCK_ROWS, modulus, counts, packed
            )
            if bad >= 0:
                msg = f"row {start + bad}: counter {int(view[bad, 0])} does not fit counter_bits"
                raise DecodeError(msg, file=sync.path, field="data")
            before = wrapped + np.concatenate([[0], np.cumsum(wraps)[:-1]])
            chunks.append(_Chunk(counts, before * modulus, packed))
            wrapped += int(wraps.sum())
            prev_word, prev_raw = int(view[-1, 1]) & 0xFFFFFFFF, int(view[-1, 0])
    return chunks, wrapped > 0


def _gather(sync: SyncFile, chunks: list[_Chunk]) -> pa.Table:
    per_line = sum((c.counts.sum(axis=0) for c in chunks), np.zeros(N_LINES, dtype=np.int64))
    total = int(per_line.sum())
    cursor = np.concatenate([[0], np.cumsum(per_line)[:-1]]).astype(np.int64)
    unique_labels = list(dict.fromkeys(sync.line_labels))
    codes = np.array([unique_labels.index(x) for x in sync.line_labels], dtype=np.int8)
    samples = np.empty(total, dtype=np.int64)
    times = np.empty(total, dtype=np.float64)
    rising = np.empty(total, dtype=np.bool_)
    lines = np.empty(total, dtype=np.int64)
    label_idx = np.empty(total, dtype=np.int8)
    freq = sync.counter_output_freq
    for c in chunks:
        _kernels.gather_lines(
            c.counts, c.offsets, c.packed, cursor, freq, codes,
            samples, times, rising, lines, label_idx,
        )  # fmt: skip
    label = pa.DictionaryArray.from_arrays(
        pa.array(label_idx, type=pa.int8()), pa.array(unique_labels, type=pa.string())
    )
    metadata = {
        "line_labels": json.dumps(list(sync.line_labels)),
        "counter_output_freq": repr(freq),
        "source": str(sync.path),
    }
    return pa.Table.from_arrays(
        [pa.array(lines), label, pa.array(samples), pa.array(times), pa.array(rising)],
        schema=EDGES_SCHEMA.with_metadata(metadata),
    )


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
