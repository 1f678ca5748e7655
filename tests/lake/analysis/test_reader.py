"""lake.analysis spike reader: spikes in any order and row groups that split units give the
same numbers as numpy over the source NWB files; row groups without chosen units are not read."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import polars as pl
import pytest

from lake.analysis import _reader, _state
from tests.queries.lakes import bins, nwb_events, nwb_spikes, ref_counts, shared_lake


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


def test_spikes_stored_in_any_order_give_the_same_counts(shared, monkeypatch):
    lk = shared.lake
    before = lk.analysis.aligned_counts(None, "licks", window=(-0.2, 0.2))
    spans = lk.analysis.session_spans()
    real_read = _reader.read_group

    def shuffled(pf, group):
        owner, times = real_read(pf, group)
        order = np.random.default_rng(group).permutation(len(owner))
        return owner[order], times[order]

    # files that do not declare their order (e.g. written by another engine) decode unit_id
    monkeypatch.setattr(_reader, "layout", lambda store, files, counts: None)
    monkeypatch.setattr(_reader, "read_group", shuffled)
    after = lk.analysis.aligned_counts(None, "licks", window=(-0.2, 0.2))
    assert after.height > 0
    assert after.equals(before)
    assert lk.analysis.session_spans().equals(spans)


# ------------------------------------------------------------- many row groups per session
GROUP_ROWS = 997  # odd: row-group boundaries fall inside units


@pytest.fixture(scope="module")
def small_groups(tmp_path_factory):
    """Two synthetic sessions whose spikes files hold row groups of GROUP_ROWS rows."""
    import lake
    from ingest.synth import write_corpus
    from lake.storage import parquet as storage

    root = tmp_path_factory.mktemp("small-groups")
    paths = write_corpus(root / "nwb", 2, seed=5, size="tiny")
    patch = pytest.MonkeyPatch()
    patch.setattr(storage, "SPIKE_ROW_GROUP_ROWS", GROUP_ROWS)
    try:
        lk = lake.open(root / "lake")
        assert lk.ingest(paths, jobs=1).ok  # in this process: the patched size applies
    finally:
        patch.undo()
    files = dict(lk.sessions().select("session_id", "source_uri").rows())
    return lk, files


def test_spikes_are_written_in_row_groups_that_split_units(small_groups):
    import pyarrow.parquet as pq

    lk, _ = small_groups
    split = 0
    for uri in lk.snapshot().files("spikes"):
        meta = pq.read_metadata(lk.store.open_input(uri))
        assert meta.num_row_groups > 10
        assert max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) == GROUP_ROWS
        column = meta.schema.names.index("unit_id")
        stats = [meta.row_group(g).column(column).statistics for g in range(meta.num_row_groups)]
        split += sum(a.max == b.min for a, b in itertools.pairwise(stats))
    assert split > 5  # units whose spikes continue in the next row group


def _every_third_unit(lk) -> pl.DataFrame:
    units = lk.sql("SELECT session_id, unit_id FROM units ORDER BY 1, 2")
    return units.filter(pl.int_range(pl.len()) % 3 == 1)


@pytest.mark.parametrize("event", ["trials.start_time", "licks"])
def test_counts_over_many_row_groups_equal_numpy_and_the_sql(small_groups, event):
    lk, files = small_groups
    chosen = _every_third_unit(lk)
    third = (
        "WITH third AS (SELECT * FROM units WHERE unit_id IN "
        f"({', '.join(map(str, chosen['unit_id']))})) "
    )
    key = ["session_id", "unit_id", "event_index", "bin"]
    got = lk.analysis.aligned_counts(chosen, event, bins=(-0.3, 0.05, 13))
    sql = lk.sql(f"{third}SELECT * FROM aligned_bins('third', '{event}', -0.3, 0.05, 13)")
    assert got.sort(key).equals(sql.sort(key))
    window = lk.analysis.aligned_counts(chosen, event, window=(-0.25, 0.5))
    sql = lk.sql(f"{third}SELECT * FROM aligned_counts('third', '{event}', -0.25, 0.5)")
    assert window.sort(key[:3]).equals(sql.sort(key[:3]))
    psth = lk.analysis.psth(chosen, event, bins=(-0.3, 0.05, 13))
    sql = lk.sql(f"{third}SELECT * FROM psth('third', '{event}', -0.3, 0.05, 13)")
    assert psth.sort([*key[:2], "bin"]).equals(sql.sort([*key[:2], "bin"]))
    for sid, path in files.items():
        index, times = nwb_events(path, event)
        spikes = nwb_spikes(path)
        mine = chosen.filter(pl.col("session_id") == sid)["unit_id"].to_list()
        assert mine
        for unit in mine:
            expected = ref_counts(spikes[unit], times, bins(-0.3, 0.05, 13))
            row = got.filter((pl.col("session_id") == sid) & (pl.col("unit_id") == unit))
            row = row.sort("event_index", "bin")
            assert np.array_equal(row["n_spikes"].to_numpy(), expected[np.argsort(index)].ravel())
            in_window = ref_counts(spikes[unit], times, np.array([-0.25, 0.5]))[:, 0]
            row = window.filter((pl.col("session_id") == sid) & (pl.col("unit_id") == unit))
            assert np.array_equal(row.sort("event_index")["n_spikes"], in_window[np.argsort(index)])


def _counting_reads(monkeypatch) -> dict[str, list[int]]:
    """Record the row groups read: time only (from spike counts) or unit_id and time."""
    read: dict[str, list[int]] = {"time": [], "unit_id+time": []}
    real_times, real_group = _reader.read_times, _reader.read_group

    def times_only(pf, group):
        read["time"].append(group)
        return real_times(pf, group)

    def both(pf, group):
        read["unit_id+time"].append(group)
        return real_group(pf, group)

    monkeypatch.setattr(_reader, "read_times", times_only)
    monkeypatch.setattr(_reader, "read_group", both)
    return read


def test_row_groups_without_chosen_units_are_not_read(small_groups, monkeypatch):
    lk, files = small_groups
    sid = sorted(files)[0]
    one = lk.sql(
        f"SELECT session_id, unit_id FROM units WHERE session_id = '{sid}' "
        "AND spike_count > 0 ORDER BY unit_id LIMIT 1 OFFSET 3"
    )
    read = _counting_reads(monkeypatch)
    got = lk.analysis.aligned_counts(one, "licks", window=(-1.0, 1.0))
    spikes = nwb_spikes(files[sid])[one["unit_id"].item()]
    _, times = nwb_events(files[sid], "licks")
    expected = ref_counts(spikes, times, np.array([-1.0, 1.0]))[:, 0]
    assert got["n_spikes"].to_list() == expected.tolist()
    assert 1 <= len(read["time"]) <= len(spikes) // GROUP_ROWS + 2  # its own row groups only
    assert read["unit_id+time"] == []  # the files declare their order: unit_id is not decoded


@pytest.mark.parametrize("layout", ["declared", "not declared", "spike counts disagree"])
def test_unit_slices_from_spike_counts_equal_slices_from_unit_ids(
    small_groups, monkeypatch, layout
):
    lk, _ = small_groups
    chosen = _every_third_unit(lk)
    decoded = lk.analysis
    monkeypatch.setattr(_reader, "layout", lambda store, files, counts: None)
    expected = decoded.psth(chosen, "licks", bins=(-0.5, 0.05, 30))
    windows = decoded.aligned_counts(chosen, "trials.start_time", window=(0.0, 0.3))
    monkeypatch.undo()
    read = _counting_reads(monkeypatch)
    if layout == "not declared":  # files without sorting_columns (older lakes, other writers)
        real_of = _reader.FileIndex.of

        def undeclared(metadata):
            return dataclasses.replace(real_of(metadata), unit_time_sorted=False)

        monkeypatch.setattr(_reader.FileIndex, "of", staticmethod(undeclared))
        monkeypatch.setattr(_reader, "_INDEXES", type(_reader._INDEXES)())
    if layout == "spike counts disagree":  # e.g. a unit's spike_count off by one
        real = _state.Computed.unit_rows

        def shifted(self, lake):
            rows = real(self, lake)
            return {
                sid: _reader.UnitRows(r.unit_ids, r.starts + 1, r.ends + 1)
                for sid, r in rows.items()
            }

        monkeypatch.setattr(_state.Computed, "unit_rows", shifted)
    assert lk.analysis.psth(chosen, "licks", bins=(-0.5, 0.05, 30)).equals(expected)
    got = lk.analysis.aligned_counts(chosen, "trials.start_time", window=(0.0, 0.3))
    assert got.equals(windows)
    decoded_groups = bool(read["unit_id+time"])
    assert decoded_groups == (layout != "declared")


def test_spike_times_over_many_row_groups_are_the_files_spike_times(small_groups):
    lk, files = small_groups
    for sid, path in files.items():
        expected = nwb_spikes(path)
        got = lk.analysis.spike_times(sid)
        assert got.keys() == expected.keys()
        assert all(np.array_equal(got[u], t) for u, t in expected.items())
        spans = lk.analysis.session_spans().filter(pl.col("session_id") == sid).row(0, named=True)
        flat = np.concatenate(list(expected.values()))
        assert (spans["first_spike_time"], spans["last_spike_time"]) == (flat.min(), flat.max())
        assert spans["n_spikes"] == flat.size
