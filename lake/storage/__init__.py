"""Delta tables on disk or S3: locations, creation from specs, fast per-session appends.

Session-scoped tables are partitioned by (session_id, ingest_id): the rows of one ingest of one
session live in their own partition, so the commit protocol (lake/commit.py) can make them
visible or drop them by naming partitions, without rewriting any file.

Appends write Parquet with pyarrow (zstd; byte-stream-split floats, delta-packed integers) and
commit the files as Delta add actions: that runs at the speed of `pyarrow.parquet.write_table`,
about 2.5x faster than delta-rs' own writer for a spikes table (measured in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable, Field, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties

from schemas import TABLES, LakeError, SchemaViolation, UnknownTable, UnsupportedTable
from schemas.ids import validate_session_id
from schemas.spec import DESCRIPTION, UNIT, TableSpec

INGEST_ID = "ingest_id"
INGEST_FIELD = pa.field(
    INGEST_ID,
    pa.string(),
    nullable=False,
    metadata={DESCRIPTION: "Ingest that wrote the row; only current ingests are shown", UNIT: ""},
)
#: Rows per Parquet file written by an append (a session's spikes may span several files).
MAX_ROWS_PER_FILE = 32 * 1024 * 1024
#: Tries of a commit that lost a race with another session's commit (e.g. one that added
#: columns to the table: Delta lets no commit read before it through).
COMMIT_ATTEMPTS = 8
#: Rows per Parquet row group, and for the spikes table. Spikes are sorted by (unit_id, time),
#: so a row group's unit_id statistics say which units it holds: readers (lake.analysis, DuckDB)
#: skip the row groups of units a question does not ask about. Small groups make that skipping
#: fine-grained (a unit has ~10^3-10^5 spikes); see docs/analysis.md for the measurements.
ROW_GROUP_ROWS = 1024 * 1024
SPIKE_ROW_GROUP_ROWS = 128 * 1024
_UNSUPPORTED_FEATURES = {"deletionVectors", "columnMapping", "timestampNtz", "typeWidening"}


def row_group_rows(name: str) -> int:
    """Rows per Parquet row group written for table `name`."""
    return SPIKE_ROW_GROUP_ROWS if name == "spikes" else ROW_GROUP_ROWS


def partition_columns(spec: TableSpec) -> list[str]:
    """Partition columns of a table: sessions by session_id, the rest also by ingest_id."""
    return ["session_id"] if spec.name == "sessions" else ["session_id", INGEST_ID]


def delta_schema(spec: TableSpec) -> pa.Schema:
    """The Arrow schema a table is created with (spec columns, plus ingest_id when scoped)."""
    fields = list(spec.arrow_schema)
    if spec.name != "sessions":
        fields.append(INGEST_FIELD)
    return pa.schema(fields, metadata=spec.arrow_schema.metadata)


@dataclass(frozen=True)
class Store:
    """Where a lake lives: its root URI, storage options and a filesystem for Parquet writes."""

    root: str
    storage_options: Mapping[str, str] | None = None

    @staticmethod
    def at(uri: str | os.PathLike, storage_options: Mapping[str, str] | None = None) -> Store:
        """A store for `uri`: a local folder (made absolute) or an `s3://` URI."""
        text = str(uri)
        if "://" in text and not text.startswith("file://"):
            scheme = urlparse(text).scheme
            if scheme not in {"s3", "s3a"}:
                msg = f"unsupported lake URI scheme {scheme!r} (use a folder or s3://bucket/path)"
                raise LakeError(msg)
            return Store(text.rstrip("/"), dict(storage_options or {}))
        local = Path(text.removeprefix("file://")).expanduser().resolve()
        return Store(str(local), dict(storage_options or {}) or None)

    @property
    def is_local(self) -> bool:
        """Whether the lake is a local folder."""
        return "://" not in self.root

    def table_uri(self, name: str) -> str:
        """URI of table `name`."""
        if name not in TABLES:
            msg = f"unknown table {name!r}; tables: {', '.join(TABLES)}"
            raise UnknownTable(msg)
        return f"{self.root}/{name}"

    def options(self) -> dict[str, str] | None:
        """Storage options for deltalake and polars (None for local folders)."""
        return dict(self.storage_options) if self.storage_options else None

    # ------------------------------------------------------------------ tables
    def exists(self) -> bool:
        """Whether this location holds an nplake lake (its sessions table exists)."""
        try:
            DeltaTable(self.table_uri("sessions"), storage_options=self.options())
        except TableNotFoundError:
            return False
        return True

    def ensure_tables(self) -> None:
        """Create every missing table from its spec (idempotent; safe to race)."""
        if self.is_local:
            Path(self.root).mkdir(parents=True, exist_ok=True)
        for name, spec in TABLES.items():
            uri = self.table_uri(name)
            try:
                DeltaTable(uri, storage_options=self.options())
                continue
            except TableNotFoundError:
                pass
            try:
                DeltaTable.create(
                    uri,
                    delta_schema(spec),
                    partition_by=partition_columns(spec),
                    mode="ignore",
                    name=name,
                    description=spec.description,
                    storage_options=self.options(),
                )
            except Exception:  # another process created it first
                DeltaTable(uri, storage_options=self.options())

    def table(self, name: str, version: int | None = None) -> DeltaTable:
        """Open table `name` (at `version`), refusing Delta features we cannot read right."""
        uri = self.table_uri(name)
        try:
            dt = DeltaTable(uri, version=version, storage_options=self.options())
        except TableNotFoundError:
            msg = f"{uri} is not a Delta table: is {self.root} an nplake lake?"
            raise LakeError(msg) from None
        check_protocol(name, dt)
        return dt

    # ----------------------------------------------------------------- appends
    def append(
        self,
        name: str,
        session_id: str,
        ingest_id: str,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
    ) -> int:
        """Append one ingest's rows of one session to table `name`; returns rows written.

        The files land in partition (session_id, ingest_id) and are committed in one Delta
        transaction; nothing is visible to readers until the sessions row names this ingest.
        New extra columns are added to the table schema first (a metadata-only commit).
        """
        dt = self.table(name)
        table_schema = evolve_schema(dt, name, schema)
        data_schema = pa.schema(
            [f for f in table_schema if f.name not in ("session_id", INGEST_ID)]
        )
        rel_dir = f"session_id={session_id}/{INGEST_ID}={ingest_id}"
        partition = {"session_id": session_id, INGEST_ID: ingest_id}
        actions: list[AddAction] = []
        rows = 0
        for part in _chunked_files(batches, data_schema, MAX_ROWS_PER_FILE):
            rel = f"{rel_dir}/part-{uuid.uuid4().hex}.zstd.parquet"
            action, n = self._write_parquet(name, rel, part, partition)
            actions.append(action)
            rows += n
        if actions:
            metadata = {"nplake.session_id": session_id, "nplake.ingest_id": ingest_id}
            for attempt in range(COMMIT_ATTEMPTS):
                try:
                    dt.create_write_transaction(
                        actions,
                        mode="append",
                        schema=dt.schema(),
                        partition_by=partition_columns(TABLES[name]),
                        commit_properties=CommitProperties(custom_metadata=metadata),
                    )
                    break
                except CommitFailedError:  # another session's commit came first: rebase
                    if attempt == COMMIT_ATTEMPTS - 1:
                        raise
                    dt.update_incremental()
                    evolve_schema(dt, name, schema)  # keeps its columns; re-checks ours
        return rows

    def _write_parquet(
        self, name: str, rel: str, batches: Iterator[pa.RecordBatch], partition: dict[str, str]
    ) -> tuple[AddAction, int]:
        """Write one Parquet file of a partition; its add action and row count."""
        first = next(batches)
        fs, path = self._filesystem(f"{self.table_uri(name)}/{rel}")
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        options = parquet_options(first.schema, name)
        group_rows = row_group_rows(name)
        sorting = sorting_columns(first.schema, TABLES[name].sort_by)
        with pq.ParquetWriter(
            path, first.schema, filesystem=fs, sorting_columns=sorting, **options
        ) as writer:
            writer.write_batch(first, row_group_size=group_rows)
            for batch in batches:
                writer.write_batch(batch, row_group_size=group_rows)
        metadata = pq.read_metadata(path, filesystem=fs)
        size = fs.get_file_info(path).size
        action = AddAction(
            path=rel,
            size=size,
            partition_values=partition,
            modification_time=int(time.time() * 1000),
            data_change=True,
            stats=json.dumps(file_stats(metadata)),
        )
        return action, metadata.num_rows

    def open_input(self, uri: str) -> pa.NativeFile:
        """Open one of the lake's files (a URI from `Snapshot.files`) for random-access reads."""
        fs, path = self._filesystem(uri)
        return fs.open_input_file(path)

    def _filesystem(self, uri: str) -> tuple[pafs.FileSystem, str]:
        if self.is_local:
            return pafs.LocalFileSystem(), uri
        opts = {k.upper(): v for k, v in (self.storage_options or {}).items()}
        endpoint = opts.get("AWS_ENDPOINT_URL") or opts.get("AWS_ENDPOINT")
        scheme = "https"
        if endpoint and endpoint.startswith("http://"):
            scheme = "http"
        fs = pafs.S3FileSystem(
            access_key=opts.get("AWS_ACCESS_KEY_ID"),
            secret_key=opts.get("AWS_SECRET_ACCESS_KEY"),
            session_token=opts.get("AWS_SESSION_TOKEN"),
            region=opts.get("AWS_REGION") or opts.get("AWS_DEFAULT_REGION"),
            endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
            scheme=scheme,
        )
        return fs, uri.split("://", 1)[1]


def table_schema(dt: DeltaTable) -> pa.Schema:
    """A Delta table's current schema as a pyarrow schema (field metadata included)."""
    return pa.schema(dt.schema().to_arrow())


def check_protocol(name: str, dt: DeltaTable) -> None:
    """Refuse tables using Delta features that file-list readers would misread."""
    protocol = dt.protocol()
    features = set(protocol.reader_features or ()) | set(protocol.writer_features or ())
    bad = sorted(features & _UNSUPPORTED_FEATURES)
    if bad or protocol.min_reader_version > 3:
        msg = (
            f"table {name} uses Delta features {bad or protocol.min_reader_version} that nplake "
            "cannot read correctly; nplake supports reader version 1 tables without deletion "
            "vectors or column mapping (as delta-rs writes them)"
        )
        raise UnsupportedTable(msg)


def new_columns(dt: DeltaTable, name: str, incoming: pa.Schema) -> list[pa.Field]:
    """The incoming columns table `name` lacks; SchemaViolation for a type it cannot take.

    Type clashes between the lake and this session (e.g. a metric stored as int64 that now
    arrives as text) name the column and both types; `reconcile_batch` handles the safe ones
    (int -> float). Changes nothing, so a commit checks every table before writing any.
    """
    existing = {f.name.lower(): f for f in table_schema(dt)}
    new_fields = []
    for field in incoming:
        if field.name in ("session_id", INGEST_ID):
            continue
        known = existing.get(field.name.lower())
        if known is None:
            new_fields.append(field)
        elif known.name != field.name:
            msg = f"column {field.name!r} differs only in case from {known.name!r} in the lake"
            raise SchemaViolation(msg, table=name, column=field.name)
        elif not _compatible(field.type, known.type):
            msg = f"the lake stores this column as {known.type}; this session has {field.type}"
            raise SchemaViolation(msg, table=name, column=field.name)
    return new_fields


def evolve_schema(dt: DeltaTable, name: str, incoming: pa.Schema) -> pa.Schema:
    """Add incoming extra columns to the table schema (see `new_columns`); its new schema."""
    current = table_schema(dt)
    new_fields = new_columns(dt, name, incoming)
    if new_fields:
        delta_fields = [Field.from_arrow(f.with_nullable(True)) for f in new_fields]
        try:
            dt.alter.add_columns(delta_fields)
        except Exception:  # raced with another writer adding the same columns: re-check
            dt.update_incremental()
            current = table_schema(dt)
            missing = [f.name for f in new_fields if f.name not in current.names]
            if missing:
                raise
        dt.update_incremental()
        current = table_schema(dt)
    return current


def _compatible(incoming: pa.DataType, stored: pa.DataType) -> bool:
    if pa.types.is_dictionary(incoming):
        incoming = incoming.value_type
    if incoming == stored or pa.types.is_null(incoming):
        return True
    if pa.types.is_integer(incoming) and pa.types.is_floating(stored):
        return True
    if pa.types.is_large_string(stored) and pa.types.is_string(incoming):
        return True
    return (
        pa.types.is_list(incoming)
        and pa.types.is_list(stored)
        and _compatible(incoming.value_type, stored.value_type)
    )


def reconcile_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch to the table's data schema: add missing columns as nulls, widen ints."""
    arrays = []
    n = batch.num_rows
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            arrays.append(pa.nulls(n, field.type))
            continue
        column = batch.column(index)
        same = column.type == field.type or (
            pa.types.is_dictionary(column.type) and column.type.value_type == field.type
        )  # Parquet stores dictionary-encoded text as plain text
        arrays.append(column if same else column.cast(field.type))
    fields = [f.with_type(a.type) for f, a in zip(schema, arrays, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=schema.metadata))


def _chunked_files(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, max_rows: int
) -> Iterator[Iterator[pa.RecordBatch]]:
    """Split a batch stream into groups of at most ~max_rows rows, one group per file."""
    iterator = iter(batches)
    pending: list[pa.RecordBatch] = []

    def refill() -> bool:
        for batch in iterator:
            if batch.num_rows:
                pending.append(reconcile_batch(batch, schema))
                return True
        return False

    while pending or refill():

        def one_file() -> Iterator[pa.RecordBatch]:
            rows = 0
            while pending or refill():
                batch = pending.pop(0)
                if rows and rows + batch.num_rows > max_rows:
                    pending.insert(0, batch)
                    return
                rows += batch.num_rows
                yield batch

        yield one_file()


def sorting_columns(schema: pa.Schema, sort_by: tuple[str, ...]) -> list[pq.SortingColumn] | None:
    """The Parquet sorting_columns declaring a file sorted by `sort_by` (None if not stored).

    Every committed table is sorted by its spec's sort_by (schemas.conform sorts whole tables
    and refuses unsorted streams before commit), so each file says so in its row-group
    metadata; lake.analysis relies on it for spikes (sorted by unit_id, then time).
    """
    names = schema.names
    if not sort_by or any(c not in names for c in sort_by):
        return None
    return [pq.SortingColumn(names.index(c)) for c in sort_by]


#: Columns compressed with LZ4 instead of zstd, per table: the spike times every aligned query
#: decodes. On byte-stream-split float64 times LZ4 is within 1-5 % of zstd's size (measured on
#: the real NWB files and the synthetic corpus) and decodes about 1.5-3x faster.
LZ4_COLUMNS = {"spikes": ("time",)}


def parquet_options(schema: pa.Schema, table: str | None = None) -> dict:
    """Writer options of table `table`: zstd, byte-stream-split floats, delta-packed ints.

    Text is dictionary-encoded, the columns in LZ4_COLUMNS use lz4, and statistics are written
    per row group and per page.
    """
    encodings = {}
    dictionary = []
    for field in schema:
        t = field.type
        if pa.types.is_floating(t):
            encodings[field.name] = "BYTE_STREAM_SPLIT"
        elif pa.types.is_integer(t):
            encodings[field.name] = "DELTA_BINARY_PACKED"
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            dictionary.append(field.name)
    fast = LZ4_COLUMNS.get(table or "", ())
    return {
        "compression": {f.name: "lz4" if f.name in fast else "zstd" for f in schema},
        "use_dictionary": dictionary,
        "column_encoding": encodings,
        "write_statistics": True,
        # min/max per page (at most 20,000 rows each): DuckDB skips the pages of a row group
        # that cannot hold the units a query joins on; costs about 0.1 % of the file
        "write_page_index": True,
    }


def file_stats(metadata: pq.FileMetaData) -> dict:
    """Delta file statistics (rows; min, max and nulls of numeric columns) from Parquet metadata."""
    stats: dict = {
        "numRecords": metadata.num_rows,
        "minValues": {},
        "maxValues": {},
        "nullCount": {},
    }
    schema = metadata.schema.to_arrow_schema()
    for col_index, field in enumerate(schema):
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        if not numeric and not pa.types.is_boolean(field.type):
            continue
        lo = hi = None
        nulls = 0
        complete = True
        for rg in range(metadata.num_row_groups):
            s = metadata.row_group(rg).column(col_index).statistics
            if s is None:
                complete = False
                break
            nulls += s.null_count or 0
            if s.has_min_max and numeric:
                lo = s.min if lo is None else min(lo, s.min)
                hi = s.max if hi is None else max(hi, s.max)
        if not complete:
            continue
        stats["nullCount"][field.name] = nulls
        if lo is not None:
            stats["minValues"][field.name] = lo
            stats["maxValues"][field.name] = hi
    return stats


def write_sessions_row(
    dt: DeltaTable, row: pa.Table, session_id: str, custom_metadata: dict
) -> None:
    """Replace one session's row in the sessions table, pinned to `dt`'s version (atomic)."""
    validate_session_id(session_id)
    write_deltalake(
        dt,
        row,
        mode="overwrite",
        predicate=f"session_id = '{session_id}'",
        schema_mode="merge",
        commit_properties=CommitProperties(custom_metadata=custom_metadata),
    )
