"""A Dask LocalCluster for the distributed tests: two spawned worker processes on 127.0.0.1.

The shared cluster serves every test that leaves its workers as it found them; tests that kill
workers start their own (`fresh_cluster`). Both are closed by their fixtures: nothing is left
running.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingest.synth import generate_session, write_nwb, write_rig_session
from ingest.synth.rig import rig_folder_name


@contextmanager
def local_cluster() -> Iterator:
    """Two worker processes (spawned), one thread each, no dashboard, on 127.0.0.1."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
            # no dashboard, but the scheduler's HTTP routes (metrics, health) still bind a
            # port: 8787 unless told, and a second cluster there leaks a socket while it
            # moves to another one
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def cluster():
    with local_cluster() as running:
        yield running


@pytest.fixture
def fresh_cluster():
    with local_cluster() as running:
        yield running


@pytest.fixture
def client(cluster):
    from distributed import Client

    with Client(cluster) as connected:
        yield connected


@pytest.fixture(scope="session")
def rig_batch(tmp_path_factory) -> list[Path]:
    """Two raw rig session folders and two synthetic NWB files (one lake can hold them all)."""
    root = tmp_path_factory.mktemp("rig-batch")
    sources = []
    for i, sid in enumerate(["1200000001", "1200000002"]):
        session = generate_session(sid, seed=30 + i)
        folder = root / "rig" / rig_folder_name(session)
        write_rig_session(session, folder, barcode_interval_s=3.0, seed=i)
        sources.append(folder)
    for i, sid in enumerate(["1200000011", "1200000012"]):
        sources.append(write_nwb(generate_session(sid, seed=40 + i), root / f"synth-{i}.nwb"))
    return sources
