"""nplake's lake: open a lake, ingest sessions, ask SQL and polars questions across them.

Examples
--------
>>> import lake
>>> lk = lake.open("~/nplake-lake")  # doctest: +SKIP
>>> lk.ingest(["data/"])  # doctest: +SKIP
>>> lk.sql("SELECT structure_acronym, count(*) FROM units_annotated GROUP BY 1")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from lake.jobs.report import IngestReport, Outcome
from lake.lake import Lake
from lake.location import default_lake_uri
from lake.storage import Store
from schemas.errors import (
    CommitConflict,
    DecodeError,
    ExportError,
    InconsistentSession,
    InvalidSessionId,
    LakeError,
    NplakeError,
    QueryTooLarge,
    ReadOnlySql,
    SchemaViolation,
    UnknownSession,
    UnknownTable,
    UnsupportedTable,
)

__all__ = [
    "CommitConflict",
    "DecodeError",
    "ExportError",
    "InconsistentSession",
    "IngestReport",
    "InvalidSessionId",
    "Lake",
    "LakeError",
    "NplakeError",
    "Outcome",
    "QueryTooLarge",
    "ReadOnlySql",
    "SchemaViolation",
    "UnknownSession",
    "UnknownTable",
    "UnsupportedTable",
    "default_lake_uri",
    "open",
]


def open(
    uri: str | os.PathLike | None = None, *, storage_options: Mapping[str, str] | None = None
) -> Lake:
    """Open the lake at `uri`: a local folder (created on first ingest) or `s3://bucket/path`.

    Without `uri`: `$NPLAKE_LAKE`, else the default folder (see `default_lake_uri`).
    """
    if uri is not None and not isinstance(uri, str | os.PathLike):
        msg = f"lake.open takes a folder or an s3:// URI, not {type(uri).__name__}"
        raise TypeError(msg)
    return Lake(Store.at(uri if uri is not None else default_lake_uri(), storage_options))
