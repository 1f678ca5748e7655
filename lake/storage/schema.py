"""Table schemas in the lake: the layout per table, evolution rules, and their text form.

Two layouts (docs/design.md, "Layout"):

- **per-session tables** (`spikes`, `sync_edges`: the big ones) are partitioned by session_id:
  each file holds one session, in folder `session_id=<id>/`, and replacing a session removes
  its files;
- **shared tables** (all others) are not partitioned: a file holds the rows of many sessions
  (one file per table per group commit; `optimize` merges small files), with session_id as a
  column, sorted by (session_id, the table's sort order); replacing a session rewrites the
  files that hold it without its rows.

Extra columns evolve one way: new columns are added (nullable); an integer column widens into
a stored float column; any other type clash fails the session, naming table, column, types.
"""

from __future__ import annotations

import base64
import hashlib

import pyarrow as pa

from schemas import TABLES, SchemaViolation
from schemas.spec import TableSpec

#: Tables whose files each hold one session, partitioned by session_id.
PER_SESSION_TABLES = ("spikes", "sync_edges", "timeseries")


def per_session(name: str) -> bool:
    """Whether table `name` is partitioned by session (one session per file)."""
    return name in PER_SESSION_TABLES


def partition_columns(name: str) -> list[str]:
    """The Delta partition columns of table `name`."""
    return ["session_id"] if per_session(name) else []


def base_schema(spec: TableSpec) -> pa.Schema:
    """The schema a table starts with: its spec's declared columns."""
    return spec.arrow_schema


def data_schema(name: str, schema: pa.Schema) -> pa.Schema:
    """The columns stored inside a table's files (partition columns live in folder names)."""
    drop = set(partition_columns(name))
    return pa.schema([f for f in schema if f.name not in drop], metadata=schema.metadata)


def schema_key(schema: pa.Schema) -> str:
    """A short stable key of a schema (names, types, field metadata)."""
    return hashlib.sha256(schema.serialize().to_pybytes()).hexdigest()[:16]


def schema_to_text(schema: pa.Schema) -> str:
    """A schema as base64 Arrow IPC (keeps field metadata: units and descriptions)."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def schema_from_text(text: str) -> pa.Schema:
    """The schema `schema_to_text` wrote."""
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def evolved(current: pa.Schema, name: str, incoming: pa.Schema) -> pa.Schema:
    """`current` plus the incoming columns it lacks; SchemaViolation for a type it cannot take.

    Columns whose names differ only in case clash (Delta column names are case-insensitive).
    """
    existing = {f.name.lower(): f for f in current}
    added = []
    for field in incoming:
        known = existing.get(field.name.lower())
        if known is None:
            plain = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
            added.append(field.with_type(plain).with_nullable(True))
            existing[field.name.lower()] = field
        elif known.name != field.name:
            msg = f"column {field.name!r} differs only in case from {known.name!r} in the lake"
            raise SchemaViolation(msg, table=name, column=field.name)
        elif not compatible(field.type, known.type):
            msg = f"the lake stores this column as {known.type}; this session has {field.type}"
            raise SchemaViolation(msg, table=name, column=field.name)
    if not added:
        return current
    return pa.schema([*current, *added], metadata=current.metadata)


def compatible(incoming: pa.DataType, stored: pa.DataType) -> bool:
    """Whether values of type `incoming` can be stored in a column of type `stored`."""
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
        and compatible(incoming.value_type, stored.value_type)
    )


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table of `schema` with no rows.

    Not `schema.empty_table()`: that imports pandas (~0.25 s) when pandas is installed, and
    opening a lake must not pay for it.
    """
    return pa.Table.from_batches([], schema=schema)


def all_base_schemas() -> dict[str, pa.Schema]:
    """Every table's starting schema, by name."""
    return {name: base_schema(spec) for name, spec in TABLES.items()}
