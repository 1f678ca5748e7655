"""The state of one NWB export: the session's rows and what building the file collects.

Also the NWB-safe names the export gives probes, devices and interval tables, and the renames
it records so that the decoder restores the lake's names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ingest.nwb.write import ColumnWriter, Rename
from lake.export.session import SessionRows

#: Characters NWB (hdmf) names cannot hold, and backslashes (nwbinspector: critical).
_BAD_NAME = re.compile(r"[/:\\]")


@dataclass
class ExportContext:
    """One session's NWB file being built: its rows, and what building the file collects.

    The column writer's null fixes, the renames and the tables of the nplake module, and the
    steps that complete the file once pynwb has written it.
    """

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
        out[i] = free_name(value, taken)
        taken.add(out[i])
    return [str(n) for n in out]


def free_name(value: str | None, taken: set[str], *, default: str = "unnamed") -> str:
    """`value` as an NWB-safe name ('/', ':' and backslashes as '_') not in `taken`.

    A taken name gets a numeric suffix (`name_2`, `name_3`, ...); no value gives `default`.
    """
    base = _BAD_NAME.sub("_", value or "") or default
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def record_renames(ctx: ExportContext, table: str, column: str, lake_values, nwb_values) -> None:
    """Record the lake values written under another name (so the decoder renames them back)."""
    for lake_value, nwb_value in zip(lake_values, nwb_values, strict=True):
        if lake_value is not None and lake_value != nwb_value:
            ctx.renames.append(Rename(table, column, nwb_value, lake_value))
