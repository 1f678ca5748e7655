"""The manifest: every table's current files at one lake version, and the log entry changing it.

A `Manifest` is columnar (one Arrow row per data file, with the rows of each session it holds),
so a lake of 10,000 sessions opens from one Parquet checkpoint in milliseconds. A `LogEntry` is
one commit: files added and removed per table, new table schemas, and which sessions landed or
were replaced (the facts `diff` and `history` report, without reading any data file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lake.storage.parquet import DataFile
from lake.storage.schema import (
    all_base_schemas,
    empty_table,
    schema_from_text,
    schema_key,
    schema_to_text,
)

SESSION_ROWS = pa.struct([("session_id", pa.string()), ("rows", pa.int64())])
FILE_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("path", pa.string()),
        ("size", pa.int64()),
        ("rows", pa.int64()),
        ("sessions", pa.list_(SESSION_ROWS)),
        ("schema_key", pa.string()),
        ("stats", pa.string()),
        ("partition", pa.string()),
        ("modification_time", pa.int64()),
        # set on tombstones: files removed at that version (kept for time travel until vacuum)
        ("removed_version", pa.int64()),
        ("removed_ms", pa.int64()),
    ]
)
_SEP = "\x1f"


def file_row(f: DataFile) -> dict:
    """A data file as a manifest row (and as JSON in a log entry)."""
    return {
        "table": f.table,
        "path": f.path,
        "size": f.size,
        "rows": f.rows,
        "sessions": [{"session_id": s, "rows": n} for s, n in f.sessions],
        "schema_key": f.schema_key,
        "stats": f.stats,
        "partition": f.partition,
        "modification_time": f.modification_time,
        "removed_version": None,
        "removed_ms": None,
    }


def data_file(row: dict) -> DataFile:
    """The DataFile of a manifest row."""
    return DataFile(
        table=row["table"],
        path=row["path"],
        size=int(row["size"]),
        rows=int(row["rows"]),
        sessions=tuple((s["session_id"], int(s["rows"])) for s in row["sessions"]),
        schema_key=row["schema_key"],
        stats=row["stats"],
        partition=row["partition"],
        modification_time=int(row["modification_time"]),
    )


@dataclass(frozen=True)
class SessionChange:
    """One session a commit landed: its new ingest, the one it replaced, rows per table."""

    session_id: str
    ingest_id: str
    replaced: str | None
    rows: dict[str, int]

    def to_json(self) -> dict:
        """JSON-ready form."""
        return {
            "session_id": self.session_id,
            "ingest_id": self.ingest_id,
            "replaced": self.replaced,
            "rows": self.rows,
        }

    @staticmethod
    def from_json(data: dict) -> SessionChange:
        """Parse `to_json`'s form."""
        return SessionChange(data["session_id"], data["ingest_id"], data["replaced"], data["rows"])


@dataclass(frozen=True)
class LogEntry:
    """One lake commit (one version): the changes to every table, and what they mean."""

    version: int
    timestamp_ms: int
    operation: str
    added: tuple[DataFile, ...] = ()
    removed: tuple[tuple[str, str], ...] = ()  # (table, path)
    schemas: dict[str, str] = field(default_factory=dict)  # table -> schema text, when changed
    landed: tuple[SessionChange, ...] = ()
    lease: str | None = None
    info: dict = field(default_factory=dict)
    #: Tombstones a vacuum deleted: (table, path) no version can read any more.
    forgotten: tuple[tuple[str, str], ...] = ()
    #: For each table this entry changes, the previous version that changed it (-1: none).
    previous: dict[str, int] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The entry as JSON (strict: no NaN or Infinity anywhere)."""
        body = {
            "version": self.version,
            "timestamp_ms": self.timestamp_ms,
            "operation": self.operation,
            "lease": self.lease,
            "schemas": self.schemas,
            "add": [file_row(f) for f in self.added],
            "remove": [{"table": t, "path": p} for t, p in self.removed],
            "forget": [{"table": t, "path": p} for t, p in self.forgotten],
            "landed": [s.to_json() for s in self.landed],
            "info": self.info,
            "previous": self.previous,
        }
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()

    @staticmethod
    def from_bytes(data: bytes) -> LogEntry:
        """Parse `to_bytes`' form."""
        body = json.loads(data)
        return LogEntry(
            version=body["version"],
            timestamp_ms=body["timestamp_ms"],
            operation=body["operation"],
            added=tuple(data_file(r) for r in body["add"]),
            removed=tuple((r["table"], r["path"]) for r in body["remove"]),
            forgotten=tuple((r["table"], r["path"]) for r in body.get("forget") or ()),
            schemas=body.get("schemas") or {},
            landed=tuple(SessionChange.from_json(s) for s in body.get("landed") or ()),
            lease=body.get("lease"),
            info=body.get("info") or {},
            previous=body.get("previous") or {},
        )

    def tables(self) -> set[str]:
        """Tables this entry changes."""
        return {f.table for f in self.added} | {t for t, _ in self.removed} | set(self.schemas)


@dataclass(frozen=True)
class Manifest:
    """The lake at one version: each table's schema and current files."""

    version: int
    timestamp_ms: int
    files: pa.Table  # FILE_SCHEMA
    schemas: dict[str, dict[str, str]]  # table -> {schema key: schema text}
    current: dict[str, str]  # table -> key of its current schema
    touched: dict[str, int] = field(default_factory=dict)  # table -> last version changing it
    #: Removed files not yet vacuumed (FILE_SCHEMA, removed_version set).
    tombstones: pa.Table = field(default_factory=lambda: empty_table(FILE_SCHEMA))
    #: Versions committed before this time (ms) were vacuumed, unless a release keeps them.
    vacuumed_before_ms: int = 0

    @staticmethod
    def empty() -> Manifest:
        """The manifest before version 0: every table with its starting schema, no files."""
        schemas, current = {}, {}
        for name, schema in all_base_schemas().items():
            key = schema_key(schema)
            schemas[name] = {key: schema_to_text(schema)}
            current[name] = key
        return Manifest(-1, 0, empty_table(FILE_SCHEMA), schemas, current)

    def schema(self, table: str) -> pa.Schema:
        """The current schema of `table`."""
        return _parse(self.schemas[table][self.current[table]])

    def schema_of_key(self, table: str, key: str) -> pa.Schema:
        """A schema `table` had (files keep the key of the schema they were written with)."""
        return _parse(self.schemas[table][key])

    def table_files(self, table: str) -> pa.Table:
        """The manifest rows of one table's files."""
        return self._by_table.get(table, empty_table(FILE_SCHEMA))

    def paths(self, table: str, session_id: str | None = None) -> list[str]:
        """Paths (relative to the table folder) of `table`'s files, or of one session's."""
        if session_id is None:
            return self.table_files(table).column("path").to_pylist()
        return list(self._session_paths.get((table, session_id), ()))

    def session_rows(self, table: str) -> dict[str, int]:
        """Rows per session in `table` (counted once per table: a commit asks for one table)."""
        counted = self._rows_per_session.get(table)
        if counted is None:
            counted = self._rows_per_session[table] = _rows_per_session(self.table_files(table))
        return dict(counted)

    def apply(self, entry: LogEntry) -> Manifest:
        """The manifest after `entry`."""
        files, tombstones = self.files, self.tombstones
        if entry.removed:
            gone = _is_in(files, entry.removed)
            dead = files.filter(gone)
            n = dead.num_rows
            dead = dead.set_column(
                dead.schema.get_field_index("removed_version"),
                "removed_version",
                pa.array([entry.version] * n, pa.int64()),
            ).set_column(
                dead.schema.get_field_index("removed_ms"),
                "removed_ms",
                pa.array([entry.timestamp_ms] * n, pa.int64()),
            )
            tombstones = pa.concat_tables([tombstones, dead])
            files = files.filter(pc.invert(gone))
        if entry.forgotten:
            tombstones = tombstones.filter(pc.invert(_is_in(tombstones, entry.forgotten)))
        if entry.added:
            added = pa.Table.from_pylist([file_row(f) for f in entry.added], schema=FILE_SCHEMA)
            files = pa.concat_tables([files, added])
        schemas = {t: dict(s) for t, s in self.schemas.items()}
        current = dict(self.current)
        for table, text in entry.schemas.items():
            key = schema_key(_parse(text))
            schemas.setdefault(table, {})[key] = text
            current[table] = key
        touched = {**self.touched, **dict.fromkeys(entry.tables(), entry.version)}
        horizon = max(self.vacuumed_before_ms, int(entry.info.get("vacuumed_before_ms", 0)))
        return Manifest(
            entry.version, entry.timestamp_ms, files, schemas, current, touched, tombstones, horizon
        )

    def chain(self, tables: Iterable[str]) -> dict[str, int]:
        """`LogEntry.previous` for an entry changing `tables` on top of this manifest."""
        return {t: self.touched.get(t, -1) for t in tables}

    def file(self, table: str, path: str) -> DataFile:
        """One file's record."""
        rows = self.table_files(table)
        hit = rows.filter(pc.equal(rows.column("path"), path)).to_pylist()
        if not hit:
            msg = f"{table}/{path} is not a current file"
            raise KeyError(msg)
        return data_file(hit[0])

    @cached_property
    def _by_table(self) -> dict[str, pa.Table]:
        # Grouped with polars, not pyarrow.compute: pyarrow imports pandas (~0.25 s) to check
        # every Python scalar it is given, and opening a lake must stay fast.
        if self.files.num_rows == 0:
            return {}
        groups = (
            pl.from_arrow(self.files.select(["table"]))
            .with_row_index("i")
            .group_by("table")
            .agg(pl.col("i"))
        )
        return {
            table: self.files.take(pl.Series(rows).cast(pl.Int64).to_arrow())
            for table, rows in groups.iter_rows()
        }

    @cached_property
    def _segments(self) -> pa.Table:
        """One row per (table, file, session): the sessions lists exploded."""
        lists = self.files.column("sessions").combine_chunks()
        parents = pc.list_parent_indices(lists)
        flat = pc.list_flatten(lists)
        return pa.table(
            {
                "table": self.files.column("table").take(parents),
                "path": self.files.column("path").take(parents),
                "session_id": flat.field("session_id"),
                "rows": flat.field("rows"),
            }
        )

    @cached_property
    def _session_paths(self) -> dict[tuple[str, str], tuple[str, ...]]:
        seg = self._segments
        out: dict[tuple[str, str], list[str]] = {}
        for t, p, s in zip(
            seg.column("table").to_pylist(),
            seg.column("path").to_pylist(),
            seg.column("session_id").to_pylist(),
            strict=True,
        ):
            out.setdefault((t, s), []).append(p)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def _rows_per_session(self) -> dict[str, dict[str, int]]:
        return {}  # filled per table by session_rows

    def files_holding(self, table: str, session_ids: Iterable[str]) -> list[DataFile]:
        """The files of `table` that hold rows of any of `session_ids`."""
        wanted = set(session_ids)
        paths = sorted({p for s in wanted for p in self._session_paths.get((table, s), ())})
        rows = self.table_files(table)
        hits = rows.filter(pc.is_in(rows.column("path"), value_set=pa.array(paths, pa.string())))
        return [data_file(r) for r in hits.to_pylist()]


def _rows_per_session(files: pa.Table) -> dict[str, int]:
    """Rows per session over FILE_SCHEMA rows (their sessions lists summed)."""
    lists = files.column("sessions").combine_chunks()
    if len(lists) == 0:
        return {}
    flat = pl.from_arrow(pc.list_flatten(lists)).struct.unnest()
    grouped = flat.group_by("session_id").agg(pl.col("rows").sum())
    return dict(grouped.iter_rows())


def _is_in(files: pa.Table, keys: Iterable[tuple[str, str]]) -> pa.ChunkedArray:
    """Which rows of a FILE_SCHEMA table are the (table, path) pairs `keys`."""
    joined = pc.binary_join_element_wise(files.column("table"), files.column("path"), _SEP)
    wanted = pa.array([f"{t}{_SEP}{p}" for t, p in keys], pa.string())
    return pc.is_in(joined, value_set=wanted)


def _parse(text: str) -> pa.Schema:
    return _SCHEMA_CACHE.get(text) or _SCHEMA_CACHE.setdefault(text, schema_from_text(text))


_SCHEMA_CACHE: dict[str, pa.Schema] = {}
