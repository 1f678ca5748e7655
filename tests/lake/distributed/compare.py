"""Compare two lakes row for row, leaving out columns that differ by design."""

from __future__ import annotations

import lake
from schemas import TABLES
from tests.lake.test_ingest import everything

#: `sessions` columns that name the ingest (its id and time): they differ between any two lakes.
INGEST = frozenset({"ingest_id", "ingested_at"})
#: ... and the columns that say where a session was read from (a path, a URI, its fingerprints).
PROVENANCE = INGEST | {"source_uri", "source_hash", "source_stat"}


def rows(lk: lake.Lake, drop: frozenset[str] = INGEST) -> dict[str, list]:
    """Every current row of every table, sorted, without the `drop` columns."""
    columns = {
        name: [c for c in lk.scan(name).collect_schema().names() if c not in drop]
        for name in TABLES
    }
    return everything(lk, columns)
