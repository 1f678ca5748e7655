"""Render docs/tables.md from `TABLES`: every table, every column with type, unit and meaning."""

from __future__ import annotations

from schemas.tables import TABLES


def render_tables_markdown() -> str:
    """The full text of docs/tables.md."""
    lines = [
        "# Tables",
        "",
        "Generated from `schemas/tables.py` by `python -m schemas.docs` — edit the specs, not this "
        "file. Every table has `session_id` and is partitioned by it. Times are seconds on the "
        "session's master clock, positions µm, rates Hz.",
        "",
        "Tables marked *open* keep every extra column a source has (names made Delta-safe: "
        "characters other than letters, digits and `_` become `_`; integers are stored as int64, "
        "floats as float64, ragged columns as lists).",
        "",
    ]
    for spec in TABLES.values():
        key = ", ".join(spec.key)
        flags = []
        if spec.open_columns:
            flags.append("open")
        if not spec.unique_key:
            flags.append("key not unique")
        extra = f" ({'; '.join(flags)})" if flags else ""
        lines += [
            f"## `{spec.name}`{extra}",
            "",
            spec.description,
            "",
            f"Key: `{key}` · sorted by `{', '.join(spec.sort_by)}` within each session · "
            f"partitioned by `{', '.join(spec.partition_by)}`.",
            "",
        ]
        if spec.notes:
            lines += [spec.notes, ""]
        lines += ["| column | type | unit | required | meaning |", "|---|---|---|---|---|"]
        for col in spec.columns:
            required = "yes" if not col.nullable else ""
            unit = col.unit or ""
            lines.append(f"| `{col.name}` | {col.type} | {unit} | {required} | {col.description} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_tables_markdown(), end="")
