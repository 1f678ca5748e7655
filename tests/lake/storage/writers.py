"""Writers the kill tests run in their own processes, and sessions whose rows name their ingest.

Every row a `marked_bundle` writes carries its attempt number (units.attempt, spikes.amplitude),
so a reader can tell which ingest any row it sees came from.
"""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import pyarrow as pa

from schemas import TABLES, SessionBundle, StreamSource
from tests.lake.builders import make_bundle

#: Steps of a commit at which a writer can be made to die like `kill -9` (os._exit).
DIE_AT = (
    "preparing",  # halfway through writing a session's spikes files
    "prepared",  # every session prepared, nothing committed
    "group_files",  # after the first shared-table file of the group
    "before_append",  # every file written, the log entry not yet
    "after_append",  # committed, neither checkpoint nor Delta tables written
    "publishing",  # committed, some Delta tables published
    "published",  # everything written, the lease still held
)


def marked_bundle(session_id: str, attempt: int, n_units: int = 4) -> SessionBundle:
    """A session whose units and spikes rows all carry `attempt`."""
    base = make_bundle(session_id, seed=attempt, n_units=n_units, batch_rows=200)
    spikes = base.table("spikes").drop_columns(["session_id"])
    spikes = spikes.set_column(
        spikes.schema.get_field_index("amplitude"),
        "amplitude",
        pa.array(np.full(spikes.num_rows, float(attempt))),
    )
    units = base.tables["units"].append_column(
        "attempt", pa.array([attempt] * base.num_rows("units"), pa.int64())
    )
    tables = {
        **base.tables,
        "units": units,
        "spikes": StreamSource(
            spikes.schema, spikes.num_rows, lambda: iter(spikes.to_batches(200))
        ),
    }
    return SessionBundle(session_id, tables).validate()


def _die() -> None:
    os._exit(9)


def install_death(step: str) -> None:
    """Make this process die at `step` of its next commit."""
    from lake.storage import commit as commit_module
    from lake.storage import publish as publish_module
    from lake.storage.leases import Lease
    from lake.storage.log import LakeLog

    if step == "preparing":
        real_write = commit_module.write_data_file

        def write(files, table, rel, batches, *args, **kwargs):
            def dying():
                for i, batch in enumerate(batches):
                    if table == "spikes" and i == 2:
                        _die()
                    yield batch

            return real_write(files, table, rel, dying(), *args, **kwargs)

        commit_module.write_data_file = write
    elif step == "prepared":
        real_group = commit_module.commit_group

        def group(*args, **kwargs):
            _die()
            return real_group(*args, **kwargs)

        commit_module.commit_group = group
        import lake.storage as storage

        storage.commit_group = group
    elif step == "group_files":
        real_group_file = commit_module._write_group_file

        def group_file(*args, **kwargs):
            real_group_file(*args, **kwargs)
            _die()

        commit_module._write_group_file = group_file
    elif step in ("before_append", "after_append"):
        real_append = LakeLog.append

        def append(self, entry):
            if step == "before_append":
                _die()
            done = real_append(self, entry)
            _die()
            return done

        LakeLog.append = append
    elif step == "publishing":
        real_apply = publish_module._apply
        calls = []

        def apply(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                _die()
            return real_apply(*args, **kwargs)

        publish_module._apply = apply
    elif step == "published":

        def leave(self, *exc):
            _die()

        Lease.__exit__ = leave
    else:
        msg = f"unknown step {step!r}"
        raise ValueError(msg)


def commit_and_die(root: str, session_ids: list[str], attempt: int, step: str) -> None:
    """Commit marked sessions, dying at `step` (this function never returns)."""
    from lake.storage import Store, commit_bundles

    install_death(step)
    commit_bundles(Store.at(root), [marked_bundle(s, attempt) for s in session_ids])
    sys.exit(3)  # not reached: the process dies first


def churn(root: str, worker: int, session_ids: list[str], rounds: int) -> None:
    """Commit random groups of marked sessions over and over (until killed)."""
    from lake.storage import Store, commit_bundles

    rng = random.Random(worker)
    store = Store.at(root)
    for k in range(rounds):
        chosen = sorted(rng.sample(session_ids, rng.randint(1, 2)))
        attempt = worker * 100_000 + k
        commit_bundles(store, [marked_bundle(s, attempt) for s in chosen])


def optimize_and_die(root: str, step: str) -> None:
    """Optimize the lake, dying before or after its commit point (never returns)."""
    from lake.storage import Store
    from lake.storage.log import LakeLog
    from lake.storage.maintenance import optimize

    real_append = LakeLog.append

    def append(self, entry):
        if step == "before_append":
            _die()
        real_append(self, entry)
        _die()

    LakeLog.append = append
    optimize(Store.at(root))
    sys.exit(3)


def optimize_repeatedly(root: str, rounds: int) -> None:
    """Run optimize `rounds` times (racing other writers)."""
    from lake.storage import Store
    from lake.storage.maintenance import optimize

    for _ in range(rounds):
        optimize(Store.at(root))


def data_files(store) -> set[str]:
    """Every Parquet data file on disk, relative to the lake root."""
    return {
        f.path
        for name in TABLES
        for f in store.files.list(name)
        if f.path.endswith(".parquet") and "/_delta_log/" not in f.path
    }


def named_files(store) -> set[str]:
    """Every file the newest version names: current files and tombstones kept for time travel."""
    manifest = store.log.manifest()
    out = set()
    for rows in (manifest.files, manifest.tombstones):
        pairs = zip(rows["table"].to_pylist(), rows["path"].to_pylist(), strict=True)
        out |= {f"{t}/{p}" for t, p in pairs}
    return out
