"""Ragged spike index -> sorted flat columns: chunked, vectorised, re-iterable.

On disk a units table keeps all spikes of all units concatenated (`spike_times`) plus one END
offset per unit (`spike_times_index`): unit *i* owns `times[ends[i-1]:ends[i]]` (`ends[-1] = 0`).
Flattening turns that into `(unit_id, time, amplitude)` rows sorted by `(unit_id, time)`.

Memory stays bounded: units are taken in id order and packed into chunks of about
`chunk_spikes` spikes; a chunk always holds whole units (a single unit larger than the chunk
size is one chunk of its own). When ids increase in file order (the common case) each chunk is
one contiguous slice, so the file is read sequentially. When they do not, a chunk's units are
read as one contiguous slice per run of units that are adjacent in the file (reversed or
interleaved ids cost more, smaller reads) and gathered into id order with one vectorised take.
Inside a unit, times that are not non-decreasing are sorted (checked cheaply first).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from ingest._hdf5 import open_h5
from schemas import DecodeError, StreamSource

#: Default spikes per chunk (about 200 MB of unit ids, times and amplitudes as float64).
DEFAULT_CHUNK_SPIKES = 8_000_000

#: Schema of the flattened batches.
SPIKES_SCHEMA = pa.schema(
    [
        pa.field("unit_id", pa.int64(), nullable=False),
        pa.field("time", pa.float64(), nullable=False),
        pa.field("amplitude", pa.float64()),
    ]
)


class Sliceable(Protocol):
    """A 1-d array-like read by slices: a numpy array or an h5py dataset."""

    def __getitem__(self, key: slice) -> np.ndarray: ...

    def __len__(self) -> int: ...


def index_ends(
    index: np.ndarray,
    n_values: int,
    n_rows: int | None = None,
    *,
    file: str | Path | None = None,
    field: str = "index",
) -> np.ndarray:
    """Validated END offsets of a ragged column, as int64.

    Parameters
    ----------
    index
        The `*_index` values as stored (often uint8/16/32).
    n_values
        Length of the data the index points into; the last offset must equal it.
    n_rows
        Expected number of index entries (rows of the table), or None not to check.
    file, field
        Named in the DecodeError raised when the index is inconsistent.
    """
    stored = np.asarray(index)
    whole = stored.dtype.kind in "iub" or (
        stored.dtype.kind == "f" and bool(np.all(np.isfinite(stored) & (stored % 1 == 0)))
    )
    if not whole:
        msg = f"holds {stored.dtype} values; whole-number offsets are expected"
        raise DecodeError(msg, file=file, field=field)
    ends = stored.astype(np.int64).ravel()
    if n_rows is not None and len(ends) != n_rows:
        msg = f"{len(ends)} index entries for {n_rows} rows"
        raise DecodeError(msg, file=file, field=field)
    if len(ends) and (ends[0] < 0 or bool(np.any(np.diff(ends) < 0))):
        msg = "offsets decrease (an END-offset index must be non-decreasing)"
        raise DecodeError(msg, file=file, field=field)
    last = int(ends[-1]) if len(ends) else 0
    if last != n_values:
        msg = f"last offset {last} does not match the {n_values} values it indexes"
        raise DecodeError(msg, file=file, field=field)
    return ends


def plan_chunks(ids: np.ndarray, counts: np.ndarray, chunk_spikes: int) -> list[np.ndarray]:
    """Split units into chunks of whole units, in unit-id order.

    Returns one array per chunk: positions of its units in file order, listed in id order.
    A chunk starts where the running spike count (in id order) crosses a multiple of
    `chunk_spikes`, so it holds at most `chunk_spikes` plus one unit's spikes.
    """
    if chunk_spikes < 1:
        msg = f"chunk_spikes must be positive, got {chunk_spikes}"
        raise ValueError(msg)
    order = np.argsort(ids, kind="stable")
    ordered_counts = counts[order]
    first_spike = np.cumsum(ordered_counts) - ordered_counts
    chunk_of_unit = first_spike // chunk_spikes
    cuts = np.flatnonzero(np.diff(chunk_of_unit)) + 1
    return np.split(order, cuts)


def flatten_spikes(
    ids: np.ndarray,
    ends: np.ndarray,
    times: Sliceable,
    amplitudes: Sliceable | None = None,
    *,
    chunk_spikes: int = DEFAULT_CHUNK_SPIKES,
    file: str | Path | None = None,
    field: str = "spike_times",
) -> Iterator[pa.RecordBatch]:
    """Flatten a ragged spike column into record batches sorted by (unit_id, time).

    Parameters
    ----------
    ids
        Unit ids, in the table's row order.
    ends
        END offsets per unit (see `index_ends`), same order as `ids`.
    times, amplitudes
        The concatenated values (numpy arrays or h5py datasets, read one chunk at a time).
    chunk_spikes
        About how many spikes one batch holds.
    file, field
        Named in the DecodeError raised for NaN spike times (they cannot be ordered).

    Examples
    --------
    >>> ids, ends = np.array([7, 3]), np.array([2, 3])
    >>> batch = next(flatten_spikes(ids, ends, np.array([0.5, 0.1, 0.2])))
    >>> batch.column("unit_id").to_pylist(), batch.column("time").to_pylist()
    ([3, 7, 7], [0.2, 0.1, 0.5])
    """
    ids = np.asarray(ids, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    starts = ends - np.diff(ends, prepend=0)
    counts = ends - starts
    for units in plan_chunks(ids, counts, chunk_spikes):
        if not len(units):  # a units table without rows
            continue
        columns = [_read_units(units, starts, counts, times)]
        if amplitudes is not None:
            columns.append(_read_units(units, starts, counts, amplitudes))
        unit_id = np.repeat(ids[units], counts[units])
        if not len(unit_id):
            continue
        n_nan = int(np.isnan(columns[0]).sum()) if columns[0].dtype.kind == "f" else 0
        if n_nan:
            msg = f"{n_nan} spike time{' is' if n_nan == 1 else 's are'} NaN: fix the source"
            raise DecodeError(msg, file=file, field=field)
        yield _batch(unit_id, *columns)


def _read_units(
    units: np.ndarray, starts: np.ndarray, counts: np.ndarray, values: Sliceable
) -> np.ndarray:
    """The values of `units` (file positions, in output order) concatenated in that order."""
    in_file_order = np.sort(units)
    first = starts[in_file_order]
    last = first + counts[in_file_order]
    # Runs of units whose spikes are adjacent in the file: one read each.
    breaks = np.flatnonzero(first[1:] != last[:-1]) + 1
    run_start = first[np.r_[0, breaks]]
    run_stop = last[np.r_[breaks - 1, len(last) - 1]]
    pieces = [values[int(a) : int(b)] for a, b in zip(run_start, run_stop, strict=True)]
    buffer = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    if len(units) < 2 or bool(np.all(np.diff(units) > 0)):
        return buffer
    # Units out of file order: gather each unit's slice of the buffer into output order.
    rank = np.empty(len(units), dtype=np.int64)
    rank[np.argsort(units, kind="stable")] = np.arange(len(units))
    buffer_start = (np.cumsum(counts[in_file_order]) - counts[in_file_order])[rank]
    n = counts[units]
    out_start = np.cumsum(n) - n
    take = np.repeat(buffer_start - out_start, n) + np.arange(int(n.sum()))
    return buffer[take]


def _batch(unit_id: np.ndarray, times: np.ndarray, amplitudes: np.ndarray | None = None):
    """One record batch, with times sorted inside each unit when they are not already."""
    times = np.asarray(times, dtype=np.float64).ravel()
    if amplitudes is not None:
        amplitudes = np.asarray(amplitudes, dtype=np.float64).ravel()
    same_unit = unit_id[1:] == unit_id[:-1]
    if bool(np.any((times[1:] < times[:-1]) & same_unit)):
        order = np.lexsort((times, unit_id))
        times = times[order]
        if amplitudes is not None:
            amplitudes = amplitudes[order]
    none = amplitudes is None
    amplitude = pa.nulls(len(times), pa.float64()) if none else pa.array(amplitudes)
    return pa.RecordBatch.from_arrays(
        [pa.array(unit_id), pa.array(times), amplitude], schema=SPIKES_SCHEMA
    )


def h5_spike_source(
    path: Path,
    ids: np.ndarray,
    ends: np.ndarray,
    *,
    times: str = "units/spike_times",
    amplitudes: str | None = None,
    chunk_spikes: int = DEFAULT_CHUNK_SPIKES,
) -> StreamSource:
    """A re-iterable spikes stream over HDF5 datasets; each read reopens the file.

    The index must already be validated (`index_ends`). A read error while streaming (a
    truncated or damaged file) is raised as a DecodeError naming the file and the dataset.
    """
    n_spikes = int(ends[-1]) if len(ends) else 0

    def open_stream() -> Iterator[pa.RecordBatch]:
        return _h5_batches(path, ids, ends, times, amplitudes, chunk_spikes)

    return StreamSource(schema=SPIKES_SCHEMA, num_rows=n_spikes, open=open_stream)


def _h5_batches(
    path: Path,
    ids: np.ndarray,
    ends: np.ndarray,
    times: str,
    amplitudes: str | None,
    chunk_spikes: int,
) -> Iterator[pa.RecordBatch]:
    with open_h5(path) as fh:
        try:
            times_ds = fh[times]
            amplitudes_ds = fh[amplitudes] if amplitudes else None
            expected = int(ends[-1]) if len(ends) else 0
            if len(times_ds) != expected:
                msg = f"{len(times_ds)} values, but the index announced {expected}"
                raise DecodeError(msg, file=path, field=times)
            yield from flatten_spikes(
                ids,
                ends,
                times_ds,
                amplitudes_ds,
                chunk_spikes=chunk_spikes,
                file=path,
                field=times,
            )
        except (OSError, KeyError, RuntimeError) as exc:
            msg = f"cannot read spikes (truncated or damaged file?): {exc}"
            raise DecodeError(msg, file=path, field=times) from None
