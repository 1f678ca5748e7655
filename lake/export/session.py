"""Read one session from the lake for NWB export: small tables whole, spikes as files.

Small tables come through `Lake.scan` (current rows of the lake version the Lake is pinned to),
in the lake's sort order, as Arrow with plain types. Spikes are never read whole: the session's
files come from `Lake.snapshot()` and are streamed while the file is written
(`lake.export.spikes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from lake.export.spikes import SpikeFiles, spike_files
from schemas import SESSION_SCOPED, TABLES
from schemas.errors import InconsistentSession

if TYPE_CHECKING:
    from lake import Lake


@dataclass
class SessionRows:
    """One session's rows: small tables in lake order, column descriptions, the spikes files."""

    session_id: str
    session: dict
    tables: dict[str, pa.Table]
    descriptions: dict[str, dict[str, str]]
    spikes: SpikeFiles | None = None

    def table(self, name: str) -> pa.Table:
        """Rows of `name` (an empty table with no columns when the session has none)."""
        return self.tables.get(name, pa.table({}))

    def inconsistent(self, message: str) -> InconsistentSession:
        """An InconsistentSession error naming this session."""
        return InconsistentSession(f"session {self.session_id}: {message}")


def read_session(lk: Lake, session_id: str, *, session: dict | None = None) -> SessionRows:
    """The rows of `session_id` in every table of `lk` (spikes as files, not read).

    `session` is its sessions row when the caller has it already (read from the same `lk`).
    """
    lk = lk.pinned()
    if session is None:
        sessions = lk.scan("sessions").filter(pl.col("session_id") == session_id).collect()
        session = sessions.row(0, named=True)
    snapshot = lk.snapshot()
    names = [n for n in SESSION_SCOPED if n != "spikes" and session.get(f"n_{n}")]
    frames = [lk.scan(n).filter(pl.col("session_id") == session_id) for n in names]
    tables: dict[str, pa.Table] = {}
    descriptions = {"sessions": {c.name: c.description for c in TABLES["sessions"].columns}}
    for name, frame in zip(names, pl.collect_all(frames), strict=True):
        table = plain_types(frame.drop("session_id").to_arrow())
        tables[name] = _sorted(table, TABLES[name].sort_by)
        descriptions[name] = _descriptions(snapshot.schema(name), name)
    rows = SessionRows(session_id, session, tables, descriptions)
    if session.get("n_spikes"):
        uris = snapshot.files("spikes", session_id)
        rows.spikes = spike_files(rows, uris, lk.store.open_input)
    return rows


def _descriptions(schema: pa.Schema, name: str) -> dict[str, str]:
    """Column descriptions of a table: the spec's, else the source's (Delta field metadata)."""
    spec = TABLES[name]
    out = {}
    for field_ in schema:
        if spec.has_column(field_.name):
            out[field_.name] = spec.column(field_.name).description
        else:
            meta = field_.metadata or {}
            out[field_.name] = (meta.get(b"description") or b"").decode("utf-8", "replace")
    return out


def _sorted(table: pa.Table, sort_by: tuple[str, ...]) -> pa.Table:
    keys = [(c, "ascending") for c in sort_by if c in table.column_names and c != "session_id"]
    return table.sort_by(keys) if keys and table.num_rows > 1 else table


def plain_types(table: pa.Table) -> pa.Table:
    """`table` with polars' large and view types as plain Arrow string and list types."""
    schema = pa.schema([f.with_type(_plain(f.type)) for f in table.schema])
    return table.cast(schema) if schema != table.schema else table


def _plain(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_list(t):
        return pa.list_(_plain(t.value_type))
    return t
