"""The commit protocol: all or nothing per session, replacement, time travel, concurrency."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import lake
from lake.storage import Store, commit_bundle, commit_bundles
from lake.storage import commit as commit_module
from lake.storage import parquet as parquet_module
from lake.storage.commit import commit_group, prepare_session
from lake.storage.leases import Lease
from lake.storage.log import LakeLog
from schemas import TABLES, SchemaViolation, SessionBundle, StreamSource
from tests.lake.builders import make_bundle
from tests.lake.storage.writers import data_files, named_files

REPO = Path(__file__).resolve().parents[3]


def _store(tmp_path: Path) -> Store:
    return Store.at(tmp_path / "lake")


def _commit(store: Store, bundle, source_hash: str = "h"):
    return commit_bundle(store, bundle, source_hash=source_hash, pipeline_version="test")


def _state(lk: lake.Lake) -> dict:
    """Everything a reader can see, as plain values."""
    return {
        "spikes": lk.sql(
            "SELECT session_id, unit_id, time, amplitude FROM spikes ORDER BY 1, 2, 3"
        ).rows(),
        "units": lk.sql("SELECT session_id, unit_id, spike_count FROM units ORDER BY 1, 2").rows(),
        "trials": lk.sql("SELECT session_id, count(*) FROM trials GROUP BY 1 ORDER BY 1").rows(),
        "sessions": lk.sql("SELECT session_id, ingest_id FROM sessions ORDER BY 1").rows(),
    }


def _plain(store: Store, table: str) -> pl.DataFrame:
    """What a plain Delta reader sees of a table at its latest version."""
    return pl.read_delta(store.table_uri(table))


def test_committed_session_reads_back_exactly(tmp_path):
    store = _store(tmp_path)
    bundle = make_bundle("s1", seed=1)
    _commit(store, bundle)
    lk = lake.open(store.root)
    expected = bundle.table("spikes")
    got = lk.sql("SELECT unit_id, time, amplitude FROM spikes ORDER BY unit_id, time")
    assert got["unit_id"].to_list() == expected.column("unit_id").to_pylist()
    assert got["time"].to_list() == expected.column("time").to_pylist()
    assert got["amplitude"].to_list() == expected.column("amplitude").to_pylist()
    scanned = lk.scan("spikes").collect()
    assert scanned.columns == ["session_id", "unit_id", "time", "amplitude"]
    assert scanned["time"].to_list() == expected.column("time").to_pylist()
    row = lk.sessions().row(0, named=True)
    assert row["n_spikes"] == expected.num_rows
    assert row["n_units"] == 5
    assert row["n_trials"] == 3
    assert row["source_hash"] == "h"


def test_numeric_looking_session_ids_stay_strings(tmp_path):
    store = _store(tmp_path)
    _commit(store, make_bundle("1064644573"))
    lk = lake.open(store.root)
    assert lk.sql("SELECT typeof(session_id) FROM spikes LIMIT 1").item() == "VARCHAR"
    assert lk.sql("SELECT session_id FROM units LIMIT 1").item() == "1064644573"


def test_replacing_a_session_switches_every_table_at_once(tmp_path):
    store = _store(tmp_path)
    _commit(store, make_bundle("s1", seed=1))
    _commit(store, make_bundle("s2", seed=2))
    lk = lake.open(store.root)
    before = _state(lk)
    version_before = lk.version
    replacement = make_bundle("s1", seed=3, n_units=4)
    _commit(store, replacement, source_hash="h2")
    after = _state(lk)
    s2_rows = [r for r in before["spikes"] if r[0] == "s2"]
    assert [r for r in after["spikes"] if r[0] == "s2"] == s2_rows  # s2 untouched
    s1_times = [r[2] for r in after["spikes"] if r[0] == "s1"]
    assert s1_times == replacement.table("spikes").column("time").to_pylist()
    assert len([u for u in after["units"] if u[0] == "s1"]) == 4
    # a plain Delta reader sees exactly the new rows too (the old ones were removed, not hidden)
    units = _plain(store, "units")
    assert units.filter(pl.col("session_id") == "s1").height == 4
    assert units.filter(pl.col("session_id") == "s2").height == 5
    spikes = _plain(store, "spikes").filter(pl.col("session_id") == "s1").sort("unit_id", "time")
    assert spikes["time"].to_list() == s1_times
    # and the lake as it was stays readable
    assert _state(lk.at(version_before)) == before


def test_failure_while_writing_files_leaves_every_query_and_file_as_before(tmp_path, monkeypatch):
    store = _store(tmp_path)
    _commit(store, make_bundle("s1", seed=1))
    lk = lake.open(store.root)
    before, version, files = _state(lk), lk.version, data_files(store)
    calls = []
    original = parquet_module.write_data_file

    def failing_write(files_, table, *args, **kwargs):
        calls.append(table)
        if len(calls) == 3:  # after some files of this commit were written
            msg = "disk full (injected)"
            raise OSError(msg)
        return original(files_, table, *args, **kwargs)

    monkeypatch.setattr(commit_module, "write_data_file", failing_write)
    for bundle in (make_bundle("s1", seed=9), make_bundle("s2", seed=9)):  # replace, then new
        calls.clear()
        with pytest.raises(OSError, match="injected"):
            _commit(store, bundle)
        assert len(calls) == 3
    monkeypatch.undo()
    assert _state(lake.open(store.root)) == before
    assert lake.open(store.root).version == version
    assert data_files(store) == files  # what the failed commits wrote is gone


def test_damage_found_while_streaming_spikes_commits_nothing(tmp_path):
    store = _store(tmp_path)
    _commit(store, make_bundle("s1", seed=1))
    lk = lake.open(store.root)
    before, files = _state(lk), data_files(store)
    with pytest.raises(OSError, match="simulated damage"):
        _commit(store, make_bundle("s1", seed=2, batch_rows=50, break_stream_after=3))
    assert _state(lake.open(store.root)) == before
    assert data_files(store) == files


def test_a_unit_takes_its_area_from_its_own_sessions_channels(tmp_path):
    store = _store(tmp_path)
    commit_bundles(
        store,
        [
            make_bundle("a", areas=("VISp", "CA1", "LP", "DG", "VISl")),
            make_bundle("b", areas=("MRN", "APN", "CA3", "LGd", "VISam")),
        ],
    )
    lk = lake.open(store.root)
    rows = lk.sql(
        "SELECT session_id, unit_id, structure_acronym, genotype FROM units_annotated ORDER BY 1, 2"
    ).rows()
    assert rows == [
        ("a", 100, "VISp", "wt/wt"),
        ("a", 101, "CA1", "wt/wt"),
        ("a", 102, "LP", "wt/wt"),
        ("a", 103, "DG", "wt/wt"),
        ("a", 104, "VISl", "wt/wt"),
        ("b", 100, "MRN", "wt/wt"),
        ("b", 101, "APN", "wt/wt"),
        ("b", 102, "CA3", "wt/wt"),
        ("b", 103, "LGd", "wt/wt"),
        ("b", 104, "VISam", "wt/wt"),
    ]


def test_extra_columns_evolve_the_schema_and_clashing_types_are_refused(tmp_path):
    store = _store(tmp_path)
    _commit(store, make_bundle("a", extra_units={"snr": pa.array([1.5, 2.0, 3.0, 4.0, 5.0])}))
    _commit(store, make_bundle("b", extra_units={"snr": pa.array([1, 2, 3, 4, 5])}))
    _commit(store, make_bundle("c"))
    lk = lake.open(store.root)
    rows = lk.sql("SELECT session_id, sum(snr), count(snr) FROM units GROUP BY 1 ORDER BY 1").rows()
    assert rows == [("a", 15.5, 5), ("b", 15.0, 5), ("c", None, 0)]
    assert lk.describe("units").filter(pl.col("column") == "snr")["type"].item() == "double"
    plain = _plain(store, "units").group_by("session_id").agg(pl.col("snr").sum())
    assert dict(plain.rows()) == {"a": 15.5, "b": 15.0, "c": 0.0}
    before = _state(lk)
    clash = make_bundle("d", extra_units={"snr": pa.array(["x"] * 5)})
    with pytest.raises(SchemaViolation, match=r"units\.snr: the lake stores this column as double"):
        _commit(store, clash)
    assert _state(lake.open(store.root)) == before


def _with_trials_column(bundle: SessionBundle, values: pa.Array) -> SessionBundle:
    trials = bundle.tables["trials"].append_column("go", values)
    return SessionBundle(bundle.session_id, {**bundle.tables, "trials": trials}).validate()


def test_a_type_clash_in_a_later_table_changes_no_table(tmp_path):
    # units come before trials: their new column must not be added when trials then clash
    store = _store(tmp_path)
    first = make_bundle("a")
    _commit(store, _with_trials_column(first, pa.array([1.5] * first.num_rows("trials"))))
    version = store.log.latest()
    schemas = {name: _plain(store, name).schema for name in TABLES}
    files = data_files(store)
    clash = make_bundle("d", extra_units={"brand_new": pa.array([1.0, 2, 3, 4, 5])})
    clash = _with_trials_column(clash, pa.array(["x"] * clash.num_rows("trials")))
    with pytest.raises(SchemaViolation, match=r"trials\.go: the lake stores this column"):
        _commit(store, clash)
    assert store.log.latest() == version
    assert {name: _plain(store, name).schema for name in TABLES} == schemas
    assert data_files(store) == files


def test_one_failing_session_fails_alone_in_a_group(tmp_path):
    store = _store(tmp_path)
    _commit(store, make_bundle("a", extra_units={"snr": pa.array([1.0, 2, 3, 4, 5])}))
    good = make_bundle("b")
    bad = make_bundle("c", extra_units={"snr": pa.array(["x"] * 5)})
    with Lease(store.files) as lease:
        prepared = [
            prepare_session(store.files, b, lease=lease.id, source_hash="h", pipeline_version="t")
            for b in (good, bad)
        ]
        result, manifest = commit_group(store.files, store.log, prepared, lease=lease.id)
    store.finish_commit(manifest)
    assert [x.session_id for x in result.landed] == ["b"]
    assert list(result.failed.values()) == [
        "units.snr: the lake stores this column as double; this session has string"
    ]
    assert lake.open(store.root).sessions()["session_id"].to_list() == ["a", "b"]
    assert data_files(store) == {p for p in named_files(store)}  # c's spikes files are gone


def test_the_later_commit_of_one_session_wins_and_both_land(tmp_path):
    # two ingests of s1 prepared side by side: whichever commits last is the lake's s1, as if
    # they had run one after the other; neither fails
    store = _store(tmp_path)
    first, second = make_bundle("s1", seed=1), make_bundle("s1", seed=2, n_units=3)
    with Lease(store.files) as lease:
        a, b = (
            prepare_session(store.files, x, lease=lease.id, source_hash=h, pipeline_version="t")
            for x, h in ((first, "a"), (second, "b"))
        )
        result_b, manifest = commit_group(store.files, store.log, [b], lease=lease.id)
        store.finish_commit(manifest)
        result_a, manifest = commit_group(store.files, store.log, [a], lease=lease.id)
        store.finish_commit(manifest)
    assert result_b.landed[0].replaced is None
    assert result_a.landed[0].replaced == b.ingest_id
    lk = lake.open(store.root)
    assert lk.sessions()["source_hash"].to_list() == ["a"]
    assert lk.sql("SELECT count(*) FROM units").item() == 5
    assert _plain(store, "units").height == 5


def _commit_in_process(root: str, session_id: str, seed: int) -> str:
    result = commit_bundle(
        Store.at(root),
        make_bundle(session_id, seed=seed),
        source_hash=session_id,
        pipeline_version="t",
    )
    return result.landed[0].session_id


def test_concurrent_ingests_of_different_sessions_all_land(tmp_path):
    store = _store(tmp_path)
    context = multiprocessing.get_context("spawn")
    ids = [f"s{i}" for i in range(6)]
    with context.Pool(3) as pool:
        done = pool.starmap(_commit_in_process, [(store.root, sid, i) for i, sid in enumerate(ids)])
    assert sorted(done) == ids
    lk = lake.open(store.root)
    counts = dict(lk.sql("SELECT session_id, count(*) FROM spikes GROUP BY 1").rows())
    expected = {sid: make_bundle(sid, seed=i).num_rows("spikes") for i, sid in enumerate(ids)}
    assert counts == expected
    plain = dict(_plain(store, "spikes").group_by("session_id").len().rows())
    assert plain == expected


def test_a_commit_that_loses_the_race_for_its_version_rebases_and_lands(tmp_path, monkeypatch):
    # between this commit's read of the lake and its append, another writer lands a session
    # that adds a units column and replaces a session whose files this commit must rewrite
    store = _store(tmp_path)
    commit_bundles(store, [make_bundle("mine", seed=1), make_bundle("other", seed=4)])
    rival = make_bundle("rival", seed=2, extra_units={"snr": pa.array([1.0, 2, 3, 4, 5])})
    replacement = make_bundle("other", seed=5, n_units=2)
    real_append = LakeLog.append
    raced = []

    def append(self, entry):
        if not raced and entry.operation == "ingest":
            raced.append(entry.version)
            monkeypatch.setattr(LakeLog, "append", real_append)
            commit_bundles(store, [rival])
            commit_bundles(store, [replacement])
            monkeypatch.setattr(LakeLog, "append", append)
        return real_append(self, entry)

    monkeypatch.setattr(LakeLog, "append", append)
    mine = make_bundle("mine", seed=3, n_units=3)
    result = _commit(store, mine, source_hash="mine")
    monkeypatch.undo()
    assert result.version == raced[0] + 2  # two versions came first; this one rebased on them
    lk = lake.open(store.root)
    assert lk.sessions()["session_id"].to_list() == ["mine", "other", "rival"]
    counts = dict(lk.sql("SELECT session_id, count(*) FROM units GROUP BY 1").rows())
    assert counts == {"mine": 3, "other": 2, "rival": 5}
    snr = dict(lk.sql("SELECT session_id, sum(snr) FROM units GROUP BY 1").rows())
    assert snr == {"mine": None, "other": None, "rival": 15.0}
    assert dict(_plain(store, "units").group_by("session_id").len().rows()) == counts


def test_a_spikes_stream_out_of_order_is_refused_before_anything_is_visible(tmp_path):
    store = _store(tmp_path)
    good = make_bundle("s1", seed=1)
    spikes = good.table("spikes").drop_columns(["session_id"])
    reversed_batches = spikes.to_batches(max_chunksize=100)[::-1]
    tables = dict(good.tables)
    tables["spikes"] = StreamSource(spikes.schema, spikes.num_rows, lambda: iter(reversed_batches))
    bad = SessionBundle("s1", tables).validate()
    with pytest.raises(
        SchemaViolation, match=r"spikes: rows are not sorted by \('unit_id', 'time'\)"
    ):
        _commit(store, bad)
    assert not store.exists() or lake.open(store.root).sessions().height == 0
    assert data_files(store) == set()


def test_whole_tables_are_sorted_by_validate(tmp_path):
    bundle = make_bundle("s1")
    spikes = bundle.table("spikes")
    shuffled = spikes.take(np.random.default_rng(0).permutation(spikes.num_rows))
    tables = dict(bundle.tables)
    tables["spikes"] = shuffled.drop_columns(["session_id"])
    resorted = SessionBundle("s1", tables).validate()
    assert resorted.table("spikes").column("time").equals(spikes.column("time"))


def test_history_lists_each_commit_with_its_sessions(tmp_path):
    store = _store(tmp_path)
    _commit(store, make_bundle("s1", seed=1))
    commit_bundles(store, [make_bundle("s2", seed=2), make_bundle("s3", seed=3)])
    lk = lake.open(store.root)
    versions = lk.history.versions()
    ingests = versions.filter(pl.col("operation") == "ingest")
    assert ingests["sessions"].to_list() == [["s2", "s3"], ["s1"]]
    assert ingests["version"].to_list() == [lk.version, lk.version - 1]
    first = lk.at(int(ingests["version"][1]))
    assert first.sql("SELECT DISTINCT session_id FROM spikes").rows() == [("s1",)]


def test_optimize_and_vacuum_keep_answers_and_merge_files(tmp_path):
    store = _store(tmp_path)
    for i in range(3):
        _commit(store, make_bundle(f"s{i}", seed=i))
    lk = lake.open(store.root)
    before = _state(lk)
    assert len(lk.snapshot().files("units")) == 3
    report = lk.maintenance.optimize()
    assert report.compacted["units"] == (3, 1)
    assert len(lake.open(store.root).snapshot().files("units")) == 1
    lk.maintenance.vacuum(retention_hours=0)
    assert _state(lake.open(store.root)) == before
    assert data_files(store) == named_files(store)
    plain = _plain(store, "units").sort("session_id", "unit_id")
    assert plain.select("session_id", "unit_id", "spike_count").rows() == before["units"]


def test_streams_may_keep_text_dictionary_encoded(tmp_path):
    store = _store(tmp_path)
    n = 10
    labels = pa.DictionaryArray.from_arrays(
        pa.array(np.arange(n) % 2, pa.int32()), pa.array(["vsync_stim", "barcode_ephys"])
    )
    edges = pa.table(
        {
            "line": np.repeat([0, 1], n // 2),
            "label": labels,
            "sample": np.tile(np.arange(n // 2), 2),
            "time": np.tile(np.arange(n // 2) / 1e5, 2),
            "rising": np.arange(n) % 2 == 0,
        }
    )
    bundle = make_bundle("s1")
    tables = dict(bundle.tables)
    tables["sync_edges"] = StreamSource(edges.schema, n, lambda: iter(edges.to_batches(4)))
    _commit(store, SessionBundle("s1", tables).validate())
    lk = lake.open(store.root)
    got = lk.sql("SELECT label FROM sync_edges ORDER BY line, sample").to_series().to_list()
    assert got == labels.to_pylist()
    assert lk.describe("sync_edges").filter(pl.col("column") == "label")["type"].item() == "string"
