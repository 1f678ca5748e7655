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
    #: Processing modules and series containers made so far (each is made once).
    modules: dict[str, Any] = field(default_factory=dict)
    containers: dict[tuple, Any] = field(default_factory=dict)
    #: Series written from lake tables other than timeseries (the module's table_series).
    table_series: list[tuple[str, str]] = field(default_factory=list)

    def module_named(self, nwbfile: Any, name: str, description: str | None = None) -> Any:
        """The processing module `name`, made (with `description`) the first time it is asked."""
        if name not in self.modules:
            text = description or self.source_description(f"/processing/{name}", "") or name
            self.modules[name] = nwbfile.create_processing_module(name, text)
        return self.modules[name]

    def source_description(self, path: str, column: str) -> str | None:
        """The source's description of an NWB table column ('' : of the table itself)."""
        return self._described().get((path, column), (None, None))[0]

    def source_layout(self, path: str, column: str) -> int | None:
        """Index levels the source's column had (0 scalar, 1 ragged); None when unknown."""
        return self._described().get((path, column), (None, None))[1]

    def _described(self) -> dict[tuple[str, str], tuple[str | None, int | None]]:
        if self._descriptions is None:
            table = self.rows.table("descriptions")
            self._descriptions = {
                (r["path"], r["column"]): (r["description"], r["ragged"])
                for r in (table.to_pylist() if table.num_rows else [])
            }
        return self._descriptions

    _descriptions: dict | None = None

    @property
    def session_id(self) -> str:
        """The session being exported."""
        return self.rows.session_id

    def description(self, table: str, column: str) -> str:
        """The lake's description of a column (its name when it has none)."""
        text = self.rows.descriptions.get(table, {}).get(column) or ""
        return text if text and text != "(source column)" else f"{column} (lake {table}.{column})"

    def columns(self, table: str, name: str, values, *, path: str | None = None, **kwargs) -> list:
        """The hdmf columns of a lake column, nulls recorded as fixes (ColumnWriter.columns).

        The description is the source's for that column of the NWB table at `path` (when the
        source had one), else the lake's.
        """
        nwb = kwargs.get("nwb_name") or name
        text = self.source_description(path, nwb) if path else None
        text = text if text is not None else self.description(table, name)
        return self.writer.columns(table, name, values, text, **kwargs)

    def add_module_columns(self, table: str, key: str, columns: dict[str, pa.Array]) -> None:
        """Put lake columns into the nplake module's `table` (keyed by `key`, lake order)."""
        current = self.module.get(table)
        if current is None:
            current = pa.table({key: self.rows.table(table).column(key)})
        for name, values in columns.items():
            current = current.append_column(name, values)
        self.module[table] = current


def nwb_names(values: list[str | None], *, taken: set[str] | None = None) -> list[str]:
    """NWB-safe, unique names for distinct values (valid names are kept).

    '/', ':' and backslashes become '_', a taken name (also one in `taken`) gets a numeric
    suffix, None 'unnamed'.
    """
    out: list[str | None] = [None] * len(values)
    taken = set(taken or ())
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
