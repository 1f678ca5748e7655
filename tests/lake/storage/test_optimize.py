"""Optimize: small files merged, answers unchanged, safe against racing writers and kills."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import lake
from lake.jobs import runner
from lake.storage import Store, commit_bundle, commit_bundles
from tests.lake.storage.test_kills import _nplake_view, _plain_view
from tests.lake.storage.writers import data_files, marked_bundle, named_files

REPO = Path(__file__).resolve().parents[3]


def _spawn(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO)


def test_an_ingest_merges_small_files_once_there_are_enough(tmp_path, monkeypatch, realdata):
    monkeypatch.setattr(runner, "AUTO_OPTIMIZE_FILES", 3)
    lk = lake.open(tmp_path / "lake")
    names = sorted((realdata / "nwb").glob("*.nwb"))
    reports = [lk.ingest([path]) for path in names]
    assert [bool(r.optimized) for r in reports] == [False, False, True]
    assert reports[2].optimized["units"] == (3, 1)
    assert "merged small files: " in str(reports[2])
    assert len(lk.snapshot().files("units")) == 1
    assert len(lk.snapshot().files("spikes")) == 3  # per-session tables are not merged
    before = lk.at(lk.version - 1)  # the version the last ingest made, before the merge
    assert lk.sql("SELECT * FROM units ORDER BY 1, 2").equals(
        before.sql("SELECT * FROM units ORDER BY 1, 2")
    )
    import polars as pl

    plain = pl.read_delta(f"{lk.uri}/units").sort("session_id", "unit_id")
    assert (
        plain.select("session_id", "unit_id").rows()
        == lk.sql("SELECT session_id, unit_id FROM units ORDER BY 1, 2").rows()
    )


def test_optimize_racing_ingests_and_another_optimize_loses_nothing(tmp_path):
    store = Store.at(tmp_path / "lake")
    sessions = [f"s{i}" for i in range(4)]
    for s in sessions:  # one small file per table per session
        commit_bundle(store, marked_bundle(s, 0))
    churn = _spawn(
        f"from tests.lake.storage.writers import churn; churn({store.root!r}, 1, {sessions!r}, 15)"
    )
    rival = _spawn(
        "from tests.lake.storage.writers import optimize_repeatedly; "
        f"optimize_repeatedly({store.root!r}, 5)"
    )
    lk = lake.open(store.root)
    for _ in range(5):
        lk.maintenance.optimize()
    assert churn.wait(timeout=300) == 0 and rival.wait(timeout=300) == 0
    lk = lake.open(store.root)
    view = _nplake_view(lk)
    assert {r[0] for r in view["sessions"]} == set(sessions)
    per_session = {}
    for sid, _unit, attempt in view["units"]:
        per_session.setdefault(sid, set()).add(attempt)
    assert all(len(a) == 1 for a in per_session.values())  # each session whole, one ingest
    spikes = {(s, int(a)) for s, a, _ in view["spikes"]}
    assert spikes == {(s, a) for s, attempts in per_session.items() for a in attempts}
    lk.maintenance.run(compact=True, retention_hours=0)
    assert _plain_view(store.root) == _nplake_view(lake.open(store.root))
    assert data_files(store) == named_files(store)


@pytest.mark.parametrize("step", ["before_append", "after_append"])
def test_a_kill_during_optimize_changes_no_answer(tmp_path, step):
    store = Store.at(tmp_path / "lake")
    for s in ("a", "b", "c"):
        commit_bundle(store, marked_bundle(s, 1))
    before = _nplake_view(lake.open(store.root))
    code = (
        "from tests.lake.storage.writers import optimize_and_die; "
        f"optimize_and_die({store.root!r}, {step!r})"
    )
    assert _spawn(code).wait() == 9
    lk = lake.open(store.root)
    assert _nplake_view(lk) == before
    assert len(lk.snapshot().files("units")) == (1 if step == "after_append" else 3)
    lk.maintenance.run(compact=True)
    assert _nplake_view(lake.open(store.root)) == before
    assert _plain_view(store.root) == before
    assert data_files(store) == named_files(store)
    commit_bundles(store, [marked_bundle("d", 2)])  # the next run completes
    assert len(_nplake_view(lake.open(store.root))["sessions"]) == 4
