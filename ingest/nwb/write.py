"""Lake columns -> NWB (hdmf) columns, and the writer side of the `/processing/nplake` module.

Shared by the lake's NWB exporter and the synthetic NWB writer; pynwb and hdmf are imported
inside the functions, so importing this module stays light.

A lake column becomes one `VectorData` (plus one `VectorIndex` per list level). NWB columns
cannot hold nulls, so null cells are written as a fill value (NaN, 0, False, "" or an empty
list) and recorded as a `ColumnFix`; timestamps and dates are written as int64 (microseconds /
days since 1970-01-01) with a fix naming the lake type. The fixes end up in the module's
`column_fixes` table, which the NWB decoder applies last (see `ingest.nwb.processing_nplake` and
docs/export.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.nwb.processing_nplake import (
    DATE_TYPE,
    FIXES_TABLE,
    MODULE_COLUMN_NAMES,
    MODULE_DESCRIPTION,
    MODULE_NAME,
    RENAMES_TABLE,
    TIMESTAMP_TYPE,
)
from schemas import NplakeError


@dataclass(frozen=True)
class ColumnFix:
    """Cells of a lake column NWB cannot hold as they are: nulls, and the lake type to restore.

    `null_rows` are positions in the lake's sort order of the session's table (`TableSpec.sort_by`).
    """

    table: str
    column: str
    null_rows: np.ndarray
    type: str = ""


@dataclass(frozen=True)
class Rename:
    """A value written under another name in the file (NWB names cannot hold '/' or ':')."""

    table: str
    column: str
    nwb_value: str
    lake_value: str


@dataclass
class ColumnWriter:
    """Turns Arrow columns into hdmf columns and collects the fixes the nplake module records."""

    fixes: list[ColumnFix] = field(default_factory=list)

    def columns(
        self,
        table: str,
        name: str,
        values: pa.Array | pa.ChunkedArray,
        description: str = "",
        *,
        positions: np.ndarray | None = None,
        nwb_name: str | None = None,
    ) -> list[Any]:
        """`values` as [VectorData, VectorIndex, ...] named `nwb_name` (default `name`).

        Parameters
        ----------
        table, name
            The lake table and column the values come from (named in fixes).
        values
            The column, in the order its rows are written.
        description
            The NWB column description (default: the name).
        positions
            Lake positions (sort order) of the rows written; default 0..n-1.
        nwb_name
            The column name in the file, when it differs from the lake's.
        """
        values = _combined(values)
        n = len(values)
        rows = np.arange(n) if positions is None else np.asarray(positions)
        nulls = values.null_count
        if nulls and nulls == n and pa.types.is_null(values.type):
            values = pa.nulls(n, pa.string())
        values, kind = _storable(values)
        if values.null_count or kind:
            mask = values.is_null().to_numpy(zero_copy_only=False)
            self.fixes.append(ColumnFix(table, name, rows[mask], kind))
        return build_columns(nwb_name or name, values, description or name)

    def fix_nulls(self, table: str, column: str, rows: np.ndarray) -> None:
        """Record that `rows` (lake positions) of `table.column` are null in the lake."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows):
            self.fixes.append(ColumnFix(table, column, rows))


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    return values


def _storable(values: pa.Array) -> tuple[pa.Array, str]:
    """Timestamps and dates as int64, with the lake type to restore ('' for other types)."""
    t = values.type
    if pa.types.is_timestamp(t):
        return values.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()), TIMESTAMP_TYPE
    if pa.types.is_date(t):
        return values.cast(pa.date32()).cast(pa.int32()).cast(pa.int64()), DATE_TYPE
    return values, ""


def build_columns(name: str, values: pa.Array, description: str) -> list[Any]:
    """The hdmf columns of one Arrow array: the data, then one index per list level."""
    from hdmf.common import VectorData, VectorIndex

    t = values.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        lengths = pc.fill_null(pc.list_value_length(values), 0).to_numpy(zero_copy_only=False)
        ends = np.cumsum(lengths, dtype=np.int64)
        inner = values.flatten()
        if inner.null_count and pa.types.is_floating(inner.type):
            inner = pc.fill_null(inner, float("nan"))
        parts = build_columns(name, inner, description)
        top = parts[-1]
        index = VectorIndex(name=f"{top.name}_index", data=ends, target=top)
        return [*parts, index]
    return [VectorData(name=name, description=description, data=leaf_values(values))]


def leaf_values(values: pa.Array) -> Any:
    """A flat Arrow array as data hdmf writes: numpy for numbers and booleans, str for text."""
    t = values.type
    if pa.types.is_floating(t):
        return pc.fill_null(values, float("nan")).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(t):
        return pc.fill_null(values, 0).to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(t):
        return pc.fill_null(values, False).to_numpy(zero_copy_only=False)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        text = pc.fill_null(values.cast(pa.string()), "")
        return np.asarray(text.to_pylist(), dtype=object) if len(text) else np.array([], "U1")
    if pa.types.is_null(t):
        return np.array([""] * len(values), dtype=object)
    msg = f"a column of type {t} cannot be written to NWB"
    raise NplakeError(msg)


def add_nplake_module(
    nwbfile: Any,
    tables: dict[str, pa.Table],
    *,
    writer: ColumnWriter | None = None,
    renames: Iterable[Rename] = (),
    descriptions: dict[str, dict[str, str]] | None = None,
) -> Any:
    """Add `/processing/nplake`: one DynamicTable per lake table, plus fixes and renames.

    Parameters
    ----------
    nwbfile
        The pynwb NWBFile to add the module to.
    tables
        Lake table name -> rows in the lake's sort order (`sessions`: one row with `session_id`;
        `probes`: keyed by `probe`; `units`/`waveforms`: keyed by `unit_id`; other tables whole).
    writer
        The ColumnWriter whose fixes (from the standard parts of the file too) are recorded.
    renames
        Values written under NWB-safe names.
    descriptions
        Column descriptions by table and column name.

    Returns the ProcessingModule, or None when there is nothing to record.
    """
    from hdmf.common import DynamicTable, ElementIdentifiers

    writer = writer or ColumnWriter()
    descriptions = descriptions or {}
    built = []
    for name, table in tables.items():
        columns = []
        for column in table.column_names:
            text = descriptions.get(name, {}).get(column) or f"lake column {name}.{column}"
            nwb = MODULE_COLUMN_NAMES.get(column, column)
            columns += writer.columns(name, column, table.column(column), text, nwb_name=nwb)
        built.append(
            DynamicTable(
                name=name,
                description=f"nplake: lake table {name!r}, columns with no standard NWB home",
                id=ElementIdentifiers(name="id", data=np.arange(table.num_rows)),
                columns=columns,
            )
        )
    fixes = _fixes_table(writer.fixes)
    if fixes is not None:
        built.append(fixes)
    renamed = _renames_table(list(renames))
    if renamed is not None:
        built.append(renamed)
    if not built:
        return None
    module = nwbfile.create_processing_module(MODULE_NAME, MODULE_DESCRIPTION)
    for table in built:
        module.add(table)
    return module


def _fixes_table(fixes: list[ColumnFix]) -> Any:
    from hdmf.common import DynamicTable, ElementIdentifiers

    if not fixes:
        return None
    rows = [np.asarray(f.null_rows, dtype=np.int64) for f in fixes]
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    flat = np.concatenate(rows) if rows else np.array([], np.int64)
    table = pa.table(
        {
            "table": [f.table for f in fixes],
            "column": [f.column for f in fixes],
            "type": [f.type for f in fixes],
            "null_rows": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat)),
        }
    )
    text = {
        "table": "lake table of the column",
        "column": "lake column name",
        "type": "lake type to cast the stored values to ('' = as stored)",
        "null_rows": "rows that are null in the lake (positions in the table's lake sort order)",
    }
    columns = [
        c
        for name in table.column_names
        for c in build_columns(name, table.column(name).combine_chunks(), text[name])
    ]
    return DynamicTable(
        name=FIXES_TABLE,
        description="nplake: cells NWB columns cannot hold as they are (nulls, lake types)",
        id=ElementIdentifiers(name="id", data=np.arange(len(fixes))),
        columns=columns,
    )


def _renames_table(renames: list[Rename]) -> Any:
    from hdmf.common import DynamicTable, ElementIdentifiers, VectorData

    if not renames:
        return None
    fields = {
        "table": "lake table",
        "column": "lake column",
        "nwb_value": "the name written in this file",
        "lake_value": "the value in the lake",
    }
    columns = [
        VectorData(name=key, description=text, data=[getattr(r, key) for r in renames])
        for key, text in fields.items()
    ]
    return DynamicTable(
        name=RENAMES_TABLE,
        description="nplake: names changed to be valid NWB names ('/' and ':' are not allowed)",
        id=ElementIdentifiers(name="id", data=np.arange(len(renames))),
        columns=columns,
    )
