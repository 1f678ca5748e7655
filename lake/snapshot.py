"""A consistent read state of the lake: the current sessions and, per table, its current files.

The sessions table's version is the lake version. A snapshot lists, for every table, only the
files of the (session_id, ingest_id) partitions the sessions rows name, and checks their row
counts against the sessions row's n_<table> columns — so a reader can never see half a session,
even while an ingest commits and cleans up concurrently (it retries until the state is whole).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lake.storage import INGEST_ID, Store, table_schema
from schemas import SESSION_SCOPED, TABLES, LakeError

_RETRIES = 8


@dataclass(frozen=True)
class TableState:
    """One table as a snapshot sees it: Delta version, schema, files of current partitions."""

    name: str
    version: int
    schema: pa.Schema
    files: tuple[str, ...]
    rows: int


@dataclass(frozen=True)
class Snapshot:
    """The lake at one sessions-table version."""

    version: int
    sessions: pa.Table
    tables: dict[str, TableState]

    def files(self, table: str, session_id: str | None = None) -> tuple[str, ...]:
        """URIs of the files holding `table`'s current rows (of one session, if given).

        Open one with `Store.open_input`. Every reader that needs "this session's files" asks
        here, so how files are laid out stays the storage layer's business.
        """
        state = self.tables[table]
        if session_id is None:
            return state.files
        marker = f"/session_id={session_id}/"
        return tuple(f for f in state.files if marker in f)

    def schema(self, table: str) -> pa.Schema:
        """The stored schema of `table` at this snapshot (sessions included)."""
        if table == "sessions":
            return self.sessions.schema
        return self.tables[table].schema

    @property
    def ingest_ids(self) -> dict[str, str]:
        """Current ingest id per session id."""
        return dict(
            zip(
                self.sessions.column("session_id").to_pylist(),
                self.sessions.column(INGEST_ID).to_pylist(),
                strict=True,
            )
        )


def take_snapshot(store: Store, version: int | None = None) -> Snapshot:
    """A consistent snapshot of the latest lake state, or of lake version `version`."""
    for _ in range(_RETRIES):
        sessions_dt = store.table("sessions", version)
        sessions = _sorted_sessions(sessions_dt.to_pyarrow_table())
        hints = _version_hints(sessions_dt) if version is not None else {}
        states = {}
        for name in SESSION_SCOPED:
            state = _table_state(
                store, name, sessions, latest=version is None, hint=hints.get(name)
            )
            if state is None:
                break
            states[name] = state
        else:
            return Snapshot(sessions_dt.version(), sessions, states)
    msg = f"{store.root}: the lake kept changing while being read, or it is inconsistent"
    raise LakeError(msg)


def _sorted_sessions(table: pa.Table) -> pa.Table:
    spec = TABLES["sessions"]
    names = [c for c in spec.column_names if c in table.column_names]
    return table.select(names).sort_by("session_id")


def _version_hints(sessions_dt) -> dict[str, int]:
    """Table versions recorded by the commit that made this sessions version."""
    version = sessions_dt.version()
    for entry in sessions_dt.history(limit=1):
        if entry.get("version") == version and "nplake.table_versions" in entry:
            return json.loads(entry["nplake.table_versions"])
    return {}


def _table_state(
    store: Store, name: str, sessions: pa.Table, *, latest: bool, hint: int | None
) -> TableState | None:
    """The table's current files, or None when they do not match the sessions rows."""
    expected = _expected_rows(sessions, name)
    if latest:
        state = _state_at(store, name, None, sessions, expected)
        return state
    # A past lake version: the table version recorded at commit time has every partition the
    # sessions rows name, unless a concurrent ingest committed in between; then a slightly
    # later version does (additions always precede the removals of what they replace).
    dt = store.table(name, hint if hint is not None else 0)
    newest = store.table(name).version()
    for v in range(dt.version(), newest + 1):
        state = _state_at(store, name, v, sessions, expected)
        if state is not None:
            return state
    msg = f"table {name}: no version holds the rows of this lake version (vacuumed?)"
    raise LakeError(msg)


def _expected_rows(sessions: pa.Table, name: str) -> dict[tuple[str, str], int]:
    column = f"n_{name}"
    counts = (
        sessions.column(column).to_pylist()
        if column in sessions.column_names
        else [None] * sessions.num_rows
    )
    return {
        (sid, iid): int(n or 0)
        for sid, iid, n in zip(
            sessions.column("session_id").to_pylist(),
            sessions.column(INGEST_ID).to_pylist(),
            counts,
            strict=True,
        )
    }


def _state_at(
    store: Store,
    name: str,
    version: int | None,
    sessions: pa.Table,
    expected: dict[tuple[str, str], int],
) -> TableState | None:
    dt = store.table(name, version)
    actions = pa.table(dt.get_add_actions(flatten=True))
    schema = pa.schema([f for f in table_schema(dt) if f.name != INGEST_ID])
    if actions.num_rows == 0:
        ok = all(n == 0 for n in expected.values())
        return TableState(name, dt.version(), schema, (), 0) if ok else None
    sids = actions.column("partition.session_id")
    iids = actions.column(f"partition.{INGEST_ID}")
    keys = pc.binary_join_element_wise(sids, iids, "\x1f")
    wanted = pa.array([f"{s}\x1f{i}" for s, i in expected], pa.string())
    current = actions.filter(pc.is_in(keys, value_set=wanted))
    got: dict[tuple[str, str], int] = {}
    for sid, iid, n in zip(
        current.column("partition.session_id").to_pylist(),
        current.column(f"partition.{INGEST_ID}").to_pylist(),
        current.column("num_records").to_pylist(),
        strict=True,
    ):
        got[(sid, iid)] = got.get((sid, iid), 0) + int(n or 0)
    if any(got.get(key, 0) != n for key, n in expected.items()):
        return None
    base = store.table_uri(name)
    files = tuple(f"{base}/{p}" for p in current.column("path").to_pylist())
    return TableState(name, dt.version(), schema, files, sum(got.values()))
