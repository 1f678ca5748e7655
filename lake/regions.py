"""Brain regions in polars: the Allen CCF ontology and the twins of the SQL region macros.

The SQL side (queries/macros/regions.sql) and this module read the same reference table,
`brain_regions` (queries/reference/README.md: where it comes from, under which terms, its
columns), and give the same answers (tested):

- `in_region(area, "VIS")` is SQL's ``in_region(structure_acronym, 'VIS')``: true for the area
  and every descendant, false for NULL, unknown acronyms, 'root' and 'void';
- `area_at(level)` is the grouping of ``rates_by_area(..., level := ...)`` and
  ``psth_by_area``, over the columns of units_annotated.

Examples
--------
>>> import polars as pl
>>> from lake.regions import in_region
>>> units = lk.analysis.units_annotated()  # doctest: +SKIP
>>> units.filter(in_region(pl.col("structure_acronym"), "VIS"))  # doctest: +SKIP
"""

from __future__ import annotations

import functools

import polars as pl

from queries import reference_table
from schemas.errors import UnknownRegion

#: The grouping levels that are not a depth: the acronym as written, IBL's Beryl and Cosmos.
NAMED_LEVELS = ("structure", "beryl", "cosmos")
#: A grouping level: one of NAMED_LEVELS, or a depth of the ontology (root 0, VISp 7).
Level = str | int


def brain_regions() -> pl.DataFrame:
    """The Allen CCF structure ontology with IBL's Beryl and Cosmos areas, one row per structure.

    The same rows as the `brain_regions` table of every lake connection (columns:
    queries/reference/README.md).
    """
    return _regions()


@functools.cache
def _regions() -> pl.DataFrame:
    frame = pl.from_arrow(reference_table("brain_regions"))
    assert isinstance(frame, pl.DataFrame)
    return frame


def descendants(region: str) -> list[str]:
    """Acronyms of `region` and of every structure below it (root and void never included).

    Raises `UnknownRegion` for an acronym the ontology does not have (case matters).
    """
    regions = _regions()
    if regions.filter(pl.col("acronym") == region).height == 0:
        msg = (
            f"{region!r} is not an acronym of the Allen CCF ontology (lake.regions."
            "brain_regions() lists them; acronyms are case-sensitive)"
        )
        raise UnknownRegion(msg)
    inside = pl.col("path_acronyms").list.contains(pl.lit(region)) & (pl.col("depth") > 0)
    return regions.filter(inside)["acronym"].to_list()


def in_region(area: pl.Expr | str, region: str) -> pl.Expr:
    """True where the acronym `area` is `region` or one of its descendants; else false.

    Parameters
    ----------
    area
        An expression (or column name) holding acronyms, e.g. units_annotated's
        "structure_acronym".
    region
        An acronym of the ontology: "VIS" (every visual area and layer), "HPF", "TH", "VISp".
    """
    column = pl.col(area) if isinstance(area, str) else area
    return column.is_in(descendants(region)).fill_null(False)


def check_level(level: Level) -> str | int:
    """`level` as "structure", "beryl", "cosmos" or an int depth >= 0; else `UnknownRegion`."""
    if isinstance(level, str) and level in NAMED_LEVELS:
        return level
    text = str(level)
    if not isinstance(level, bool) and text.isdigit():
        return int(text)
    msg = (
        f"level must be 'structure', 'beryl', 'cosmos' or a depth >= 0 of the ontology "
        f"(root 0, Isocortex 5, VIS 6, VISp 7), not {level!r}"
    )
    raise UnknownRegion(msg)


def area_at(level: Level = "structure") -> pl.Expr:
    """A unit's area at `level`, from units_annotated's columns, named "structure_acronym".

    "structure": the acronym as the source wrote it; "beryl" / "cosmos": IBL's area (NULL when
    none holds the structure or the acronym is not in the ontology); a depth N: the structure
    at depth N of the unit's parent chain, or the structure itself when it is shallower.
    """
    checked = check_level(level)
    if checked == "structure":
        expr = pl.col("structure_acronym")
    elif checked in ("beryl", "cosmos"):
        expr = pl.col(f"{checked}_acronym")
    else:
        path = pl.col("structure_path")
        expr = path.list.get(pl.min_horizontal(pl.lit(checked), path.list.len() - 1))
    return expr.alias("structure_acronym")
