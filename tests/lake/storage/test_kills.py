"""Kills: a writer killed at any step of a commit leaves nothing half-visible to any reader.

nplake's readers see the lake before or after the commit, never between; plain Delta readers
never see a row of an ingest that did not commit; maintenance then leaves no uncommitted file
and every Delta table equal to what nplake reads.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

import lake
from lake.storage import Store, commit_bundles
from tests.lake.storage.writers import DIE_AT, data_files, marked_bundle, named_files

REPO = Path(__file__).resolve().parents[3]
COMMITTED_FROM = DIE_AT.index("after_append")  # from this step on, the commit stands


def _run(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO)


def _nplake_view(lk: lake.Lake) -> dict[str, list]:
    return {
        "units": lk.sql("SELECT session_id, unit_id, attempt FROM units ORDER BY 1, 2").rows(),
        "spikes": lk.sql(
            "SELECT session_id, amplitude, count(*) FROM spikes GROUP BY 1, 2 ORDER BY 1, 2"
        ).rows(),
        "sessions": lk.sql("SELECT session_id FROM sessions ORDER BY 1").rows(),
    }


def _plain_view(root: str) -> dict[str, list]:
    units = pl.read_delta(f"{root}/units").sort("session_id", "unit_id")
    spikes = pl.read_delta(f"{root}/spikes").group_by("session_id", "amplitude").len()
    sessions = pl.read_delta(f"{root}/sessions").sort("session_id")
    return {
        "units": units.select("session_id", "unit_id", "attempt").rows(),
        "spikes": spikes.sort("session_id", "amplitude").rows(),
        "sessions": sessions.select("session_id").rows(),
    }


#: Steps also run in the quick suite (the others with -m slow): one before the commit point,
#: one after it.
QUICK = ("before_append", "publishing")


@pytest.mark.parametrize(
    "step", [s if s in QUICK else pytest.param(s, marks=pytest.mark.slow) for s in DIE_AT]
)
def test_a_kill_at_any_commit_step_is_before_or_after_never_between(tmp_path, step):
    store = Store.at(tmp_path / "lake")
    commit_bundles(store, [marked_bundle("a", 1), marked_bundle("b", 1)])
    lk = lake.open(store.root)
    before = _nplake_view(lk)
    code = (
        "from tests.lake.storage.writers import commit_and_die; "
        f"commit_and_die({store.root!r}, ['b', 'c'], 2, {step!r})"
    )
    assert _run(code).wait() == 9
    after = _nplake_view(lake.open(store.root))
    committed = DIE_AT.index(step) >= COMMITTED_FROM
    if committed:  # b replaced and c added, in every table at once
        assert {r[0] for r in after["sessions"]} == {"a", "b", "c"}
        assert {(r[0], r[2]) for r in after["units"]} == {("a", 1), ("b", 2), ("c", 2)}
    else:
        assert after == before
    # a plain Delta reader: no row of an ingest that did not commit, and per table whole
    plain = _plain_view(store.root)
    allowed = {("a", 1), ("b", 1), ("b", 2), ("c", 2)} if committed else {("a", 1), ("b", 1)}
    seen = {(r[0], r[2]) for r in plain["units"]} | {(r[0], r[1]) for r in plain["spikes"]}
    assert seen <= allowed
    for table in ("units", "spikes"):
        key = 2 if table == "units" else 1
        per_session = {}
        for row in plain[table]:
            per_session.setdefault(row[0], set()).add(row[key])
        assert all(len(v) == 1 for v in per_session.values()), (table, per_session)
    # maintenance: the Delta tables equal what nplake reads, and no uncommitted file is left
    report = lk.maintenance.run(compact=False)
    assert _plain_view(store.root) == _nplake_view(lake.open(store.root))
    assert data_files(store) == named_files(store)
    assert store.files.list("_nplake/leases") == []
    if not committed and step != "prepared":
        assert report.garbage_files > 0
    # and the next ingest completes normally
    commit_bundles(store, [marked_bundle("c", 3)])
    final = _nplake_view(lake.open(store.root))
    assert ("c", 100, 3) in final["units"]
    assert _plain_view(store.root) == final


@pytest.mark.slow
def test_plain_readers_never_see_a_wrong_row_while_writers_are_killed(tmp_path):
    """Two writers churn five sessions; one is killed with SIGKILL again and again; a plain
    Delta reader polls all the while and counts every row it should not have seen."""
    store = Store.at(tmp_path / "lake")
    sessions = [f"s{i}" for i in range(5)]
    commit_bundles(store, [marked_bundle(s, 0) for s in sessions])
    stop = threading.Event()
    reads: list[dict[str, list]] = []
    errors: list[str] = []

    def poll() -> None:
        while not stop.is_set():
            try:
                reads.append(_plain_view(store.root))
            except Exception as exc:  # a plain reader must always read the table
                errors.append(f"{type(exc).__name__}: {exc}")

    poller = threading.Thread(target=poll)
    poller.start()
    rng = random.Random(7)
    kills = 0
    try:
        steady = _run(
            f"from tests.lake.storage.writers import churn; churn({store.root!r}, 1, "
            f"{sessions!r}, 40)"
        )
        for round_ in range(12):
            victim = _run(
                f"from tests.lake.storage.writers import churn; churn({store.root!r}, "
                f"{round_ + 2}, {sessions!r}, 1000)"
            )
            time.sleep(rng.uniform(1.0, 3.0))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
        assert steady.wait(timeout=300) == 0
    finally:
        stop.set()
        poller.join()
    assert errors == []
    assert kills == 12 and len(reads) > 50
    lk = lake.open(store.root)
    committed = set()
    for version in range(1, lk.version + 1):  # version 0 is the empty lake
        at = lk.at(version).sql("SELECT DISTINCT session_id, attempt FROM units").rows()
        committed |= set(at)
    wrong = 0
    for read in reads:
        seen = {(r[0], r[2]) for r in read["units"]} | {(r[0], int(r[1])) for r in read["spikes"]}
        wrong += len(seen - committed)
        for table, key in (("units", 2), ("spikes", 1)):
            mixed: dict[str, set] = {}
            for row in read[table]:
                mixed.setdefault(row[0], set()).add(row[key])
            wrong += sum(len(v) - 1 for v in mixed.values())
    print(f"\n{len(reads)} plain reads, {kills} kills, {lk.version} versions, {wrong} wrong rows")
    assert wrong == 0
    lk.maintenance.run(compact=False)
    assert _plain_view(store.root) == _nplake_view(lake.open(store.root))
    assert data_files(store) == named_files(store)
