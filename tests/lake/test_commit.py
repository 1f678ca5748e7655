"""The commit protocol: all or nothing per session, replacement, time travel, concurrency."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import lake
from lake.commit import commit_bundle, partition_ingest_ids
from lake.storage import Store
from schemas import TABLES, CommitConflict, SchemaViolation, SessionBundle, StreamSource
from tests.lake.builders import make_bundle

REPO = Path(__file__).resolve().parents[2]


def _store(tmp_path: Path) -> Store:
    store = Store.at(tmp_path / "lake")
    store.ensure_tables()
    return store


def _commit(store: Store, bundle, source_hash: str = "h") -> None:
    commit_bundle(store, bundle, source_hash=source_hash, pipeline_version="test")


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
    # the old ingest's partitions are gone from every table's latest snapshot
    spikes = store.table("spikes")
    assert partition_ingest_ids(spikes, "s1") == {after["sessions"][0][1]}
    # and the lake as it was stays readable
    assert _state(lk.at(version_before)) == before


def test_failure_between_table_writes_leaves_every_query_as_before(tmp_path, monkeypatch):
    store = _store(tmp_path)
    _commit(store, make_bundle("s1", seed=1))
    lk = lake.open(store.root)
    before = _state(lk)
    version = lk.version
    calls = []
    original = Store.append

    def failing_append(self, name, *args, **kwargs):
        calls.append(name)
        if len(calls) == 3:  # after probes and channels landed in their tables
            msg = "disk full (injected)"
            raise OSError(msg)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(Store, "append", failing_append)
    with pytest.raises(OSError, match="injected"):
        _commit(store, make_bundle("s1", seed=9))  # replacing an existing session
    assert calls == ["probes", "channels", "units"]
    calls.clear()
    with pytest.raises(OSError, match="injected"):
        _commit(store, make_bundle("s2", seed=9))  # a new session
    monkeypatch.undo()
    assert _state(lake.open(store.root)) == before
    assert lake.open(store.root).version == version
    # the failed ingests left no partitions behind, on disk or in the logs
    for name in ("probes", "channels"):
        assert partition_ingest_ids(store.table(name), "s2") == set()
        assert not (Path(store.table_uri(name)) / "session_id=s2").exists() or not any(
            (Path(store.table_uri(name)) / "session_id=s2").iterdir()
        )


def test_damage_found_while_streaming_spikes_commits_nothing(tmp_path):
    store = _store(tmp_path)
    _commit(store, make_bundle("s1", seed=1))
    lk = lake.open(store.root)
    before = _state(lk)
    with pytest.raises(OSError, match="simulated damage"):
        _commit(store, make_bundle("s1", seed=2, batch_rows=50, break_stream_after=3))
    assert _state(lake.open(store.root)) == before


def test_a_killed_ingest_is_invisible_and_the_next_ingest_repairs_it(tmp_path):
    store = _store(tmp_path)
    _commit(store, make_bundle("s1", seed=1))
    before = _state(lake.open(store.root))
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from lake.storage import Store
        from lake.commit import commit_bundle
        from tests.lake.builders import make_bundle
        original = Store.append
        def append_then_die(self, name, *a, **k):
            rows = original(self, name, *a, **k)
            if name == "units":
                os._exit(9)  # like kill -9: no cleanup runs
            return rows
        Store.append = append_then_die
        commit_bundle(Store.at({store.root!r}), make_bundle("s1", seed=5),
                      source_hash="x", pipeline_version="test")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, cwd=REPO)
    assert done.returncode == 9
    assert len(partition_ingest_ids(store.table("units"), "s1")) == 2  # orphan is there
    assert _state(lake.open(store.root)) == before  # but invisible
    _commit(store, make_bundle("s1", seed=6), source_hash="h3")
    current = lake.open(store.root).sessions()["ingest_id"].to_list()
    assert partition_ingest_ids(store.table("units"), "s1") == set(current)


def test_a_unit_takes_its_area_from_its_own_sessions_channels(tmp_path):
    store = _store(tmp_path)
    _commit(store, make_bundle("a", areas=("VISp", "CA1", "LP", "DG", "VISl")))
    _commit(store, make_bundle("b", areas=("MRN", "APN", "CA3", "LGd", "VISam")))
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
    versions = {name: store.table(name).version() for name in TABLES}
    schemas = {name: store.table(name).schema().to_arrow() for name in TABLES}
    clash = make_bundle("d", extra_units={"brand_new": pa.array([1.0, 2, 3, 4, 5])})
    clash = _with_trials_column(clash, pa.array(["x"] * clash.num_rows("trials")))
    with pytest.raises(SchemaViolation, match=r"trials\.go: the lake stores this column"):
        _commit(store, clash)
    assert {name: store.table(name).version() for name in TABLES} == versions
    assert {name: store.table(name).schema().to_arrow() for name in TABLES} == schemas


def test_a_newer_ingest_of_the_same_session_wins(tmp_path, monkeypatch):
    store = _store(tmp_path)
    _commit(store, make_bundle("s1", seed=1))
    # an ingest that started earlier (older id) but commits after a newer one must not win
    import lake.commit as commit_module

    monkeypatch.setattr(commit_module, "new_ingest_id", lambda: "19990101T000000000000Z00000000")
    with pytest.raises(CommitConflict, match="a newer ingest"):
        _commit(store, make_bundle("s1", seed=2))
    monkeypatch.undo()
    assert lake.open(store.root).sql("SELECT count(*) FROM units").item() == 5


def _commit_in_process(root: str, session_id: str, seed: int) -> str:
    store = Store.at(root)
    result = commit_bundle(
        store, make_bundle(session_id, seed=seed), source_hash=session_id, pipeline_version="t"
    )
    return result.session_id


def test_concurrent_ingests_of_different_sessions_all_land(tmp_path):
    store = _store(tmp_path)
    context = multiprocessing.get_context("spawn")
    ids = [f"s{i}" for i in range(4)]
    with context.Pool(2) as pool:
        done = pool.starmap(_commit_in_process, [(store.root, sid, i) for i, sid in enumerate(ids)])
    assert sorted(done) == ids
    lk = lake.open(store.root)
    counts = dict(lk.sql("SELECT session_id, count(*) FROM spikes GROUP BY 1").rows())
    expected = {sid: make_bundle(sid, seed=i).num_rows("spikes") for i, sid in enumerate(ids)}
    assert counts == expected


def test_a_commit_that_loses_a_race_to_another_sessions_schema_change_retries(
    tmp_path, monkeypatch
):
    # other processes land sessions between this commit's read of a table and its write (one
    # adding units columns: Delta refuses the write then); this commit must rebase and land
    from deltalake import DeltaTable

    import lake.commit as commit_module

    store = _store(tmp_path)
    rival = make_bundle("rival", seed=2, extra_units={"snr": pa.array([1.0, 2, 3, 4, 5])})
    late = make_bundle("late", seed=3)
    real_transaction = DeltaTable.create_write_transaction
    real_sessions_row = commit_module.write_sessions_row
    raced = []

    def transaction(self, actions, *args, **kwargs):
        if not raced and "units" in self.table_uri:
            raced.append("units")
            _commit(store, rival, source_hash="rival")  # a metadata change of units
        return real_transaction(self, actions, *args, **kwargs)

    def sessions_row(dt, row, sid, metadata):
        if sid == "mine" and "sessions" not in raced:
            raced.append("sessions")
            _commit(store, late, source_hash="late")  # another session's commit point
        return real_sessions_row(dt, row, sid, metadata)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", transaction)
    monkeypatch.setattr(commit_module, "write_sessions_row", sessions_row)
    mine = make_bundle("mine", seed=1)
    _commit(store, mine, source_hash="mine")
    monkeypatch.undo()
    assert raced == ["units", "sessions"]
    lk = lake.open(store.root)
    assert lk.sessions()["session_id"].to_list() == ["late", "mine", "rival"]
    counts = dict(lk.sql("SELECT session_id, count(*) FROM spikes GROUP BY 1").rows())
    assert counts == {b.session_id: b.num_rows("spikes") for b in (mine, rival, late)}
    snr = dict(lk.sql("SELECT session_id, sum(snr) FROM units GROUP BY 1").rows())
    assert snr == {"mine": None, "rival": 15.0, "late": None}


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
    assert lake.open(store.root).sessions().height == 0
    assert partition_ingest_ids(store.table("units"), "s1") == set()


def test_whole_tables_are_sorted_by_validate(tmp_path):
    bundle = make_bundle("s1")
    spikes = bundle.table("spikes")
    shuffled = spikes.take(np.random.default_rng(0).permutation(spikes.num_rows))
    tables = dict(bundle.tables)
    tables["spikes"] = shuffled.drop_columns(["session_id"])
    resorted = SessionBundle("s1", tables).validate()
    assert resorted.table("spikes").column("time").equals(spikes.column("time"))


def test_garbage_collection_removes_only_old_orphans(tmp_path):
    import datetime as dt

    store = _store(tmp_path)
    _commit(store, make_bundle("s1", seed=1))
    lk = lake.open(store.root)
    before = _state(lk)
    # an orphan from a failed ingest long ago, and one from an ingest running right now
    old, running = "20000101T000000000000Z0000abcd", "29990101T000000000000Z0000abcd"
    for iid in (old, running):
        unit = make_bundle("s1", seed=7).table("units").drop_columns(["session_id"])
        store.append("units", "s1", iid, unit.to_batches(), unit.schema)
    report = lk.maintenance.collect_garbage(older_than=dt.timedelta(hours=1))
    assert report.removed["units"] == 1
    ids = partition_ingest_ids(store.table("units"), "s1")
    assert old not in ids and running in ids
    assert _state(lk) == before


def test_history_lists_one_version_per_ingest(tmp_path):
    store = _store(tmp_path)
    _commit(store, make_bundle("s1", seed=1))
    _commit(store, make_bundle("s2", seed=2))
    lk = lake.open(store.root)
    versions = lk.history.versions()
    ingests = versions.filter(pl.col("operation") == "ingest")
    assert ingests["session_id"].to_list() == ["s2", "s1"]
    assert ingests["version"].to_list() == [lk.version, lk.version - 1]
    first = lk.at(int(ingests["version"][1]))
    assert first.sql("SELECT DISTINCT session_id FROM spikes").rows() == [("s1",)]


def test_compact_and_vacuum_keep_answers(tmp_path):
    store = _store(tmp_path)
    for i in range(3):
        _commit(store, make_bundle(f"s{i}", seed=i))
    lk = lake.open(store.root)
    before = _state(lk)
    lk.maintenance.compact()
    lk.maintenance.vacuum()
    assert _state(lake.open(store.root)) == before


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
