"""NWB interval tables -> the lake's `trials` and `intervals` tables.

`/intervals/trials` becomes `trials` (trial_index = id). Every other TimeIntervals group under
`/intervals` (epochs, invalid_times, lab tables such as `encoding_table`) and every table with
start and stop times in a processing module (Allen's `/processing/optotagging`; `module` names
the module) becomes rows of the one `intervals` table, `name` = group name; stimulus
presentation tables (Allen `*_presentations`) go to `stimulus_presentations` the same way, so
their typed columns never meet the other tables' columns.

Interval tables of one file share the `intervals` columns. When two tables use one column name
with different types, the column is widened: integers and floats to float64, any other mix to
text (lists as JSON), with a note.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pyarrow as pa

from ingest.nwb.tables import NWBContext, move_reserved, read_table, set_column
from schemas.conform import normalized_type

_TRIAL_KEYS = ("session_id", "trial_index")
_INTERVAL_KEYS = ("session_id", "name", "row")


def trials_table(ctx: NWBContext) -> pa.Table | None:
    """The trials table from /intervals/trials, or None when the file has none."""
    group = ctx.fh.get("intervals/trials")
    if not isinstance(group, h5py.Group):
        return None
    data = read_table(ctx, group)
    if not _has_times(ctx, data.table, "intervals/trials"):
        return None
    table = move_reserved(ctx, data.table, _TRIAL_KEYS, "intervals/trials")
    for name in ("start_time", "stop_time"):
        kind = table.schema.field(name).type
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            msg = f"holds {kind} values; times in seconds (numbers) are expected"
            raise ctx.error(msg, f"intervals/trials/{name}")
    _note_trial_time_quirks(ctx, table)
    return set_column(table, "trial_index", pa.array(data.ids), "NWB trials id")


def _note_trial_time_quirks(ctx: NWBContext, table: pa.Table) -> None:
    """Say when trial times are kept as stored but do not mean what the lake's views assume.

    A stop_time that is never finite, and *_time columns that look relative to the trial start
    (every finite value at or above 0 and below its own trial's start_time), e.g. DANDI 000006.
    """
    n = table.num_rows
    if n == 0:
        return
    start = _floats(table.column("start_time"))
    if not np.isfinite(_floats(table.column("stop_time"))).any():
        ctx.note(
            f"trials: stop_time is NaN on all {n} trials; kept as NaN (trials_annotated ends "
            "each trial at the next trial's start_time)"
        )
    relative = []
    for name in table.column_names:
        column = table.column(name)
        if name in ("start_time", "stop_time") or not name.endswith("_time"):
            continue
        if not pa.types.is_floating(column.type):  # integers are counts or codes, not seconds
            continue
        values = _floats(column)
        finite = np.isfinite(values) & np.isfinite(start)
        if finite.any() and ((values[finite] >= 0) & (values[finite] < start[finite])).all():
            relative.append(name)
    if relative:
        ctx.note(
            f"trials: {', '.join(relative)} look relative to the trial start (every value is "
            "below its trial's start_time); kept as stored: align to start_time + value "
            "(view trial_relative_events)"
        )


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as float64 with nulls as NaN."""
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)


def interval_tables(ctx: NWBContext) -> dict[str, pa.Table | None]:
    """`intervals` and `stimulus_presentations`: every interval table but trials.

    Tables come from `/intervals/*` and from the processing modules (`/processing/<m>/<t>`,
    e.g. Allen's optotagging); a table named `*_presentations` goes to
    `stimulus_presentations`, the others to `intervals`. A processing table without
    start_time and stop_time has no lake home: it is left to the inventory with a note.
    """
    found = {"intervals": [], "stimulus_presentations": []}
    for name, module, group in _interval_groups(ctx):
        label = group.name.lstrip("/")
        missing = [c for c in ("start_time", "stop_time") if c not in group]
        if missing:  # not read, so its datasets go to the inventory
            ctx.note(f"{label} has no {' or '.join(missing)}; skipped")
            ctx.skip(group, "a table without start_time and stop_time: no lake table holds it")
            continue
        data = read_table(ctx, group, label=label)
        if not _has_times(ctx, data.table, label):
            continue
        table = move_reserved(ctx, data.table, _INTERVAL_KEYS, label)
        table = _tags_as_lists(ctx, table, label)
        n = table.num_rows
        table = set_column(table, "name", pa.array([name] * n, pa.string()), "Interval table")
        table = set_column(table, "row", pa.array(data.ids), "Row id (NWB id)")
        if module is not None:
            table = set_column(table, "module", pa.array([module] * n, pa.string()), "Module")
        home = "stimulus_presentations" if name.endswith(PRESENTATIONS) else "intervals"
        found[home].append(table)
    return {home: union_tables(ctx, t, home) if t else None for home, t in found.items()}


#: Interval tables named like this are stimulus presentations (Allen's convention).
PRESENTATIONS = "_presentations"


def _interval_groups(ctx: NWBContext):
    """(lake name, module or None, group) of every interval-like table but trials."""
    taken: set[str] = set()
    root = ctx.fh.get("intervals")
    if isinstance(root, h5py.Group):
        for name in root:
            group = root.get(name)
            if name != "trials" and isinstance(group, h5py.Group):
                taken.add(name)
                yield name, None, group
    processing = ctx.fh.get("processing")
    if not isinstance(processing, h5py.Group):
        return
    for module in processing:
        holder = processing.get(module)
        if module == "nplake" or not isinstance(holder, h5py.Group):
            continue
        for name in holder:
            group = holder.get(name)
            if isinstance(group, h5py.Group) and _is_table(group):
                lake_name = name if name not in taken else f"{module}/{name}"
                taken.add(lake_name)
                yield lake_name, module, group


def _is_table(group: h5py.Group) -> bool:
    """A DynamicTable (an `id` dataset and `colnames`), not a time series."""
    return isinstance(group.get("id"), h5py.Dataset) and "colnames" in group.attrs


def _has_times(ctx: NWBContext, table: pa.Table, label: str) -> bool:
    missing = [c for c in ("start_time", "stop_time") if c not in table.column_names]
    if missing:
        ctx.note(f"{label} has no {' or '.join(missing)}; skipped")
    return not missing


def _tags_as_lists(ctx: NWBContext, table: pa.Table, label: str) -> pa.Table:
    """`tags` as list<string>: a plain text column becomes one-element lists."""
    if "tags" not in table.column_names:
        return table
    tags = table.column("tags").combine_chunks()
    if pa.types.is_string(tags.type):
        offsets = pa.array(np.arange(len(tags) + 1, dtype=np.int32))
        return set_column(table, "tags", pa.ListArray.from_arrays(offsets, tags), "Tags")
    if not (pa.types.is_list(tags.type) and pa.types.is_string(tags.type.value_type)):
        ctx.note(f"{label}: tags of type {tags.type} kept as tags_source")
        return table.rename_columns(
            ["tags_source" if c == "tags" else c for c in table.column_names]
        )
    return table


def union_tables(ctx: NWBContext, tables: list[pa.Table], label: str = "intervals") -> pa.Table:
    """Stack interval tables with different columns; widen clashing column types."""
    targets: dict[str, pa.DataType] = {}
    descriptions: dict[str, list[str]] = {}
    for name in dict.fromkeys(c for t in tables for c in t.column_names):
        present = [t for t in tables if name in t.column_names]
        kinds = {normalized_type(t.schema.field(name).type) for t in present}
        targets[name] = _common_type(ctx, label, name, kinds)
        descriptions[name] = [_description(t, name) for t in present]
    fields = [
        pa.field(name, kind, metadata={"description": _join(descriptions[name])})
        for name, kind in targets.items()
    ]
    schema = pa.schema(fields)
    return pa.concat_tables([_conform(t, schema) for t in tables])


def _common_type(
    ctx: NWBContext, label: str, name: str, kinds: set[pa.DataType | None]
) -> pa.DataType:
    if len(kinds) == 1 and None not in kinds:
        return kinds.pop()
    if kinds <= {pa.int64(), pa.float64()}:
        ctx.note(f"{label}: column {name!r} is integer in one table, float in another: float")
        return pa.float64()
    ctx.note(f"{label}: column {name!r} has different types across tables: stored as text")
    return pa.string()


def _description(table: pa.Table, name: str) -> str:
    metadata = table.schema.field(name).metadata or {}
    text = metadata.get(b"description", b"").decode()
    label = table.column("name")[0].as_py() if table.num_rows else ""
    return f"{label}: {text}" if text else ""


def _join(descriptions: list[str]) -> str:
    texts = {d.split(": ", 1)[1] for d in descriptions if d}
    if len(texts) <= 1:
        return texts.pop() if texts else ""
    return " | ".join(d for d in descriptions if d)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for field_ in schema:
        if field_.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field_.type))
            continue
        values = table.column(field_.name).combine_chunks()
        target = field_.type
        if pa.types.is_string(target) and not _castable_to_text(values.type):
            columns.append(pa.array([_json(v) for v in values.to_pylist()], pa.string()))
        else:
            columns.append(values.cast(target))
    return pa.Table.from_arrays(columns, schema=schema)


def _castable_to_text(kind: pa.DataType) -> bool:
    return not (pa.types.is_nested(kind) or pa.types.is_dictionary(kind))


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value)
