"""Sync files: the real Allen file pinned, edges as the sync_edges table, bad input."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ingest.rig.sync import decode_edges, decode_sync, line_edges, read_sync
from schemas import TABLES, DecodeError
from schemas.bundle import BatchSource
from schemas.conform import conform_batches, conform_table
from tests.ingest.rig.fakes import reference_edges, rows_from_edges, sync_meta, write_sync

REAL_LABELS = {
    0: "2p_vsync",
    2: "stim_vsync",
    4: "stim_photodiode",
    5: "acq_trigger",
    8: "cam1_exposure",
    9: "cam2_exposure",
    31: "lick_sensor",
}


@pytest.fixture(scope="module")
def real_sync(realdata):
    return realdata / "sync" / "allensdk_2p_rig_truncated.sync.h5"


def test_real_sync_meta(real_sync):
    sync = read_sync(real_sync)
    assert sync.n_rows == 100
    assert sync.counter_output_freq == 100_000.0
    assert sync.counter_bits == 32
    assert sync.total_samples == 453_010_000
    assert sync.sample_period == 1e-5
    assert {i: x for i, x in enumerate(sync.line_labels) if x} == REAL_LABELS
    assert len(sync.line_labels) == 32
    assert sync.line("lick_sensor") == 31


def test_real_sync_edges_pinned(real_sync):
    edges = decode_edges(real_sync)
    assert edges.column_names == ["line", "label", "sample", "time", "rising"]
    assert edges.num_rows == 99  # every row after the baseline row flips exactly one line
    lines = edges.column("line").to_numpy()
    assert sorted(set(lines.tolist())) == [8, 9, 31]  # only these toggle in the kept 0.96 s
    counts = {line: int((lines == line).sum()) for line in (8, 9, 31)}
    assert counts == {8: 50, 9: 47, 31: 2}
    assert line_edges(edges, "cam1_exposure", rising=True).size == 25
    assert line_edges(edges, "cam2_exposure", rising=True).size == 24
    assert line_edges(edges, "cam1_exposure", rising=None)[:2].tolist() == [0.1495, 0.1619]
    assert line_edges(edges, 9, rising=None)[:2].tolist() == [0.20086, 0.20754]
    assert line_edges(edges, "lick_sensor", rising=True).tolist() == [0.82373]
    assert line_edges(edges, "lick_sensor", rising=False).tolist() == [0.87587]
    assert line_edges(edges, "cam1_exposure", rising=None)[-1] == 0.96184
    assert line_edges(edges, "stim_vsync", rising=None).size == 0
    labels = edges.column("label").to_pylist()
    assert labels[0] == "cam1_exposure" and labels[-1] == "lick_sensor"


def test_real_sync_matches_numpy_reference(real_sync):
    import h5py

    with h5py.File(real_sync) as fh:
        rows = fh["data"][()]
    expected = reference_edges(rows)
    edges = decode_edges(real_sync, chunk_rows=7)
    for name, values in expected.items():
        np.testing.assert_array_equal(edges.column(name).to_numpy(), values, err_msg=name)


def test_edges_fit_the_sync_edges_table(real_sync):
    edges = decode_edges(real_sync)
    table = conform_table(TABLES["sync_edges"], edges, "s1")
    assert table.schema.field("label").type == pa.string()
    assert table.column("line").to_pylist() == edges.column("line").to_pylist()


def test_line_edges_without_metadata_uses_the_label_column(real_sync):
    edges = decode_edges(real_sync)
    plain = edges.replace_schema_metadata(None)
    assert line_edges(plain, "lick_sensor").tolist() == [0.82373]


def test_unknown_label_names_the_file(real_sync):
    edges = decode_edges(real_sync)
    with pytest.raises(DecodeError, match="no line labelled 'barcode_ephys'") as err:
        line_edges(edges, "barcode_ephys")
    assert err.value.file == str(real_sync)
    assert err.value.field == "line_labels"


def test_edges_on_the_same_sample_and_many_lines(tmp_path):
    rows = rows_from_edges({0: ([1.0, 3.0], [2.0, 4.0]), 5: ([1.0], [2.5]), 31: ([0.5], [1.0])})
    path = write_sync(tmp_path / "s.sync", rows)
    edges = decode_edges(path)
    assert line_edges(edges, 0, rising=True).tolist() == [1.0, 3.0]
    assert line_edges(edges, "beh_cam_exposing", rising=None).tolist() == [1.0, 2.5]
    assert line_edges(edges, "lick_sensor", rising=False).tolist() == [1.0]
    assert edges.num_rows == 8


@pytest.mark.parametrize("n_rows", [0, 1])
def test_no_edges(tmp_path, n_rows):
    path = write_sync(tmp_path / "s.sync", np.zeros((n_rows, 2), dtype=np.uint32))
    edges = decode_edges(path)
    assert edges.num_rows == 0
    assert edges.schema.field("sample").type == pa.int64()


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ("[1, 2, 3]", "not a literal dict"),
        ("{'ni_daq': __import__('os').getcwd()}", "not a Python literal"),
        ("dict(ni_daq=1)", "not a Python literal"),
        ("{'ni_daq': {", "not a Python literal"),
    ],
)
def test_meta_not_a_literal_dict(tmp_path, meta, reason):
    path = write_sync(tmp_path / "s.sync", np.zeros((2, 2)), meta=meta)
    with pytest.raises(DecodeError, match=reason) as err:
        read_sync(path)
    assert err.value.file == str(path)
    assert err.value.field == "meta"
    assert str(err.value).startswith(f"{path}: meta: ")


def test_required_meta_keys(tmp_path):
    meta = sync_meta()
    del meta["ni_daq"]["counter_output_freq"]
    path = write_sync(tmp_path / "a.sync", np.zeros((2, 2)), meta=meta)
    with pytest.raises(DecodeError) as err:
        read_sync(path)
    assert err.value.field == "meta.ni_daq.counter_output_freq"
    meta = sync_meta()
    del meta["line_labels"]
    path = write_sync(tmp_path / "b.sync", np.zeros((2, 2)), meta=meta)
    with pytest.raises(DecodeError) as err:
        read_sync(path)
    assert err.value.field == "meta.line_labels"
    path = write_sync(tmp_path / "c.sync", np.zeros((2, 2)), meta=sync_meta(counter_bits=40))
    with pytest.raises(DecodeError, match="must be 1-32"):
        read_sync(path)


def test_sync_without_data(tmp_path):
    path = write_sync(tmp_path / "s.sync", None)
    with pytest.raises(DecodeError, match="no 'data' dataset") as err:
        read_sync(path)
    assert (err.value.file, err.value.field) == (str(path), "data")


def test_data_of_the_wrong_shape(tmp_path):
    import h5py

    path = tmp_path / "s.sync"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("meta", data=np.bytes_(repr(sync_meta())))
        fh.create_dataset("data", data=np.zeros(5, dtype=np.uint32))
    with pytest.raises(DecodeError, match=r"expected shape \(N, 2\)") as err:
        read_sync(path)
    assert err.value.field == "data"


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "s.sync"
    path.write_bytes(b"not hdf5")
    with pytest.raises(DecodeError, match="not an HDF5 file"):
        read_sync(path)


def test_rollover_without_counter_bits_is_refused(tmp_path):
    rows = np.array([[10, 0], [20, 1], [5, 0]], dtype=np.uint32)
    path = write_sync(tmp_path / "s.sync", rows, meta=sync_meta(counter_bits=None))
    assert read_sync(path).counter_bits is None
    with pytest.raises(DecodeError, match="rolled over") as err:
        decode_edges(path)
    assert err.value.field == "meta.ni_daq.counter_bits"
    # without a rollover, a file without counter_bits decodes
    path = write_sync(tmp_path / "t.sync", rows[:2], meta=sync_meta(counter_bits=None))
    assert decode_edges(path).num_rows == 1


def test_counter_wider_than_counter_bits(tmp_path):
    rows = np.array([[10, 0], [70_000, 1]], dtype=np.uint32)
    path = write_sync(tmp_path / "s.sync", rows, meta=sync_meta(counter_bits=16))
    with pytest.raises(DecodeError, match="row 1: counter 70000") as err:
        decode_edges(path)
    assert err.value.field == "data"


def test_decode_sync_streams_what_decode_edges_materialises(real_sync):
    edges = decode_sync(real_sync)
    table = decode_edges(real_sync)
    assert isinstance(edges, BatchSource) and edges.num_rows == table.num_rows == 99
    assert edges.to_table().equals(table)
    assert edges.schema == table.schema
    for line in ("cam1_exposure", "cam2_exposure", 31):
        for rising in (True, False, None):
            np.testing.assert_array_equal(
                line_edges(edges, line, rising), line_edges(table, line, rising)
            )
    assert edges.counts[[8, 9, 31]].tolist() == [50, 47, 2]
    assert edges.samples("lick_sensor").tolist() == [82373, 87587]
    # the stream fits the sync_edges table as it flows, labels still dictionary-encoded
    batches = list(conform_batches(TABLES["sync_edges"], edges.batches(max_rows=10), "s1"))
    assert [b.num_rows for b in batches] == [10] * 9 + [9]
    assert pa.types.is_dictionary(batches[0].schema.field("label").type)


def test_unseen_rollover_is_refused(tmp_path):
    # a 16-bit counter (65,536 samples a period) and no row between samples 100 and 70,100:
    # the rollover at 65,536 leaves no trace, the rows read [100, 4564, 4664]
    true_samples = np.array([100, 70_100, 70_200])
    rows = np.column_stack([true_samples % (1 << 16), [0, 1, 0]]).astype(np.uint32)
    meta = sync_meta(counter_bits=16, total_samples=80_000)
    path = write_sync(tmp_path / "s.sync", rows, meta=meta)
    with pytest.raises(DecodeError, match="a rollover went unseen") as err:
        decode_sync(path)
    assert (err.value.file, err.value.field) == (str(path), "meta.ni_daq.counter_bits")
    assert "sample 4664 but total_samples is 80000" in str(err.value)
    with pytest.raises(DecodeError, match="unseen"):
        decode_edges(path, chunk_rows=1)


def test_quiet_stretches_shorter_than_a_period_decode(tmp_path):
    # rows at most one period apart, the last within a period of total_samples: all visible
    true_samples = np.array([100, 60_000, 120_000, 170_000])
    rows = np.column_stack([true_samples % (1 << 16), [0, 1, 0, 1]]).astype(np.uint32)
    meta = sync_meta(counter_bits=16, total_samples=170_000 + 65_535)
    path = write_sync(tmp_path / "s.sync", rows, meta=meta)
    assert decode_sync(path).samples(0).tolist() == [60_000, 120_000, 170_000]
    one_row = write_sync(tmp_path / "t.sync", rows[:1], meta=sync_meta(total_samples=10))
    assert decode_sync(one_row).num_rows == 0
    late = write_sync(
        tmp_path / "u.sync", rows[:1], meta=sync_meta(counter_bits=8, total_samples=400)
    )
    with pytest.raises(DecodeError, match="unseen"):
        decode_sync(late)  # a lone baseline row three periods before the end


def test_data_wider_than_32_bits_is_refused(tmp_path):
    import h5py

    path = tmp_path / "s.sync"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("meta", data=np.bytes_(repr(sync_meta())))
        fh.create_dataset("data", data=np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(DecodeError, match="expected 32-bit integers") as err:
        read_sync(path)
    assert err.value.field == "data"


def test_int32_data_is_read_as_its_bits(tmp_path):
    import h5py

    rows = np.array([[0, 0], [5, 0xFFFFFFFF], [2**31 + 3, 0]], dtype=np.uint32)
    unsigned = write_sync(tmp_path / "u.sync", rows)
    signed = tmp_path / "i.sync"
    with h5py.File(signed, "w") as fh:
        fh.create_dataset("meta", data=np.bytes_(repr(sync_meta())))
        fh.create_dataset("data", data=rows.view(np.int32))
    columns = ["line", "sample", "time", "rising"]
    expected = decode_edges(unsigned).select(columns)
    assert expected.num_rows == 64
    assert decode_edges(signed).select(columns).equals(expected)
    assert decode_edges(signed).column("sample").to_pylist()[-1] == 2**31 + 3
