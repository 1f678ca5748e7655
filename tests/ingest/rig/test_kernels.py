"""The numba edge kernels against the plain numpy reference, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.rig import _kernels
from ingest.rig.sync import _BLOCK_ROWS, decode_edges
from tests.ingest.rig.fakes import random_sync_rows, reference_edges, sync_meta, write_sync

N_ROWS = 2 * _BLOCK_ROWS + 12_345  # several parallel blocks per chunk


def _assert_equal_to_reference(edges, rows, counter_bits):
    expected = reference_edges(rows, counter_bits=counter_bits)
    assert edges.num_rows == len(expected["line"])
    for name, values in expected.items():
        np.testing.assert_array_equal(edges.column(name).to_numpy(), values, err_msg=name)


@pytest.mark.parametrize("counter_bits", [32, 24, 16])
@pytest.mark.parametrize("chunk_rows", [N_ROWS, 50_000, 4_099])
def test_decode_edges_matches_reference(tmp_path, counter_bits, chunk_rows):
    rng = np.random.default_rng(counter_bits * 7 + chunk_rows)
    # steps up to 400 samples: a 16-bit counter rolls over every ~330 rows, a 24-bit one a few
    # times in the file, a 32-bit one never (it starts near the top and wraps once).
    start = (1 << counter_bits) - 1000
    rows = random_sync_rows(rng, N_ROWS, counter_bits=counter_bits, start=start, max_step=400)
    path = write_sync(tmp_path / "r.sync", rows, meta=sync_meta(counter_bits=counter_bits))
    edges = decode_edges(path, chunk_rows=chunk_rows)
    _assert_equal_to_reference(edges, rows, counter_bits)
    samples = edges.column("sample").to_numpy()
    assert samples.max() > (1 << counter_bits)  # the rollover was unwrapped


def test_rollover_exactly_at_chunk_and_block_boundaries(tmp_path):
    n = 3 * _BLOCK_ROWS
    # the counter restarts at 0 on the first row of blocks 1 and 2 (a rollover exactly there)
    # and wraps 16 bits inside blocks too
    counter = np.arange(n, dtype=np.int64) * 3
    counter[_BLOCK_ROWS:] -= counter[_BLOCK_ROWS]
    counter[2 * _BLOCK_ROWS :] -= counter[2 * _BLOCK_ROWS]
    counter %= 1 << 16
    words = np.arange(n, dtype=np.uint32) & 0xFF
    rows = np.column_stack([counter, words]).astype(np.uint32)
    path = write_sync(tmp_path / "r.sync", rows, meta=sync_meta(counter_bits=16))
    for chunk_rows in (_BLOCK_ROWS, 2 * _BLOCK_ROWS, n):
        _assert_equal_to_reference(decode_edges(path, chunk_rows=chunk_rows), rows, 16)


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


def test_count_blocks_against_numpy():
    rng = np.random.default_rng(3)
    rows = random_sync_rows(rng, 10_000)
    counts = _kernels.count_blocks(rows, int(rows[0, 1]), 1_000)
    words = rows[:, 1].astype(np.int64)
    changed = words ^ np.r_[words[0], words[:-1]]
    for b in range(10):
        block = changed[b * 1000 : (b + 1) * 1000]
        expected = [int(((block >> line) & 1).sum()) for line in range(32)]
        assert counts[b].tolist() == expected


def test_scatter_reports_counters_beyond_the_modulus():
    rows = np.array([[1, 0], [2, 1], [9, 0]], dtype=np.uint32)
    counts = _kernels.count_blocks(rows, 0, 2)
    packed = np.empty(int(counts.sum()), dtype=np.int64)
    _, bad = _kernels.scatter_blocks(rows, 0, 1, 2, 8, counts, packed)
    assert bad == 2
