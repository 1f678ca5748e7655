"""Ingest on a Dask LocalCluster: the same lake as `--jobs 2`, workers killed mid-session,
two coordinators at once, and `import lake` without Dask.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest

import lake
from tests.lake.distributed.compare import rows
from tests.lake.distributed.stall import Killer, StallSpikes


def statuses(report) -> list[tuple]:
    """What the summary says of each source, without timings."""
    return [
        (o.source, o.status, o.session_id, o.reason, o.rows, o.notes, o.replaced)
        for o in report.outcomes
    ]


def test_a_local_cluster_makes_the_same_lake_as_two_jobs(client, rig_batch, realdata, tmp_path):
    for name, sources in (("rig", rig_batch), ("nwb", [realdata / "nwb"])):
        pool = lake.open(tmp_path / f"{name}-jobs")
        with_jobs = pool.ingest(sources, jobs=2)
        dask = lake.open(tmp_path / f"{name}-dask")
        with_dask = dask.ingest(sources, client=client)
        assert with_dask.ok and with_jobs.ok, str(with_dask)
        assert statuses(with_dask) == statuses(with_jobs)
        assert rows(dask) == rows(pool)
        again = dask.ingest(sources, client=client)
        assert [o.status for o in again.outcomes] == ["unchanged"] * len(with_jobs.outcomes)


@pytest.mark.slow  # kills and restarts workers: about 8 s
def test_a_session_whose_worker_is_killed_is_retried_once_and_lands_whole(
    fresh_cluster, rig_batch, tmp_path
):
    from distributed import Client

    expected = lake.open(tmp_path / "expected")
    assert expected.ingest(rig_batch, jobs=2).ok
    victim = "1200000011"
    flags = tmp_path / "flags"
    flags.mkdir()
    lk = lake.open(tmp_path / "lake")
    with Client(fresh_cluster) as client, Killer(flags) as killer:
        client.register_plugin(StallSpikes(victim, str(flags), every_time=False))
        report = lk.ingest(rig_batch, client=client)
    assert len(killer.killed) == 1
    assert report.ok, str(report)
    assert rows(lk) == rows(expected)
    # the killed attempt's half-written file is on disk, named by no version, until gc
    named = lk.snapshot().files("spikes", victim)
    folder = tmp_path / "lake" / "spikes" / f"session_id={victim}"
    on_disk = sorted(str(p) for p in folder.iterdir())
    assert len(named) == 1 and len(on_disk) == 2
    collected = lk.maintenance.collect_garbage()
    assert collected.garbage_files == 1
    assert sorted(str(p) for p in folder.iterdir()) == [named[0]]
    assert rows(lk) == rows(expected)


@pytest.mark.slow  # kills and restarts workers: about 8 s each
@pytest.mark.parametrize("events", ["counted", "lost"])
def test_a_session_whose_workers_keep_dying_fails_alone_and_leaves_nothing(
    fresh_cluster, rig_batch, tmp_path, monkeypatch, events
):
    from distributed import Client

    if events == "lost":  # the tries' start events never arrive: Dask's own limit stops it
        monkeypatch.setattr("lake.jobs.dask._Attempts.started", lambda self, event: None)
    victim = "1200000012"
    flags = tmp_path / "flags"
    flags.mkdir()
    lk = lake.open(tmp_path / "lake")
    with Client(fresh_cluster) as client, Killer(flags):
        client.register_plugin(StallSpikes(victim, str(flags), every_time=True))
        report = lk.ingest(rig_batch, client=client)
    failed = [(o.session_id, o.problem) for o in report.failed]
    assert failed == [
        (
            None,
            f"{rig_batch[3]}: its Dask worker died each time it was tried (killed, or out of "
            "memory); it is not tried again, and nothing of it landed",
        )
    ]
    assert len(report.landed) == 3
    assert victim not in lk.sessions()["session_id"].to_list()
    assert lk.sql(f"SELECT count(*) FROM units WHERE session_id = '{victim}'").item() == 0
    lk.maintenance.collect_garbage()
    assert not (tmp_path / "lake" / "spikes" / f"session_id={victim}").exists()


def test_two_coordinators_ingesting_into_one_lake_never_conflict(
    cluster, rig_batch, realdata, tmp_path
):
    from distributed import Client

    halves = [rig_batch[::2], rig_batch[1::2]]
    reports = [None, None]

    def ingest(i: int) -> None:
        with Client(cluster) as client:
            reports[i] = lake.open(tmp_path / "lake").ingest(halves[i], client=client)

    threads = [threading.Thread(target=ingest, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None and r.ok and len(r.landed) == 2 for r in reports), reports
    one_batch = lake.open(tmp_path / "one-batch")
    assert one_batch.ingest(rig_batch).ok
    assert rows(lake.open(tmp_path / "lake")) == rows(one_batch)


def test_import_lake_and_a_local_ingest_never_import_dask(tmp_path, realdata):
    code = (
        "import sys, lake; "
        "lake.open(sys.argv[1]).ingest([sys.argv[2]], jobs=1); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "lake"), str(realdata / "nwb")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_ingest_refuses_a_client_that_is_not_a_dask_client(tmp_path, realdata):
    with pytest.raises(TypeError) as caught:
        lake.open(tmp_path / "lake").ingest([realdata / "nwb"], client="tcp://127.0.0.1:8786")
    assert str(caught.value) == "client must be a dask.distributed.Client, not str"
    assert not (tmp_path / "lake").exists()


def _nplake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from lake.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _timeless(text: str, lake_dir=None) -> list[str]:
    """Lines with durations (and the lake's folder) made equal."""
    if lake_dir is not None:
        text = text.replace(str(lake_dir), "LAKE")
    text = re.sub(r"\d+\.\d s\b", "T s", text)
    return [re.sub(r"\d+:\d\d:\d\d$", "H:MM:SS", line.rstrip()) for line in text.splitlines()]


@pytest.mark.slow
def test_the_cli_with_a_scheduler_says_what_it_says_with_jobs(cluster, rig_batch, tmp_path):
    broken = tmp_path / "broken.nwb"
    broken.write_bytes(b"not an HDF5 file")
    sources = [*map(str, rig_batch), str(broken)]
    jobs = _nplake("ingest", *sources, "--lake", str(tmp_path / "jobs"), "--jobs", "2")
    dask = _nplake(
        "ingest", *sources, "--lake", str(tmp_path / "dask"), "--scheduler",
        cluster.scheduler_address,
    )  # fmt: skip
    assert (dask.returncode, jobs.returncode) == (1, 1)
    assert _timeless(dask.stdout, tmp_path / "dask") == _timeless(jobs.stdout, tmp_path / "jobs")
    assert f"FAILED    {broken}: not an HDF5 file (no HDF5 signature)" in dask.stdout
    # the progress bar: one line per session as it finishes (in finishing order), then the bar
    assert sorted(_timeless(dask.stderr)) == sorted(_timeless(jobs.stderr))
    assert _timeless(dask.stderr)[-1].endswith("5/5 sessions H:MM:SS")
    again = _nplake(
        "ingest", *map(str, rig_batch), "--lake", str(tmp_path / "dask"), "--scheduler",
        cluster.scheduler_address,
    )  # fmt: skip
    assert again.returncode == 0
    assert again.stdout.startswith("0 landed, 4 unchanged, 0 failed in ")


def test_a_session_written_where_the_coordinator_cannot_see_it_fails(tmp_path):
    """A local lake without a shared file system: the worker's files are not here."""
    from ingest import DecodeOptions
    from lake.jobs.dask import _check_visible
    from lake.jobs.work import Task, WorkResult
    from lake.storage.commit import PreparedSession
    from lake.storage.parquet import DataFile

    root = str(tmp_path / "lake")
    files = [
        DataFile("spikes", f"session_id=s1/part-x-{i}.parquet", 10, 1, (("s1", 1),), "k", "{}",
                 "s1", 0)
        for i in range(2)
    ]  # fmt: skip
    prepared = PreparedSession("s1", "ingest-1", {}, files, {"spikes": 2})
    task = Task(root, None, "/data/s1.nwb", "nwb", DecodeOptions(), "lease", None)
    result = WorkResult("/data/s1.nwb", "prepared", "s1", prepared)
    checked = _check_visible(result, task)
    assert (checked.status, checked.session_id, checked.prepared) == ("failed", "s1", None)
    assert checked.reason == (
        f"its worker wrote {root}/spikes/session_id=s1/part-x-0.parquet (and 1 more) where "
        "this process cannot see it: a local lake needs one file system shared by every Dask "
        "worker and this process at the same path (or put the lake on S3); nothing of it landed"
    )
    (tmp_path / "lake" / "spikes" / "session_id=s1").mkdir(parents=True)
    for f in files:
        (tmp_path / "lake" / "spikes" / f.path).write_bytes(b"x" * 10)
    assert _check_visible(result, task) is result
