"""One lake version per analysis call, and what analysis computes once per version.

`pinned(lake)` is the lake fixed at the version it reads now (`Lake.pinned`), the same object
while that version holds: every read of one call sees one snapshot, and its DuckDB connection
is built once per version. `computed(lake)` keeps, per pinned lake, units_annotated as a polars
frame and each session's unit rows; both go with the lake.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import polars as pl

from lake.analysis import _reader, _sql

if TYPE_CHECKING:
    from lake.lake import Lake


def pinned(lake: Lake) -> Lake:
    """`lake` at the version it reads now; the same Lake object while that version holds."""
    known = _PINNED.get(lake)
    if known is not None and known.version == lake.version:
        return known
    fixed = lake.pinned()
    if fixed is not lake:  # else pinned already (`Lake.at`)
        _PINNED[lake] = fixed
    return fixed


def computed(lake: Lake) -> Computed:
    """What analysis computed once on `lake`, a lake from `pinned`."""
    found = _COMPUTED.get(lake)
    if found is None:
        found = _COMPUTED[lake] = Computed()
    return found


class Computed:
    """units_annotated as a polars frame and each session's unit rows, of one pinned lake.

    Polars frames are immutable, so handing out the same frame is safe.
    """

    def __init__(self) -> None:
        self._units_annotated: pl.DataFrame | None = None
        self._unit_rows: dict[str, _reader.UnitRows] | None = None

    def units_annotated(self, lake: Lake) -> pl.DataFrame:
        """The rows of the units_annotated view (held in memory by the lake's connection)."""
        if self._units_annotated is None:
            self._units_annotated = lake.sql(_sql.UNITS_ANNOTATED).rechunk()
        return self._units_annotated

    def unit_rows(self, lake: Lake) -> dict[str, _reader.UnitRows]:
        """Sessions whose units all have a spike_count: where each unit's spikes are."""
        if self._unit_rows is None:
            self._unit_rows = _reader.unit_rows(self.units_annotated(lake))
        return self._unit_rows


#: Per lake following the latest version: that lake pinned at the version it last read.
_PINNED: weakref.WeakKeyDictionary[Lake, Lake] = weakref.WeakKeyDictionary()
#: Per pinned lake: what analysis computed on it (see `Computed`).
_COMPUTED: weakref.WeakKeyDictionary[Lake, Computed] = weakref.WeakKeyDictionary()
