"""The storage room: the lake's files, its log, commits, publishing, maintenance, history.

`Store` is the way in; `commit_bundles` lands decoded sessions without the batch runner (tests,
benchmarks, tools that make their own bundles), through the same group commit ingest uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lake.storage.store import Store
from schemas import SchemaViolation

if TYPE_CHECKING:
    from lake.storage.commit import GroupResult
    from schemas import SessionBundle

__all__ = ["GroupResult", "Store", "commit_bundle", "commit_bundles"]


def commit_bundles(
    store: Store,
    bundles: Sequence[SessionBundle],
    *,
    source_hash: str = "",
    pipeline_version: str = "",
) -> GroupResult:
    """Commit sessions as one lake version (each whole or not at all), then publish it."""
    from lake.storage.commit import commit_group, delete_files, prepare_session
    from lake.storage.leases import Lease

    with Lease(store.files) as lease:
        prepared = []
        try:
            for bundle in bundles:
                prepared.append(
                    prepare_session(
                        store.files,
                        bundle,
                        lease=lease.id,
                        source_hash=source_hash,
                        pipeline_version=pipeline_version,
                    )
                )
            result, manifest = commit_group(
                store.files, store.log, prepared, lease=lease.id, held=lease.held
            )
        except BaseException:
            for p in prepared:
                delete_files(store.files, p.files)
            raise
    if manifest is not None:
        problem = store.finish_commit(manifest)
        if problem:
            raise OSError(problem)
    if result.failed:
        raise SchemaViolation("; ".join(result.failed.values()))
    return result


def commit_bundle(
    store: Store, bundle: SessionBundle, *, source_hash: str = "", pipeline_version: str = ""
) -> GroupResult:
    """Commit one session as one lake version (see `commit_bundles`)."""
    return commit_bundles(
        store, [bundle], source_hash=source_hash, pipeline_version=pipeline_version
    )
