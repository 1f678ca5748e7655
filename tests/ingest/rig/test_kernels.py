"""The one-pass sync decoder against the plain numpy reference, bit for bit.

Every way the rows can reach the kernel is covered: memory-mapped from a contiguous or a
chunked dataset, read with h5py from a compressed one; one or several lanes (threads); chunks
of any size (rollovers on chunk and lane boundaries); output buffers that fill and grow.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ingest.rig import _kernels, sync
from ingest.rig.sync import decode_edges, decode_sync
from tests.ingest.rig.fakes import random_sync_rows, reference_edges, sync_meta, write_sync

N_ROWS = 150_001
STORAGE = {
    "chunked": {"chunks": 4_096},  # many chunks, in one or more runs of the file
    "contiguous": {"chunks": False},  # at an odd (unaligned) byte offset
    "compressed": {"compression": "gzip"},  # read with h5py, not mapped
}


def _assert_equal_to_reference(edges, rows, counter_bits):
    expected = reference_edges(rows, counter_bits=counter_bits)
    table = edges.to_table() if isinstance(edges, sync.SyncEdges) else edges
    assert table.num_rows == len(expected["line"])
    for name, values in expected.items():
        np.testing.assert_array_equal(table.column(name).to_numpy(), values, err_msg=name)


def _rolling_rows(counter_bits, n=N_ROWS, seed=0):
    # steps up to 400 samples: a 16-bit counter rolls over every ~330 rows, a 24-bit one a few
    # times in the file, a 32-bit one once (it starts near the top)
    rng = np.random.default_rng(counter_bits * 7 + seed)
    start = (1 << counter_bits) - 1000
    return random_sync_rows(rng, n, counter_bits=counter_bits, start=start, max_step=400)


def _raw_runs(path):
    with h5py.File(path) as fh:
        return sync._raw_runs(fh, fh["data"])


@pytest.mark.parametrize("storage", sorted(STORAGE))
@pytest.mark.parametrize("counter_bits", [32, 24, 16])
def test_decode_matches_the_reference(tmp_path, storage, counter_bits):
    rows = _rolling_rows(counter_bits)
    meta = sync_meta(counter_bits=counter_bits)
    path = write_sync(tmp_path / "r.sync", rows, meta=meta, **STORAGE[storage])
    assert (_raw_runs(path) is None) == (storage == "compressed")
    for lanes, chunk_rows in [(1, N_ROWS), (2, 50_000), (3, 4_099)]:
        edges = decode_sync(path, chunk_rows=chunk_rows, lanes=lanes)
        _assert_equal_to_reference(edges, rows, counter_bits)
        assert edges.samples(0).max() > (1 << counter_bits)  # the rollover was unwrapped


def test_small_chunks_equal_one_chunk_with_rollovers_on_the_boundaries(tmp_path):
    n = 4_000
    counter = np.arange(n, dtype=np.int64) * 37
    # the counter restarts at 0 on the first row of chunks (rollovers exactly at chunk starts,
    # and at lane starts for 2 lanes) and wraps 16 bits inside chunks too
    for boundary in (1_000, 2_000, 2_001, 3_000):
        counter[boundary:] -= counter[boundary]
    counter %= 1 << 16
    words = np.arange(n, dtype=np.uint32) * 2654435761 >> 7  # several bits per row
    rows = np.column_stack([counter, words]).astype(np.uint32)
    path = write_sync(tmp_path / "r.sync", rows, meta=sync_meta(counter_bits=16))
    whole = decode_sync(path, chunk_rows=n, lanes=1).to_table()
    _assert_equal_to_reference(whole, rows, 16)
    for lanes in (1, 2):
        for chunk_rows in (999, 100, 7):
            chunked = decode_sync(path, chunk_rows=chunk_rows, lanes=lanes).to_table()
            assert chunked.equals(whole), (lanes, chunk_rows)


def test_buffers_that_fill_and_grow_many_times(tmp_path, monkeypatch):
    monkeypatch.setattr(sync, "_MIN_SLAB", 3)
    monkeypatch.setattr(sync, "_MIN_ARENA", 5)
    rows = _rolling_rows(16, n=20_000)
    path = write_sync(tmp_path / "r.sync", rows, meta=sync_meta(counter_bits=16))
    edges = decode_sync(path, chunk_rows=777, lanes=2)
    assert max(len(p) for p in edges.pieces) > 10  # lines got many slabs
    _assert_equal_to_reference(edges, rows, 16)


@pytest.mark.parametrize("max_rows", [1, 5, 1_000, 1 << 20])
def test_batches_cross_pieces_and_lines(tmp_path, monkeypatch, max_rows):
    monkeypatch.setattr(sync, "_MIN_SLAB", 7)
    rows = _rolling_rows(32, n=3_000)
    path = write_sync(tmp_path / "r.sync", rows)
    edges = decode_sync(path, lanes=2, chunk_rows=500)
    batches = list(edges.batches(max_rows))
    assert all(0 < b.num_rows <= max_rows for b in batches)
    assert sum(b.num_rows for b in batches) == edges.num_rows
    assert all(b.schema == edges.schema for b in batches)
    expected = reference_edges(rows)
    got = {
        c: np.concatenate([b.column(c).to_numpy(zero_copy_only=False) for b in batches])
        for c in expected
    }
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)


def test_rows_without_changes_and_all_bits_at_once(tmp_path):
    rows = np.array(
        [[0, 0], [1, 0], [2, 0xFFFFFFFF], [3, 0xFFFFFFFF], [4, 0], [5, 0x80000001]],
        dtype=np.uint32,
    )
    path = write_sync(tmp_path / "r.sync", rows)
    edges = decode_edges(path, chunk_rows=2)
    _assert_equal_to_reference(edges, rows, 32)
    assert edges.num_rows == 32 + 32 + 2


def test_first_row_is_the_baseline(tmp_path):
    rows = np.array([[5, 0b101], [6, 0b100]], dtype=np.uint32)
    edges = decode_edges(write_sync(tmp_path / "r.sync", rows))
    assert edges.to_pydict() | {"label": None} == {
        "line": [0],
        "label": None,
        "sample": [6],
        "time": [6e-5],
        "rising": [False],
    }


def test_a_line_that_starts_high_falls_first(tmp_path):
    rows = np.array([[0, 0b10], [1, 0b11], [2, 0b01], [3, 0b11]], dtype=np.uint32)
    edges = decode_sync(write_sync(tmp_path / "r.sync", rows))
    assert edges.baseline == 0b10
    assert edges.times(1, rising=False).tolist() == [2e-5]
    assert edges.times(1, rising=True).tolist() == [3e-5]
    assert edges.times(0, rising=True).tolist() == [1e-5]
    assert edges.to_table().column("rising").to_pylist() == [True, False, True]


def _kernel_buffers(capacity):
    arrays = [np.full(capacity, -1, dtype=np.int64) for _ in range(32)]
    cursor = np.array([[a.ctypes.data for a in arrays]], dtype=np.int64)
    limit = cursor + capacity * _kernels.EDGE_BYTES
    return arrays, cursor, limit


def test_kernel_stops_when_a_buffer_is_full():
    # line 0 toggles on every row, line 1 on rows 2 and 3; room for 3 edges per line
    rows = np.array([[0, 0], [1, 1], [2, 2], [3, 1], [4, 0]], dtype=np.uint32)
    words = rows.ravel()
    arrays, cursor, limit = _kernel_buffers(3)
    state = np.array([[0, 0, 0]], dtype=np.int64)
    lanes = np.array([[2, 4]], dtype=np.int64)  # rows 1-4 after the baseline row 0
    done, bad = _kernels.decode_lanes(words, lanes, state, cursor, limit, 1 << 32)
    assert done.tolist() == [3] and bad.tolist() == [-1]  # line 0 is full after row 3
    assert arrays[0].tolist() == [1, 2, 3] and arrays[1].tolist() == [2, 3, -1]
    assert state.tolist() == [[1, 3, 0]]  # the word and counter of row 3
    assert ((cursor - limit) // 8).tolist()[0][:2] == [0, -1]


def test_kernel_reports_counters_beyond_the_modulus():
    rows = np.array([[1, 0], [2, 1], [9, 0]], dtype=np.uint32)
    _, cursor, limit = _kernel_buffers(4)
    state = np.array([[0, 1, 0]], dtype=np.int64)
    lanes = np.array([[2, 2]], dtype=np.int64)
    _, bad = _kernels.decode_lanes(rows.ravel(), lanes, state, cursor, limit, 8)
    assert bad.tolist() == [1]  # row 2 of the file, the lane's second row


def test_the_edges_are_kept_as_8_bytes_each(tmp_path):
    rows = _rolling_rows(32, n=200_001)
    path = write_sync(tmp_path / "r.sync", rows, chunks=False)
    edges = decode_sync(path, chunk_rows=10_000, lanes=2)
    pieces = [p for ps in edges.pieces for p in ps]
    assert all(p.dtype == np.int64 and p.flags.c_contiguous for p in pieces)
    assert (
        sum(p.nbytes for p in pieces)
        == 8 * edges.num_rows
        == 8 * len(reference_edges(rows)["line"])
    )
    assert len({id(p.base) for p in pieces}) <= 4  # slabs of a few arenas, not one array each
