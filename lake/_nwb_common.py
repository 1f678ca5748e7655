"""Shared state and helpers of the NWB exporter: the build context, NWB-safe names, null tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.nwb.write import ColumnWriter, Rename
from lake._nwb_read import SessionRows

#: Characters NWB (hdmf) names cannot hold, and backslashes (nwbinspector: critical).
_BAD_NAME = re.compile(r"[/:\\]")


@dataclass
class Build:
    """What the export collects while it builds the file: fixes, renames, module tables."""

    rows: SessionRows
    writer: ColumnWriter = field(default_factory=ColumnWriter)
    renames: list[Rename] = field(default_factory=list)
    module: dict[str, pa.Table] = field(default_factory=dict)
    #: Called with the written file (h5py, read-write) once pynwb has written it.
    after_write: list[Callable[[Any], None]] = field(default_factory=list)

    @property
    def session_id(self) -> str:
        """The session being exported."""
        return self.rows.session_id

    def description(self, table: str, column: str) -> str:
        """The lake's description of a column (its name when it has none)."""
        text = self.rows.descriptions.get(table, {}).get(column) or ""
        return text if text and text != "(source column)" else f"{column} (lake {table}.{column})"

    def columns(self, table: str, name: str, values, **kwargs) -> list:
        """The hdmf columns of a lake column, nulls recorded as fixes (ColumnWriter.columns)."""
        return self.writer.columns(table, name, values, self.description(table, name), **kwargs)

    def add_module_columns(self, table: str, key: str, columns: dict[str, pa.Array]) -> None:
        """Put lake columns into the nplake module's `table` (keyed by `key`, lake order)."""
        current = self.module.get(table)
        if current is None:
            current = pa.table({key: self.rows.table(table).column(key)})
        for name, values in columns.items():
            current = current.append_column(name, values)
        self.module[table] = current


def nwb_names(values: list[str | None]) -> list[str]:
    """NWB-safe, unique names for distinct values (valid names are kept).

    '/', ':' and backslashes become '_', a taken name gets a numeric suffix, None 'unnamed'.
    """
    out: list[str | None] = [None] * len(values)
    taken: set[str] = set()
    for i, value in enumerate(values):
        if value and not _BAD_NAME.search(value) and value not in taken:
            out[i] = value
            taken.add(value)
    for i, value in enumerate(values):
        if out[i] is not None:
            continue
        base = _BAD_NAME.sub("_", value or "") or "unnamed"
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        out[i] = name
        taken.add(name)
    return [str(n) for n in out]


def record_renames(build: Build, table: str, column: str, lake_values, nwb_values) -> None:
    """Record the lake values written under another name (so the decoder renames them back)."""
    for lake_value, nwb_value in zip(lake_values, nwb_values, strict=True):
        if lake_value is not None and lake_value != nwb_value:
            build.renames.append(Rename(table, column, nwb_value, lake_value))


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


def as_list(values: pa.Array | pa.ChunkedArray) -> list:
    """Python values of a column."""
    return values.to_pylist()
