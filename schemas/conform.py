"""Make a decoder's Arrow table fit its spec: cast, fill, normalise extras, check keys and order.

Pure functions on Arrow data; no I/O. Decoders may hand in loosely typed tables (int32 ids, float32
metrics, missing optional columns); what comes out has exactly the spec's types, declared
columns first, then extra columns with Delta-safe names and normalised types.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.errors import SchemaViolation
from schemas.ids import sanitize_column_name
from schemas.spec import DESCRIPTION, UNIT, TableSpec

#: Field metadata key recording a source column name that had to be sanitised.
SOURCE_NAME = "source_name"


def conform_table(spec: TableSpec, table: pa.Table, session_id: str) -> pa.Table:
    """Conform a whole table: columns and types, key uniqueness, then sort by the spec's order."""
    return sort_conformed(spec, conform_columns(spec, table, session_id))


def conform_columns(spec: TableSpec, table: pa.Table, session_id: str) -> pa.Table:
    """The first half of `conform_table`: columns and types, rows still in the source's order."""
    return _conform_columns(spec, table, session_id, dictionary_session=False)


def sort_conformed(spec: TableSpec, table: pa.Table) -> pa.Table:
    """The second half of `conform_table`: sorted by the spec's order, keys checked unique."""
    if table.num_rows > 1:
        table = table.sort_by([(c, "ascending") for c in spec.sort_by])
        if spec.unique_key:
            _check_unique(spec, table)
    return table


def conform_batches(
    spec: TableSpec, batches: Iterable[pa.RecordBatch], session_id: str
) -> Iterator[pa.RecordBatch]:
    """Conform a stream batch by batch; raise if the rows are not in the spec's sort order.

    Streams are too large to sort here, so decoders must emit them sorted; this checks it,
    across batch boundaries too.
    """
    previous: tuple | None = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        table = _conform_columns(
            spec, pa.Table.from_batches([batch]), session_id, dictionary_session=True
        )
        batch = table.combine_chunks().to_batches()[0]
        keys = [batch.column(c).to_numpy(zero_copy_only=False) for c in spec.sort_by]
        first = tuple(k[:1] for k in keys)
        across = previous is None or _lexsorted(
            [np.concatenate([p, f]) for p, f in zip(previous, first, strict=True)]
        )
        if not (across and _lexsorted(keys)):
            msg = f"rows are not sorted by {spec.sort_by}"
            raise SchemaViolation(msg, table=spec.name)
        previous = tuple(k[-1:] for k in keys)
        yield batch


def conformed_schema(spec: TableSpec, schema: pa.Schema) -> pa.Schema:
    """The schema `conform_batches` gives batches of `schema` (session id dictionary-encoded)."""
    return _conform_columns(spec, schema.empty_table(), "", dictionary_session=True).schema


def _lexsorted(keys: list[np.ndarray]) -> bool:
    """Whether rows are non-decreasing in lexicographic order of `keys` (NaN fails)."""
    if len(keys[0]) < 2:
        return all(not (np.issubdtype(k.dtype, np.floating) and np.isnan(k).any()) for k in keys)
    ok_so_far = np.zeros(len(keys[0]) - 1, dtype=bool)  # strictly greater on an earlier key
    tied = np.ones(len(keys[0]) - 1, dtype=bool)
    for k in keys:
        a, b = k[:-1], k[1:]
        ok_so_far |= tied & (b > a)
        tied &= b == a
    return bool(np.all(ok_so_far | tied))


def _conform_columns(
    spec: TableSpec, table: pa.Table, session_id: str, *, dictionary_session: bool
) -> pa.Table:
    n = table.num_rows
    names = table.column_names
    if len(set(names)) != len(names):
        dupes = sorted({c for c in names if names.count(c) > 1})
        msg = f"duplicate columns {dupes}"
        raise SchemaViolation(msg, table=spec.name)
    arrays: list[pa.ChunkedArray | pa.Array] = []
    fields: list[pa.Field] = []
    for col in spec.columns:
        if col.name == "session_id":
            arrays.append(_session_column(spec, table, session_id, dictionary_session))
        elif col.name in names:
            values = table.column(col.name)
            if dictionary_session and _is_dictionary_of(values.type, col.type):
                arrays.append(values)  # streams may keep repeated text dictionary-encoded
            else:
                arrays.append(_cast(spec, col.name, values, col.type))
        elif col.nullable:
            arrays.append(pa.nulls(n, col.type))
        else:
            msg = "required column is missing"
            raise SchemaViolation(msg, table=spec.name, column=col.name)
        if not col.nullable and arrays[-1].null_count:
            msg = f"{arrays[-1].null_count} null values in a required column"
            raise SchemaViolation(msg, table=spec.name, column=col.name)
        field = col.field()
        if arrays[-1].type != col.type:  # a dictionary-encoded stream column
            field = field.with_type(arrays[-1].type)
        fields.append(field)
    extras = [c for c in names if not spec.has_column(c)]
    if extras and not spec.open_columns:
        msg = f"unknown columns {extras}; this table accepts only {list(spec.column_names)}"
        raise SchemaViolation(msg, table=spec.name)
    taken = {c.lower() for c in spec.column_names}
    for name in extras:
        source_field = table.schema.field(name)
        clean = sanitize_column_name(name)
        if clean.lower() in taken:
            msg = f"extra column {name!r} collides with another column as {clean!r}"
            raise SchemaViolation(msg, table=spec.name, column=name)
        taken.add(clean.lower())
        array = normalize_extra(spec, name, table.column(name))
        metadata = dict(source_field.metadata or {})
        metadata = {k.decode() if isinstance(k, bytes) else k: v for k, v in metadata.items()}
        metadata.setdefault(DESCRIPTION, "")
        metadata.setdefault(UNIT, "source")
        if clean != name:
            metadata[SOURCE_NAME] = name
        arrays.append(array)
        fields.append(pa.field(clean, array.type, nullable=True, metadata=metadata))
    schema = pa.schema(fields, metadata=spec.arrow_schema.metadata)
    return pa.Table.from_arrays(arrays, schema=schema)


def _is_dictionary_of(t: pa.DataType, value_type: pa.DataType) -> bool:
    return pa.types.is_dictionary(t) and t.value_type == value_type


def _session_column(
    spec: TableSpec, table: pa.Table, session_id: str, dictionary: bool
) -> pa.Array:
    """A constant session id column; dictionary-encoded for streams (4 bytes a row, no copies)."""
    n = table.num_rows
    if "session_id" in table.column_names:
        col = table.column("session_id")
        wrong = pc.sum(pc.invert(pc.fill_null(pc.equal(col, session_id), False))).as_py() or 0
        if wrong:
            msg = f"{wrong} rows carry another session id than {session_id!r}"
            raise SchemaViolation(msg, table=spec.name, column="session_id")
    if dictionary:
        return pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, dtype=np.int32)), pa.array([session_id], pa.string())
        )
    return pa.array([session_id] * n, type=pa.string())


def _cast(spec: TableSpec, name: str, values: pa.ChunkedArray, target: pa.DataType):
    if values.type == target:
        return values
    try:
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        naive = pa.types.is_timestamp(values.type) and values.type.tz is None
        if pa.types.is_timestamp(target) and naive:
            values = pc.assume_timezone(values, "UTC")
        return values.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        msg = f"cannot store {values.type} as {target}: {exc}"
        raise SchemaViolation(msg, table=spec.name, column=name) from None


def normalize_extra(spec: TableSpec, name: str, values: pa.ChunkedArray | pa.Array):
    """Normalise an extra column to the small set of types the lake stores.

    Integers become int64, floats float64, text string, timestamps UTC microseconds, lists and
    fixed-size lists become lists of normalised values; anything else is a `SchemaViolation`.
    """
    target = normalized_type(values.type)
    if target is None:
        msg = f"type {values.type} cannot be stored; convert it in the decoder"
        raise SchemaViolation(msg, table=spec.name, column=name)
    return _cast(spec, name, values, target)


def normalized_type(t: pa.DataType) -> pa.DataType | None:
    """The lake type an extra column of Arrow type `t` is stored as (None: not storable)."""
    if pa.types.is_dictionary(t):
        return normalized_type(t.value_type)
    if pa.types.is_null(t):
        return pa.string()
    if pa.types.is_boolean(t):
        return pa.bool_()
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.string()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC")
    if pa.types.is_date(t):
        return pa.date32()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = normalized_type(t.value_type)
        return pa.list_(inner) if inner is not None else None
    return None


def _check_unique(spec: TableSpec, table: pa.Table) -> None:
    key = [c for c in spec.key if c != "session_id"]
    if not key:
        return
    sorted_keys = spec.sort_by[: len(key)] == tuple(key)
    if sorted_keys:
        # The table is sorted by the key: duplicates are adjacent.
        same = None
        for c in key:
            col = table.column(c).combine_chunks()
            eq = pc.fill_null(pc.equal(col.slice(1), col.slice(0, len(col) - 1)), False)
            same = eq if same is None else pc.and_(same, eq)
        dupes = pc.sum(same).as_py() or 0
    else:
        counted = table.group_by(key).aggregate([([], "count_all")])
        dupes = table.num_rows - counted.num_rows
    if dupes:
        msg = f"{dupes} duplicate keys {tuple(key)}"
        raise SchemaViolation(msg, table=spec.name)
