"""Null and equality tests on Arrow columns, for deciding what the NWB export must write."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def all_null(values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether every value is null (an empty column counts as all null)."""
    return values.null_count == len(values)


def has_values(table: pa.Table, column: str) -> bool:
    """Whether `table` has `column` with at least one non-null value."""
    return column in table.column_names and not all_null(table.column(column))


def same_values(a: pa.Array, b: pa.Array) -> bool:
    """Element-wise equality of two arrays: null equals null, NaN equals NaN."""
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    if isinstance(b, pa.ChunkedArray):
        b = b.combine_chunks()
    if len(a) != len(b):
        return False
    if a.type != b.type:
        try:
            b = b.cast(a.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
    if a.equals(b):
        return True
    if not pa.types.is_floating(a.type):
        return False
    a_null = a.is_null().to_numpy(zero_copy_only=False)
    if not np.array_equal(a_null, b.is_null().to_numpy(zero_copy_only=False)):
        return False
    x = pc.fill_null(a, 0.0).to_numpy(zero_copy_only=False)
    y = pc.fill_null(b, 0.0).to_numpy(zero_copy_only=False)
    return bool(np.all((x == y) | (np.isnan(x) & np.isnan(y))))
