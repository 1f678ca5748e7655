"""Unit quality presets: named, NaN-safe filters, one definition for polars and for SQL.

A preset is a list of criteria on unit metrics (`metric op threshold`). A unit passes a preset
when it passes every criterion; a criterion on a metric that is missing for the unit — NULL
(the source has no such column, or left the value out) or NaN (the sorter could not compute
it) — FAILS. That matters because DuckDB and polars order NaN above every number: written
naively, `snr > 1` is true for a NaN snr.

The thresholds live here only. The SQL side (`queries/presets/quality.sql`: boolean macros
`passes_<preset>(...)`, the view `units_quality` with one boolean column per preset, and the
table macro `units_with_preset(name)`) is rendered from these definitions by `render_sql`, and a
test checks that the file is up to date (`write_sql()` rewrites it).

Presets are off by default: nothing in nplake filters units unless asked.

Examples
--------
>>> import polars as pl
>>> units = pl.DataFrame({"snr": [2.0, float("nan"), 0.5], "isi_violations": [0.1, 0.1, 0.1],
...                       "firing_rate": [3.0, 3.0, 3.0]})
>>> units.select(preset_expr("visual_behavior").alias("ok"))["ok"].to_list()
[True, False, False]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from schemas.errors import InvalidName

Op = Literal["<", "<=", ">", ">=", "=="]


@dataclass(frozen=True)
class Criterion:
    """One test of a unit metric against a threshold; a missing (NULL or NaN) metric fails."""

    metric: str
    op: Op
    threshold: float | str

    def expr(self) -> pl.Expr:
        """The criterion as a polars boolean expression (never null: missing -> False)."""
        if isinstance(self.threshold, str):
            value = pl.col(self.metric).cast(pl.String, strict=False)
            return (value == self.threshold).fill_null(False)
        x = pl.col(self.metric).cast(pl.Float64, strict=False)
        compare = {
            "<": x < self.threshold,
            "<=": x <= self.threshold,
            ">": x > self.threshold,
            ">=": x >= self.threshold,
            "==": x == self.threshold,
        }[self.op]
        return (x.is_not_nan() & compare).fill_null(False)

    def sql(self, argument: str) -> str:
        """The criterion as a DuckDB boolean expression on `argument` (never NULL)."""
        if isinstance(self.threshold, str):
            literal = self.threshold.replace("'", "''")
            return f"coalesce(CAST({argument} AS VARCHAR) = '{literal}', false)"
        op = "=" if self.op == "==" else self.op
        value = f"CAST('{float(self.threshold)!r}' AS DOUBLE)"
        return f"nan_safe_compare(TRY_CAST({argument} AS DOUBLE), '{op}', {value})"

    def describe(self) -> str:
        """Human-readable form, e.g. `snr > 1.0`."""
        value = f"'{self.threshold}'" if isinstance(self.threshold, str) else f"{self.threshold}"
        return f"{self.metric} {self.op} {value}"


@dataclass(frozen=True)
class Preset:
    """A named quality filter: every criterion must pass."""

    name: str
    title: str
    source: str
    criteria: tuple[Criterion, ...]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The unit columns the preset reads, in criterion order."""
        return tuple(c.metric for c in self.criteria)

    def expr(self) -> pl.Expr:
        """True for units passing every criterion; False otherwise (never null)."""
        out = self.criteria[0].expr()
        for criterion in self.criteria[1:]:
            out = out & criterion.expr()
        return out.alias(self.name)

    def label_expr(self) -> pl.Expr:
        """Fraction of criteria passed (0..1); 1.0 exactly when the preset passes."""
        total = pl.sum_horizontal([c.expr().cast(pl.Int64) for c in self.criteria])
        return (total / len(self.criteria)).alias(f"{self.name}_label")


#: The presets, by name. Off by default: they filter only when asked.
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="allen_visual_coding",
            title="Allen Visual Coding Neuropixels defaults",
            source="AllenSDK ecephys defaults: amplitude_cutoff <= 0.1, presence_ratio >= 0.95, "
            "isi_violations <= 0.5, and the curation label 'good'",
            criteria=(
                Criterion("amplitude_cutoff", "<=", 0.1),
                Criterion("presence_ratio", ">=", 0.95),
                Criterion("isi_violations", "<=", 0.5),
                Criterion("quality", "==", "good"),
            ),
        ),
        Preset(
            name="visual_behavior",
            title="Visual Behavior Neuropixels tutorial filter (looser)",
            source="the unit filter of the Allen Visual Behavior Neuropixels tutorials: "
            "snr > 1, isi_violations < 1, firing_rate > 0.1 Hz",
            criteria=(
                Criterion("snr", ">", 1.0),
                Criterion("isi_violations", "<", 1.0),
                Criterion("firing_rate", ">", 0.1),
            ),
        ),
        Preset(
            name="ibl",
            title="IBL single-unit label (all three criteria)",
            source="IBL spike-sorting QC (brainbox.metrics.single_units): the sliding "
            "refractory-period test passes (slidingRP_viol = 1), noise_cutoff < 5, and the "
            "median amplitude amp_median > 50 µV (stored in volts: > 50e-6)",
            criteria=(
                Criterion("slidingRP_viol", "==", 1.0),
                Criterion("noise_cutoff", "<", 5.0),
                Criterion("amp_median", ">", 50e-6),
            ),
        ),
    )
}


def preset(name: str) -> Preset:
    """The preset called `name` (see `PRESETS`)."""
    if name not in PRESETS:
        msg = f"unknown quality preset {name!r}; presets: {', '.join(PRESETS)}"
        raise InvalidName(msg)
    return PRESETS[name]


def preset_expr(name: str) -> pl.Expr:
    """A polars boolean expression: True for units passing preset `name` (NaN/NULL fail).

    Examples
    --------
    >>> good = lk.scan("units").filter(preset_expr("allen_visual_coding"))  # doctest: +SKIP
    """
    return preset(name).expr()


def quality_columns() -> list[pl.Expr]:
    """One boolean column per preset (named like the preset) plus `ibl_label` (0..1)."""
    return [p.expr() for p in PRESETS.values()] + [PRESETS["ibl"].label_expr()]


# ------------------------------------------------------------------------------- the SQL side
SQL_PATH = Path(__file__).resolve().parents[1] / "queries" / "presets" / "quality.sql"

_HEADER = """\
-- Unit quality presets: NaN-safe boolean macros, the view units_quality, and the table macro
-- units_with_preset(name). GENERATED from lake/presets.py by lake.presets.write_sql(): edit the
-- thresholds there (a test checks that this file is up to date).
--
-- A unit passes a preset when it passes every criterion. A metric that is NULL (the source has
-- no such column, or no value) or NaN (the sorter could not compute it) FAILS its criterion:
-- DuckDB orders NaN above every number, so a bare `snr > 1` would be true for a NaN snr.
-- Presets are off by default; use them explicitly, e.g.
--   SELECT * FROM units_annotated JOIN units_quality USING (session_id, unit_id)
--   WHERE allen_visual_coding;
--   SELECT * FROM units_with_preset('visual_behavior');
"""

_COMPARE = """
-- nan_safe_compare(x, op, threshold): x <op> threshold, false when x is NULL or NaN.
CREATE OR REPLACE MACRO nan_safe_compare(x, op, threshold) AS coalesce(
    NOT isnan(x) AND CASE op
        WHEN '<' THEN x < threshold
        WHEN '<=' THEN x <= threshold
        WHEN '>' THEN x > threshold
        WHEN '>=' THEN x >= threshold
        WHEN '=' THEN x = threshold
        ELSE error('nan_safe_compare: unknown operator ' || op)
    END,
    false
);
"""


def render_sql() -> str:
    """The text of `queries/presets/quality.sql`, rendered from `PRESETS`."""
    parts = [_HEADER, _COMPARE]
    for p in PRESETS.values():
        args = ", ".join(p.metrics)
        body = "\n    AND ".join(c.sql(c.metric) for c in p.criteria)
        checks = "; ".join(c.describe() for c in p.criteria)
        parts.append(
            f"\n-- {p.title}: {checks}.\n"
            f"CREATE OR REPLACE MACRO passes_{p.name}({args}) AS (\n    {body}\n);\n"
        )
    ibl = PRESETS["ibl"]
    label_terms = "\n    + ".join(f"CAST({c.sql(c.metric)} AS INTEGER)" for c in ibl.criteria)
    parts.append(
        "\n-- IBL-style label: the fraction of the IBL criteria a unit passes (1.0 = all pass; a\n"
        "-- missing metric counts as failed).\n"
        f"CREATE OR REPLACE MACRO ibl_label({', '.join(ibl.metrics)}) AS (\n"
        f"    ({label_terms}\n    ) / {len(ibl.criteria)}.0\n);\n"
    )
    columns = ",\n    ".join(
        f"passes_{p.name}({', '.join(p.metrics)}) AS {p.name}" for p in PRESETS.values()
    )
    label = f"ibl_label({', '.join(ibl.metrics)}) AS ibl_label"
    parts.append(
        "\n-- units_quality: one row per unit, one boolean column per preset, and ibl_label. It\n"
        "-- reads units_annotated (every units column; materialized per connection: fast).\n"
        "CREATE OR REPLACE VIEW units_quality AS\nSELECT\n    session_id,\n    unit_id,\n"
        f"    {columns},\n    {label}\nFROM units_annotated;\n"
    )
    names = ", ".join(f"'{n}'" for n in PRESETS)
    cases = "\n        ".join(
        f"WHEN '{p.name}' THEN passes_{p.name}({', '.join(p.metrics)})" for p in PRESETS.values()
    )
    parts.append(
        "\n-- units_with_preset(name): the rows of units_annotated passing preset `name`\n"
        f"-- (one of {names}).\n"
        "CREATE OR REPLACE MACRO units_with_preset(preset_name) AS TABLE\n"
        "SELECT *\nFROM units_annotated\n"
        f"WHERE CASE preset_name\n        {cases}\n"
        "        ELSE error('unknown quality preset ' || preset_name)\n    END;\n"
    )
    return "".join(parts)


def write_sql(path: str | Path = SQL_PATH) -> Path:
    """Rewrite `queries/presets/quality.sql` from `PRESETS`; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_sql())
    return out
