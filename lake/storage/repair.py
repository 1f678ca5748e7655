"""Repair Delta logs whose file statistics are not valid JSON.

nplake before version 0.2 wrote the statistics of a file with an infinite value (say one
`inf` spike time) as JSON with a literal `Infinity`, which delta-rs cannot parse: every read of
that table failed from then on, and so did its checkpoints. `repair` rewrites each such log
entry (and checkpoint) with the offending minimum/maximum left out — a reader then simply
cannot skip that file by its statistics — and leaves everything else byte for byte. Today's
writer never produces such statistics (lake/storage/parquet.py).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.storage.store import Store
from schemas import TABLES

_BAD = (b"Infinity", b"NaN")


@dataclass
class RepairReport:
    """Log files rewritten, per table."""

    rewritten: dict[str, list[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        total = sum(len(v) for v in self.rewritten.values())
        if not total:
            return "every Delta log holds valid statistics: nothing to repair"
        parts = ", ".join(f"{t}: {len(v)}" for t, v in self.rewritten.items() if v)
        return f"repaired {total} Delta log files ({parts})"


def repair(store: Store) -> RepairReport:
    """Rewrite every Delta log entry and checkpoint of the lake with invalid statistics."""
    report = RepairReport()
    for name in TABLES:
        fixed = []
        for info in store.files.list(f"{name}/_delta_log"):
            data = store.files.read_bytes(info.path)
            if data is None or not any(b in data for b in _BAD):
                continue
            if info.path.endswith(".json"):
                new = _repair_commit(data)
            elif info.path.endswith(".parquet"):
                new = _repair_checkpoint(data)
            else:
                continue
            if new is not None and new != data:
                store.files.put(info.path, new)
                fixed.append(info.path)
        report.rewritten[name] = fixed
    return report


def clean_stats(text: str | None) -> str | None:
    """Statistics JSON without non-finite minima/maxima (valid JSON for every reader)."""
    if text is None:
        return None
    stats = json.loads(text)  # Python's json reads Infinity and NaN
    for key in ("minValues", "maxValues"):
        values = stats.get(key) or {}
        stats[key] = {k: v for k, v in values.items() if not _non_finite(v)}
    return json.dumps(stats, allow_nan=False)


def _non_finite(value) -> bool:
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return isinstance(value, float) and not math.isfinite(value)


def _repair_commit(data: bytes) -> bytes:
    lines = []
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        add = action.get("add")
        if add is not None and add.get("stats"):
            add["stats"] = clean_stats(add["stats"])
        lines.append(json.dumps(action, allow_nan=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def _repair_checkpoint(data: bytes) -> bytes | None:
    table = pq.read_table(pa.py_buffer(data))
    if "add" not in table.column_names:
        return None
    add = table.column("add").combine_chunks()
    if "stats" not in [add.type.field(i).name for i in range(add.type.num_fields)]:
        return None
    stats = pc.struct_field(add, "stats").to_pylist()
    fixed = pa.array([clean_stats(s) for s in stats], pa.string())
    fields = [add.type.field(i) for i in range(add.type.num_fields)]
    children = [fixed if f.name == "stats" else pc.struct_field(add, f.name) for f in fields]
    rebuilt = pa.StructArray.from_arrays(children, fields=fields, mask=pc.is_null(add))
    out = table.set_column(table.schema.get_field_index("add"), "add", rebuilt)
    sink = io.BytesIO()
    pq.write_table(out, sink)
    return sink.getvalue()
