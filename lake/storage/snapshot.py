"""A snapshot: the lake at one version, as every reader sees it.

Taken from the lake log (a checkpoint plus the entries after it): the sessions rows and, for
each table, its schema and the files holding its current rows. A log entry names whole
sessions only after all their files exist, so a snapshot is always consistent across tables,
whatever other writers are doing; nothing is retried or cross-checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pyarrow as pa

from lake.storage.log import LakeLog
from lake.storage.manifest import Manifest
from lake.storage.read import read_rows
from schemas import TABLES


@dataclass(frozen=True)
class TableState:
    """One table at a snapshot: its schema, its files (URIs) and how many rows they hold."""

    name: str
    schema: pa.Schema
    files: tuple[str, ...]
    rows: int
    #: Files grouped by the schema they were written with: [(schema, uris), ...].
    groups: tuple[tuple[pa.Schema, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """The lake at one version."""

    version: int
    timestamp_ms: int
    manifest: Manifest = field(repr=False)
    root: str = field(repr=False)
    sessions: pa.Table = field(repr=False)

    def files(self, table: str, session_id: str | None = None) -> tuple[str, ...]:
        """URIs of the files holding `table`'s current rows (of one session, if given).

        Open one with `Store.open_input`. Every reader that needs "this session's files" asks
        here, so how files are laid out stays the storage layer's business.
        """
        base = f"{self.root}/{table}"
        return tuple(f"{base}/{p}" for p in self.manifest.paths(table, session_id))

    def schema(self, table: str) -> pa.Schema:
        """The stored schema of `table` at this snapshot."""
        return self.manifest.schema(table)

    def rows(self, table: str) -> int:
        """Current rows of `table`."""
        if table == "sessions":
            return self.sessions.num_rows
        return self.tables[table].rows

    @cached_property
    def tables(self) -> dict[str, TableState]:
        """Every table's state."""
        out = {}
        for name in TABLES:
            rows = self.manifest.table_files(name)
            keys = rows.column("schema_key").to_pylist()
            paths = [f"{self.root}/{name}/{p}" for p in rows.column("path").to_pylist()]
            by_key: dict[str, list[str]] = {}
            for key, uri in zip(keys, paths, strict=True):
                by_key.setdefault(key, []).append(uri)
            groups = tuple(
                (self.manifest.schema_of_key(name, key), tuple(uris))
                for key, uris in by_key.items()
            )
            total = int(sum(rows.column("rows").to_pylist()))
            out[name] = TableState(name, self.manifest.schema(name), tuple(paths), total, groups)
        return out

    @property
    def ingest_ids(self) -> dict[str, str]:
        """Current ingest id per session id."""
        return dict(
            zip(
                self.sessions.column("session_id").to_pylist(),
                self.sessions.column("ingest_id").to_pylist(),
                strict=True,
            )
        )


def take_snapshot(log: LakeLog, version: int | None = None) -> Snapshot:
    """The lake at `version` (default: the newest)."""
    files = log.files
    manifest = log.manifest(version)
    sessions = read_rows(files, manifest, "sessions").sort_by("session_id")
    names = [c for c in TABLES["sessions"].column_names if c in sessions.column_names]
    extras = [c for c in sessions.column_names if c not in names]
    return Snapshot(
        manifest.version,
        manifest.timestamp_ms,
        manifest,
        files.root,
        sessions.select(names + extras),
    )
