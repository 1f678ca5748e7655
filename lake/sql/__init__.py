"""The lake's SQL: a sandboxed DuckDB connection over one snapshot (views, queries/, limits)."""

from __future__ import annotations

import duckdb

from lake.sql.sandbox import (
    QueryTooLarge,
    ReadOnlySql,
    SqlLimits,
    apply_limits,
    check_read_only,
    lock,
    too_large,
)
from lake.sql.views import view_fields
from lake.storage.snapshot import Snapshot
from lake.storage.store import Store

__all__ = [
    "QueryTooLarge",
    "ReadOnlySql",
    "SqlLimits",
    "check_read_only",
    "connect",
    "too_large",
    "view_fields",
]


def connect(
    store: Store, snapshot: Snapshot, *, limits: SqlLimits | None = None
) -> duckdb.DuckDBPyConnection:
    """A new sandboxed connection with every table and query view of `snapshot`.

    S3 files are read through s3fs registered on the connection, answering size and time
    questions from the snapshot (lake/sql/s3.py: DuckDB's httpfs cannot be installed here).
    """
    from lake.sql.views import create_views

    con = duckdb.connect(":memory:")
    apply_limits(con, limits or SqlLimits.from_env())
    if not store.is_local:
        from lake.sql.s3 import snapshot_filesystem

        s3 = store.files
        fs = snapshot_filesystem(s3.fsspec, store.root, snapshot.manifest.files, s3.arrow)
        con.register_filesystem(fs)
    files = create_views(con, snapshot)
    lock(con, files)
    return con
