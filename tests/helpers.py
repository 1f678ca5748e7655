"""Assertions shared by tests: bundle equality, table equality ignoring row order."""

from __future__ import annotations

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
        assert a.equals(b), f"{name}.{column} differs"


def assert_bundles_equal(left: SessionBundle, right: SessionBundle) -> None:
    """Two bundles hold the same tables with the same rows (streams are read whole)."""
    assert left.session_id == right.session_id
    assert set(left.tables) == set(right.tables), (sorted(left.tables), sorted(right.tables))
    for name in left.tables:
        assert name in TABLES
        assert_tables_equal(left.table(name), right.table(name), name=name)
