"""The `/processing/nplake` module: lake columns NWB has no standard home for (reader side).

nplake writes it into the NWB files it makes (lake export, synthetic sessions); the NWB decoder
reads it back so such files decode to exactly the lake rows they came from. A file without the
module decodes as before. The convention (docs/export.md):

- one DynamicTable per lake table, named after it. `sessions` has one row (with `session_id`,
  the lake's id for the session); `probes` is keyed by `probe`, `units` and `waveforms` by
  `unit_id`: when the decoder already made that table from the standard parts of the file, the
  module's columns are set on the rows with the same key (an overlay), else the module table
  is the lake table (e.g. `clock_alignment`, `sync_edges`);
- `renames` (table, column, nwb_value, lake_value): values written under another name because
  NWB names cannot contain '/' or ':' (probe, device and interval table names); a probe rename
  (`probes.probe`) applies to the probe columns of channels and units too;
- `table_series` (path, table): series the exporter wrote from a lake table other than
  `timeseries` (a rig session's running speed); they are decoded into that table only;
- `column_fixes` (table, column, type, null_rows): cells NWB cannot hold as they are — rows
  that are null in the lake (positions in the table's lake sort order) and the lake type of
  columns stored as int64 (timestamps, dates). Applied last.

The sessions `notes` of the module are the notes of the session's original ingest; notes the
decoder raises about the file itself are appended when those do not already say them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.nwb.tables import NWBContext, read_table
from schemas import TABLES
from schemas.ids import is_valid_session_id

MODULE_NAME = "nplake"
MODULE_DESCRIPTION = (
    "nplake: lake columns with no standard NWB home, renamed values and null cells "
    "(convention nplake-module/1, see nplake docs/export.md)"
)
FIXES_TABLE = "column_fixes"
RENAMES_TABLE = "renames"
TABLE_SERIES = "table_series"
#: Column of the module's sessions row saying the file is an export of a lake session: the
#: lake's tables of what the source was (SOURCE_TABLES) then come from the module only.
EXPORTED = "exported_from_lake"
SOURCE_TABLES = ("timeseries_info", "inventory", "descriptions")
#: Lake columns written under another name in the module: a DynamicTable has an attribute of
#: that name (`timeseries_info.description`, `descriptions.description`).
MODULE_COLUMN_NAMES = {
    name: f"{name}_" for name in ("description", "namespace", "neurodata_type", "object_id")
}
TIMESTAMP_TYPE = "timestamp[us, tz=UTC]"
DATE_TYPE = "date32[day]"
_TYPES = {TIMESTAMP_TYPE: pa.timestamp("us", tz="UTC"), DATE_TYPE: pa.date32()}
#: Key of the lake tables the module can overlay onto tables the decoder made itself.
OVERLAY_KEYS = {"probes": "probe", "units": "unit_id", "waveforms": "unit_id"}
#: Tables (and columns) whose values come from NWB names, which renames apply to.
RENAMED = {
    "probes": ("probe", "device"),
    "channels": ("probe",),
    "units": ("probe",),
    "intervals": ("name",),
    "stimulus_presentations": ("name",),
}
#: A rename of a probe (electrode group) applies wherever the decoder names probes.
_ALSO_RENAMED = {("probes", "probe"): (("channels", "probe"), ("units", "probe"))}


@dataclass
class NplakeModule:
    """What `/processing/nplake` holds: the sessions overlay, lake tables, renames and fixes."""

    session: dict[str, object] = field(default_factory=dict)
    tables: dict[str, pa.Table] = field(default_factory=dict)
    renames: list[tuple[str, str, str, str]] = field(default_factory=list)
    fixes: list[tuple[str, str, str, np.ndarray]] = field(default_factory=list)
    #: Paths of series the exporter wrote from lake tables other than timeseries (a rig
    #: session's running speed): decoded into those tables only, not into timeseries.
    table_series: frozenset[str] = frozenset()

    @property
    def exported(self) -> bool:
        """Whether the file is an nplake export (not a synthetic file, say)."""
        return self.session.get(EXPORTED) is True

    @property
    def session_id(self) -> str | None:
        """The lake session id the file was exported from (None if absent or invalid)."""
        value = self.session.get("session_id")
        return value if is_valid_session_id(value) else None


def read_module(ctx: NWBContext) -> NplakeModule | None:
    """The file's nplake module, or None when it has none."""
    root = ctx.fh.get(f"processing/{MODULE_NAME}")
    if not isinstance(root, h5py.Group):
        return None
    module = NplakeModule()
    for name in root:
        group = root.get(name)
        if not isinstance(group, h5py.Group) or "id" not in group:
            continue
        label = f"processing/{MODULE_NAME}/{name}"
        with ctx.reading(label):
            table = read_table(ctx, group, label=label).table
        back = {v: k for k, v in MODULE_COLUMN_NAMES.items()}
        table = table.rename_columns([back.get(c, c) for c in table.column_names])
        if name == FIXES_TABLE:
            module.fixes = _fixes(table)
        elif name == RENAMES_TABLE:
            module.renames = [
                (r["table"], r["column"], r["nwb_value"], r["lake_value"])
                for r in table.to_pylist()
            ]
        elif name == TABLE_SERIES:
            module.table_series = frozenset(table.column("path").to_pylist())
        elif name == "sessions":
            rows = table.to_pylist()
            module.session = rows[0] if rows else {}
        elif name in TABLES:
            module.tables[name] = table
        else:
            ctx.note(f"{label}: not a lake table; ignored")
    return module


def _fixes(table: pa.Table) -> list[tuple[str, str, str, np.ndarray]]:
    rows = table.column("null_rows").to_pylist() if "null_rows" in table.column_names else []
    return [
        (t, c, k or "", np.asarray(r or [], dtype=np.int64))
        for t, c, k, r in zip(
            table.column("table").to_pylist(),
            table.column("column").to_pylist(),
            table.column("type").to_pylist(),
            rows,
            strict=True,
        )
    ]


def apply_tables(ctx: NWBContext, module: NplakeModule, tables: dict) -> dict:
    """Renames, then the module's tables: overlays on the decoder's tables, or whole tables.

    An export's description of its source (timeseries_info, inventory, descriptions) is the
    module's alone: what the decoder finds in the export itself is not the source's.
    """
    out = dict(tables)
    if module.exported:
        for name in SOURCE_TABLES:
            out.pop(name, None)
    for name, columns in RENAMED.items():
        table = out.get(name)
        if isinstance(table, pa.Table):
            out[name] = _renamed(table, name, columns, module.renames)
    for name, table in module.tables.items():
        key = OVERLAY_KEYS.get(name)
        current = out.get(name)
        if key is not None and isinstance(current, pa.Table) and key in table.column_names:
            out[name] = _overlay(ctx, name, current, table, key)
        else:
            out[name] = table
    return out


def _renamed(table: pa.Table, name: str, columns: tuple[str, ...], renames) -> pa.Table:
    for t, column, nwb_value, lake_value in renames:
        targets = ((t, column), *_ALSO_RENAMED.get((t, column), ()))
        if (name, column) not in targets or column not in columns:
            continue
        if column not in table.column_names:
            continue
        values = table.column(column).combine_chunks()
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        hit = pc.fill_null(pc.equal(values, nwb_value), False)
        values = pc.if_else(hit, pa.scalar(lake_value, values.type), values)
        table = table.set_column(table.column_names.index(column), table.field(column), values)
    return table


def _overlay(ctx: NWBContext, name: str, table: pa.Table, overlay: pa.Table, key: str):
    """Set the overlay's columns on the rows of `table` with the same key."""
    keys = table.column(key).combine_chunks()
    if pa.types.is_dictionary(keys.type):
        keys = keys.cast(keys.type.value_type)
    overlay_keys = overlay.column(key).combine_chunks().cast(keys.type)
    where = pc.index_in(keys, value_set=overlay_keys)
    unmatched = len(overlay_keys) - len(pc.unique(pc.drop_null(where)))
    if unmatched:
        ctx.note(f"processing/{MODULE_NAME}/{name}: {unmatched} rows match no {name} row")
    matched = where.is_valid()
    every_row = bool(pc.all(matched).as_py()) if len(where) else True
    for column in overlay.column_names:
        if column == key:
            continue
        values = overlay.column(column).combine_chunks().take(where)
        if column in table.column_names:
            current = table.column(column).combine_chunks()
            if not every_row:
                values = _merge(matched, values, current)
            field_ = table.field(column).with_type(values.type)
            table = table.set_column(table.column_names.index(column), field_, values)
        else:
            table = table.append_column(overlay.field(column), values)
    return table


def _merge(matched: pa.Array, values: pa.Array, current: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(current.type):
        current = current.cast(current.type.value_type)
    try:
        return pc.if_else(matched, values, current.cast(values.type))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return values


def apply_session(module: NplakeModule, row: dict, notes: list[str]) -> dict:
    """The sessions row with the module's columns set; its notes merged with the decoder's."""
    out = dict(row)
    for column, value in module.session.items():
        if column in ("session_id", "notes") or not TABLES["sessions"].has_column(column):
            continue
        out[column] = value
    base = module.session.get("notes")
    if isinstance(base, str):
        extra = [n for n in notes if n not in base]
        out["notes"] = "; ".join([base, *extra])
    return out


def apply_fixes(module: NplakeModule, tables: dict) -> dict:
    """Restore lake types and nulls (positions in each table's lake sort order)."""
    out = dict(tables)
    for name in dict.fromkeys(f[0] for f in module.fixes):
        table = out.get(name)
        if not isinstance(table, pa.Table) or name not in TABLES:
            continue
        order = _lake_order(table, TABLES[name].sort_by)
        for t, column, kind, rows in module.fixes:
            if t != name or column not in table.column_names:
                continue
            values = table.column(column).combine_chunks()
            if kind in _TYPES:
                stored = pa.int32() if kind == DATE_TYPE else pa.int64()
                values = values.cast(stored).cast(_TYPES[kind])
            rows = rows[(rows >= 0) & (rows < len(order))]
            if len(rows):
                mask = np.zeros(table.num_rows, dtype=bool)
                mask[order[rows]] = True
                values = pc.if_else(pa.array(mask), pa.nulls(len(mask), values.type), values)
            field_ = table.field(column).with_type(values.type)
            table = table.set_column(table.column_names.index(column), field_, values)
        out[name] = table
    return out


def _lake_order(table: pa.Table, sort_by: tuple[str, ...]) -> np.ndarray:
    """Row numbers of `table` in the lake's (stable) sort order."""
    keys = [c for c in sort_by if c in table.column_names and c != "session_id"]
    if not keys or table.num_rows < 2:
        return np.arange(table.num_rows)
    columns = {}
    for c in keys:
        values = table.column(c).combine_chunks()
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        columns[c] = values
    indices = pc.sort_indices(pa.table(columns), sort_keys=[(c, "ascending") for c in keys])
    return indices.to_numpy()
