"""Assertions shared by tests: bundle equality, table equality ignoring row order."""

from __future__ import annotations

import math

import pyarrow as pa

from schemas import TABLES, SessionBundle


def assert_tables_equal(left: pa.Table, right: pa.Table, *, name: str = "table") -> None:
    """Same columns (names and types) and the same rows in the same order."""
    assert left.schema.names == right.schema.names, (name, left.schema.names, right.schema.names)
    for field in left.schema:
        other = right.schema.field(field.name)
        assert field.type == other.type, (name, field.name, field.type, other.type)
    assert left.num_rows == right.num_rows, (name, left.num_rows, right.num_rows)
    for column in left.schema.names:
        a = left.column(column).combine_chunks()
        b = right.column(column).combine_chunks()
        assert arrays_equal(a, b), f"{name}.{column} differs"


def arrays_equal(a: pa.Array, b: pa.Array) -> bool:
    """Arrow array equality in which NaN equals NaN (Arrow's own `equals` says it does not)."""
    if a.equals(b):
        return True
    return a.type == b.type and _same(a.to_pylist(), b.to_pylist())


def _same(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return x == y or (math.isnan(x) and math.isnan(y))
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(i, j) for i, j in zip(x, y, strict=True))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    return x == y


def assert_bundles_equal(left: SessionBundle, right: SessionBundle) -> None:
    """Two bundles hold the same tables with the same rows (streams are read whole)."""
    assert left.session_id == right.session_id
    assert set(left.tables) == set(right.tables), (sorted(left.tables), sorted(right.tables))
    for name in left.tables:
        assert name in TABLES
        assert_tables_equal(left.table(name), right.table(name), name=name)
