"""Writing the lake's Parquet data files, and the facts about each file the log records.

Files are written with pyarrow (zstd; byte-stream-split floats, delta-packed integers,
dictionary-encoded text; LZ4 for spike times), which runs at the speed of
`pyarrow.parquet.write_table` and about 2.5× faster than delta-rs' own writer on a spikes table
(docs/benchmarks.md). Each file's row count, rows per session and Delta statistics are taken
from what was written, and the statistics are always valid JSON: a non-finite minimum or
maximum is left out (delta-rs cannot parse `Infinity`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.storage.files import Files
from schemas import TABLES

#: Rows per Parquet file written by an append (a session's spikes may span several files).
MAX_ROWS_PER_FILE = 32 * 1024 * 1024
#: Rows per Parquet row group, and for the spikes table. Spikes are sorted by (unit_id, time),
#: so a row group's unit_id statistics say which units it holds: readers (lake.analysis, DuckDB)
#: skip the row groups of units a question does not ask about. Small groups make that skipping
#: fine-grained (a unit has ~10^3-10^5 spikes); see docs/analysis.md for the measurements.
ROW_GROUP_ROWS = 1024 * 1024
SPIKE_ROW_GROUP_ROWS = 128 * 1024
#: Columns compressed with LZ4 instead of zstd, per table: the spike times every aligned query
#: decodes. On byte-stream-split float64 times LZ4 is within 1-5 % of zstd's size (measured on
#: the real NWB files and the synthetic corpus) and decodes about 1.5-3x faster.
LZ4_COLUMNS = {"spikes": ("time",)}
#: Delta readers compare string statistics by prefix; longer values are left out.
_MAX_STAT_TEXT = 32


@dataclass(frozen=True)
class DataFile:
    """One data file of a table, as the lake log records it.

    `path` is relative to the table's folder; `sessions` gives the rows of each session the
    file holds (one session for the per-session tables, many for the others); `partition` is
    the session id of a per-session table's file (its Delta partition value), else None.
    """

    table: str
    path: str
    size: int
    rows: int
    sessions: tuple[tuple[str, int], ...]
    schema_key: str
    stats: str
    partition: str | None
    modification_time: int


def row_group_rows(name: str) -> int:
    """Rows per Parquet row group written for table `name`."""
    return SPIKE_ROW_GROUP_ROWS if name == "spikes" else ROW_GROUP_ROWS


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


def write_data_file(
    files: Files,
    table: str,
    rel: str,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    *,
    schema_key: str,
    sort_by: tuple[str, ...],
    partition: str | None = None,
) -> DataFile:
    """Write one Parquet file of `table` at `rel` (relative to the table folder).

    `batches` must already have `schema` (see `reconcile_batch`). With `partition` set the file
    holds that one session (its session_id lives in the folder name, not the file); otherwise
    the rows carry a session_id column and are counted per session as they pass.
    """
    counts: dict[str, int] = {}
    try:
        with (
            files.open_output(f"{table}/{rel}") as sink,
            pq.ParquetWriter(
                sink,
                schema,
                sorting_columns=sorting_columns(schema, sort_by),
                **parquet_options(schema, table),
            ) as writer,
        ):
            group_rows = row_group_rows(table)
            for chunk in _row_groups(batches, schema, group_rows):
                if partition is None:
                    _count_sessions(chunk, counts)
                writer.write_table(chunk, row_group_size=group_rows)
        with files.open_input(f"{table}/{rel}") as handle:
            metadata = pq.read_metadata(handle)
    except BaseException:  # a half-written file is nobody's: remove it now
        files.delete([f"{table}/{rel}"])
        raise
    rows = metadata.num_rows
    sessions = ((partition, rows),) if partition is not None else tuple(sorted(counts.items()))
    return DataFile(
        table=table,
        path=rel,
        size=files.size(f"{table}/{rel}"),
        rows=rows,
        sessions=sessions,
        schema_key=schema_key,
        stats=json.dumps(file_stats(metadata), allow_nan=False),
        partition=partition,
        modification_time=int(time.time() * 1000),
    )


def _row_groups(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, rows: int
) -> Iterator[pa.Table]:
    """Batches gathered into tables of `rows` rows (the last may be shorter): one row group each.

    Small batches (one per session in a group file) would otherwise each become a row group,
    and a 100-row sessions file of 100 row groups reads 50x slower than one of one.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending, schema=schema)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending, schema=schema)


def _count_sessions(batch: pa.Table, counts: dict[str, int]) -> None:
    column = batch.column(batch.schema.get_field_index("session_id"))
    for item in pc.value_counts(column).to_pylist():
        counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]


def file_stats(metadata: pq.FileMetaData) -> dict:
    """Delta file statistics from Parquet metadata: rows; min, max and nulls per column.

    Numeric and boolean columns get null counts, numeric ones finite min/max; `session_id`
    gets its min/max when short enough (so plain Delta readers prune files by session).
    """
    stats: dict = {"numRecords": metadata.num_rows, "minValues": {}, "maxValues": {}}
    stats["nullCount"] = {}
    schema = metadata.schema.to_arrow_schema()
    for index, field in enumerate(schema):
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        text = field.name == "session_id" and pa.types.is_string(field.type)
        if not (numeric or text or pa.types.is_boolean(field.type)):
            continue
        found = _column_range(metadata, index)
        if found is None:
            continue
        lo, hi, nulls = found
        stats["nullCount"][field.name] = nulls
        if lo is None or not (numeric or text):
            continue
        if numeric and not (_finite(lo) and _finite(hi)):
            continue  # JSON has no Infinity/NaN; a reader then simply cannot prune on it
        if text and (len(lo) > _MAX_STAT_TEXT or len(hi) > _MAX_STAT_TEXT):
            continue
        stats["minValues"][field.name] = lo
        stats["maxValues"][field.name] = hi
    return stats


def _column_range(metadata: pq.FileMetaData, index: int):
    """(min, max, null count) of one column over every row group; None if any lacks stats."""
    lo = hi = None
    nulls = 0
    for rg in range(metadata.num_row_groups):
        s = metadata.row_group(rg).column(index).statistics
        if s is None:
            return None
        nulls += s.null_count or 0
        if s.has_min_max:
            lo = s.min if lo is None else min(lo, s.min)
            hi = s.max if hi is None else max(hi, s.max)
    return lo, hi, nulls


def _finite(value) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def reconcile_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch to a table's data schema: add missing columns as nulls, widen ints."""
    arrays = []
    n = batch.num_rows
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            arrays.append(pa.nulls(n, field.type))
            continue
        column = batch.column(index)
        arrays.append(column if column.type == field.type else column.cast(field.type))
    fields = [f.with_type(a.type) for f, a in zip(schema, arrays, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=schema.metadata))


def chunked_files(
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


def sort_for_table(table: pa.Table, name: str) -> pa.Table:
    """Rows of several sessions in file order: by session, then the table's sort order."""
    keys = ["session_id", *TABLES[name].sort_by]
    if table.num_rows < 2:
        return table
    order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys])
    if np.array_equal(order.to_numpy(), np.arange(table.num_rows)):
        return table
    return table.take(order)
