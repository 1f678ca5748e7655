"""Spike-index flattening against a plain numpy reference, on synthetic ragged arrays."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pytest

from ingest._flatten import (
    SPIKES_SCHEMA,
    flatten_spikes,
    h5_spike_source,
    index_ends,
    plan_chunks,
)
from schemas import DecodeError


def reference(ids, ends, times, amplitudes=None):
    """The flattened answer the slow, obvious way: split by index, sort units and times."""
    cuts = np.asarray(ends)[:-1]
    pieces = np.split(np.asarray(times), cuts)
    amp_pieces = None if amplitudes is None else np.split(np.asarray(amplitudes), cuts)
    rows = []
    for i in np.argsort(ids, kind="stable"):
        order = np.argsort(pieces[i], kind="stable")
        for j in order:
            amp = amp_pieces[i][j] if amp_pieces is not None else None
            rows.append((int(ids[i]), float(pieces[i][j]), amp))
    return rows


def collect(batches) -> list[tuple]:
    table = pa.Table.from_batches(list(batches), schema=SPIKES_SCHEMA)
    return list(
        zip(
            table.column("unit_id").to_pylist(),
            table.column("time").to_pylist(),
            table.column("amplitude").to_pylist(),
            strict=True,
        )
    )


def ragged(counts, seed=0):
    rng = np.random.default_rng(seed)
    ends = np.cumsum(counts)
    times = np.concatenate([np.sort(rng.uniform(0, 100, c)) for c in counts]) if len(counts) else []
    return ends, np.asarray(times, dtype=np.float64)


def test_docstring_example_small_answer():
    ids, ends = np.array([7, 3]), np.array([2, 3])
    rows = collect(flatten_spikes(ids, ends, np.array([0.5, 0.1, 0.2])))
    assert rows == [(3, 0.2, None), (7, 0.1, None), (7, 0.5, None)]


def test_zero_spike_units_are_skipped_in_rows():
    counts = np.array([0, 3, 0, 0, 2, 0])
    ids = np.arange(10, 16)
    ends, times = ragged(counts)
    rows = collect(flatten_spikes(ids, ends, times))
    assert rows == reference(ids, ends, times)
    assert {r[0] for r in rows} == {11, 14}


def test_all_units_empty_gives_no_batches():
    ids = np.array([1, 2, 3])
    assert list(flatten_spikes(ids, np.zeros(3, dtype=np.int64), np.array([]))) == []


def test_no_units_gives_no_batches():
    empty = np.empty(0, dtype=np.int64)
    assert list(flatten_spikes(empty, empty, np.empty(0))) == []


def test_unsorted_ids_come_out_in_id_order_with_tiny_chunks():
    counts = np.array([4, 1, 0, 5, 3, 2, 6])
    ids = np.array([50, 3, 99, 7, 1, 42, 8])
    ends, times = ragged(counts, seed=1)
    amplitudes = times * 10
    batches = list(flatten_spikes(ids, ends, times, amplitudes, chunk_spikes=3))
    assert collect(batches) == reference(ids, ends, times, amplitudes)
    # Bounded: each batch holds at most chunk_spikes plus one unit's spikes.
    assert all(b.num_rows <= 3 + counts.max() for b in batches)
    assert len(batches) > 3


def test_reversed_ids_read_as_one_run_per_chunk():
    counts = np.array([2, 3, 1, 4])
    ids = np.array([4, 3, 2, 1])
    ends, times = ragged(counts, seed=2)
    reads = []

    class Recorder:
        def __getitem__(self, key):
            reads.append((key.start, key.stop))
            return times[key]

        def __len__(self):
            return len(times)

    rows = collect(flatten_spikes(ids, ends, Recorder()))
    assert rows == reference(ids, ends, times)
    assert reads == [(0, 10)]


def test_unsorted_times_within_a_unit_are_sorted_with_their_amplitudes():
    ids = np.array([2, 1])
    ends = np.array([3, 5])
    times = np.array([3.0, 1.0, 2.0, 9.0, 8.0])
    amplitudes = np.array([30.0, 10.0, 20.0, 90.0, 80.0])
    rows = collect(flatten_spikes(ids, ends, times, amplitudes))
    assert rows == [(1, 8.0, 80.0), (1, 9.0, 90.0), (2, 1.0, 10.0), (2, 2.0, 20.0), (2, 3.0, 30.0)]


def test_equal_times_within_a_unit_are_kept():
    rows = collect(flatten_spikes(np.array([1]), np.array([3]), np.array([1.0, 1.0, 2.0])))
    assert rows == [(1, 1.0, None), (1, 1.0, None), (1, 2.0, None)]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int32, np.int64])
def test_small_unsigned_index_dtypes(dtype):
    counts = np.array([100, 0, 155])
    ends, times = ragged(counts, seed=3)
    index = ends.astype(dtype)
    checked = index_ends(index, len(times), 3)
    assert checked.dtype == np.int64
    assert collect(flatten_spikes(np.array([5, 6, 7]), checked, times)) == reference(
        np.array([5, 6, 7]), ends, times
    )


def test_uint8_differences_do_not_wrap():
    # np.diff on uint8 would wrap around; ends must be cast to int64 first.
    index = np.array([200, 250, 255], dtype=np.uint8)
    ends = index_ends(index, 255, 3)
    assert np.diff(ends, prepend=0).tolist() == [200, 50, 5]


@pytest.mark.parametrize("chunk", [1, 2, 5, 7, 8, 1000])
def test_chunk_boundaries_fall_on_unit_boundaries(chunk):
    counts = np.array([3, 4, 1, 0, 7, 2, 2])
    ids = np.arange(len(counts))
    ends, times = ragged(counts, seed=4)
    batches = list(flatten_spikes(ids, ends, times, chunk_spikes=chunk))
    assert collect(batches) == reference(ids, ends, times)
    last_units = [b.column("unit_id")[-1].as_py() for b in batches[:-1]]
    first_units = [b.column("unit_id")[0].as_py() for b in batches[1:]]
    assert all(a < b for a, b in zip(last_units, first_units, strict=True))


def test_random_layouts_match_reference():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(1, 30))
        counts = rng.integers(0, 20, n)
        ids = rng.permutation(np.arange(1000))[:n]
        ends = np.cumsum(counts)
        times = rng.uniform(0, 10, int(ends[-1]))  # unsorted within units too
        amplitudes = rng.normal(size=len(times))
        chunk = int(rng.integers(1, 40))
        got = collect(flatten_spikes(ids, ends, times, amplitudes, chunk_spikes=chunk))
        assert got == reference(ids, ends, times, amplitudes)


def test_plan_chunks_covers_every_unit_once_in_id_order():
    ids = np.array([9, 2, 5, 1, 7])
    counts = np.array([5, 5, 5, 5, 5])
    chunks = plan_chunks(ids, counts, 10)
    flat = np.concatenate(chunks)
    assert ids[flat].tolist() == sorted(ids.tolist())
    assert all(counts[c].sum() <= 10 + counts.max() for c in chunks)
    with pytest.raises(ValueError, match="chunk_spikes"):
        plan_chunks(ids, counts, 0)


@pytest.mark.parametrize(
    ("index", "n_values", "n_rows", "match"),
    [
        ([2, 5], 6, 2, "last offset 5"),
        ([3, 2, 5], 5, 3, "offsets decrease"),
        ([-1, 5], 5, 2, "offsets decrease"),
        ([2, 5], 5, 3, "2 index entries for 3 rows"),
        ([], 4, 0, "last offset 0"),
    ],
)
def test_index_ends_rejects_inconsistent_indexes(index, n_values, n_rows, match):
    with pytest.raises(DecodeError, match=match) as info:
        index_ends(np.array(index), n_values, n_rows, file="f.nwb", field="units/x_index")
    assert info.value.file == "f.nwb"
    assert info.value.field == "units/x_index"


def write_h5(path: Path, ids, ends, times, amplitudes=None) -> None:
    with h5py.File(path, "w") as fh:
        fh["units/id"] = ids
        fh["units/spike_times"] = times
        fh["units/spike_times_index"] = ends
        if amplitudes is not None:
            fh["units/spike_amplitudes"] = amplitudes


def test_h5_source_is_reiterable_and_closes_the_file(tmp_path):
    counts = np.array([3, 0, 4, 2])
    ids = np.array([4, 1, 3, 2])
    ends, times = ragged(counts, seed=6)
    path = tmp_path / "spikes.h5"
    write_h5(path, ids, ends, times, times + 1)
    source = h5_spike_source(path, ids, ends, amplitudes="units/spike_amplitudes", chunk_spikes=2)
    assert source.num_rows == 9
    first = collect(source.batches())
    second = collect(source.batches())
    assert first == second == reference(ids, ends, times, times + 1)
    # Not held open between reads: the file can be opened for writing now.
    with h5py.File(path, "a"):
        pass


def test_h5_source_raises_decode_error_when_the_data_changed(tmp_path):
    ids, ends = np.array([1]), np.array([3])
    path = tmp_path / "spikes.h5"
    write_h5(path, ids, ends, np.array([1.0, 2.0]))
    source = h5_spike_source(path, ids, ends)
    with pytest.raises(DecodeError, match="index announced 3") as info:
        list(source.batches())
    assert info.value.field == "units/spike_times"
    assert info.value.file == str(path)


def test_nan_spike_times_are_a_decode_error():
    with pytest.raises(DecodeError, match="1 spike time is NaN: fix the source") as info:
        list(flatten_spikes(np.array([1]), np.array([2]), np.array([1.0, np.nan]), file="x.nwb"))
    assert (info.value.file, info.value.field) == ("x.nwb", "spike_times")


@pytest.mark.parametrize("index", [np.array([b"1", b"2"]), np.array([1.5, 2.0])])
def test_an_index_of_text_or_fractions_is_a_decode_error(index):
    with pytest.raises(DecodeError, match="whole-number offsets are expected") as info:
        index_ends(index, 2, file="x.nwb", field="units/spike_times_index")
    assert (info.value.file, info.value.field) == ("x.nwb", "units/spike_times_index")
