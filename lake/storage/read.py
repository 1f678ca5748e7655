"""Reading a table's rows straight from the files a manifest names (small tables only).

Used where nplake itself needs rows without DuckDB or polars: the sessions table when a
snapshot is taken, and the rows a commit rewrites. Files written under older schemas lack the
columns added since; they come back as nulls, in the table's current column order.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.storage.files import Files
from lake.storage.manifest import Manifest
from lake.storage.parquet import reconcile_batch
from lake.storage.schema import per_session


def read_rows(
    files: Files,
    manifest: Manifest,
    table: str,
    session_ids: Sequence[str] | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The rows of `table` (of `session_ids` only, if given), in the current schema."""
    schema = manifest.schema(table)
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    if session_ids is None:
        paths = manifest.paths(table)
    else:
        paths = sorted({p for s in session_ids for p in manifest.paths(table, s)})
    parts = []
    wanted = None if session_ids is None else pa.array(sorted(session_ids), pa.string())
    for path in paths:
        with files.open_input(f"{table}/{path}") as handle:
            source = pq.ParquetFile(handle)
            present = set(source.schema_arrow.names)
            data = source.read(columns=[c for c in _stored(schema, table) if c in present])
        if per_session(table):
            sid = path.split("/", 1)[0].split("=", 1)[1]
            data = data.append_column("session_id", pa.array([sid] * data.num_rows, pa.string()))
        if wanted is not None and not per_session(table):
            data = data.filter(pc.is_in(data.column("session_id"), value_set=wanted))
        parts += [reconcile_batch(b, schema) for b in data.to_batches()]
    return pa.Table.from_batches(parts, schema=schema)


def _stored(schema: pa.Schema, table: str) -> list[str]:
    """Columns to ask a file for; those it lacks are filled in as nulls afterwards."""
    return [c for c in schema.names if not (per_session(table) and c == "session_id")]
