"""Atomic per-session commit across all tables, with the sessions row as the commit point.

1. A new ingest id (UTC time + random suffix, so ids sort by start time) tags the ingest.
2. Each table gets the session's rows appended into partition (session_id, ingest_id); readers
   ignore them, because they only read partitions named by the sessions table.
3. One overwrite of the session's row in `sessions`, pinned to the version read in step 3,
   names the new ingest id: that single Delta commit makes every table switch at once.
   A newer ingest of the same session that committed first wins; this one then fails with
   CommitConflict and leaves nothing behind.
4. Partitions of older ingests of the session are deleted (metadata only).

A failure or kill at any point before step 3 leaves only invisible partitions, which this
module removes on the way out when it can, and the next ingest of the session (or
`maintenance.collect_garbage`) removes otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import CommitFailedError

from lake.storage import INGEST_ID, Store, new_columns, write_sessions_row
from schemas import SESSION_SCOPED, TABLES, CommitConflict, SchemaViolation, SessionBundle
from schemas.conform import conform_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitResult:
    """What one commit did: the ingest id, rows per table, and the ingest it replaced."""

    session_id: str
    ingest_id: str
    rows: dict[str, int]
    replaced: str | None
    version: int


def new_ingest_id(now: dt.datetime | None = None) -> str:
    """A new ingest id: UTC start time to the microsecond plus 8 random hex digits."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%f}Z{secrets.token_hex(4)}"


def commit_bundle(
    store: Store, bundle: SessionBundle, *, source_hash: str, pipeline_version: str
) -> CommitResult:
    """Write a validated bundle into the lake, atomically across all tables."""
    sid = bundle.session_id
    ingest_id = new_ingest_id()
    rows: dict[str, int] = {}
    for name in SESSION_SCOPED:  # a type clash in any table fails before anything is written
        if bundle.num_rows(name):
            new_columns(store.table(name), name, bundle.tables[name].schema)
    try:
        for name in SESSION_SCOPED:
            expected = bundle.num_rows(name)
            if expected == 0:
                rows[name] = 0
                continue
            data = bundle.tables[name]
            written = store.append(name, sid, ingest_id, bundle.batches(name), data.schema)
            if written != expected:
                msg = f"wrote {written} rows but the decoder announced {expected}"
                raise SchemaViolation(msg, table=name)
            rows[name] = written
        sessions = store.table("sessions")
        previous = current_ingest_id(sessions.to_pyarrow_table(), sid)
        if previous is not None and previous > ingest_id:
            msg = f"session {sid}: a newer ingest ({previous}) landed while this one ran"
            raise CommitConflict(msg)
        row = sessions_row(bundle, ingest_id, source_hash, pipeline_version, rows)
        metadata = {
            "nplake.operation": "ingest",
            "nplake.session_id": sid,
            "nplake.ingest_id": ingest_id,
            "nplake.table_versions": json.dumps(
                {name: store.table(name).version() for name in SESSION_SCOPED}
            ),
        }
        try:
            write_sessions_row(sessions, row, sid, metadata)
        except CommitFailedError as exc:
            msg = f"session {sid}: another ingest of this session committed first ({exc})"
            raise CommitConflict(msg) from None
    except BaseException:
        drop_ingest(store, sid, ingest_id)
        raise
    version = store.table("sessions").version()
    drop_older_ingests(store, sid, ingest_id)
    return CommitResult(sid, ingest_id, rows, previous, version)


def current_ingest_id(sessions: pa.Table, session_id: str) -> str | None:
    """The ingest id the sessions table names for `session_id`, if the session exists."""
    hits = sessions.filter(pc.equal(sessions.column("session_id"), session_id))
    return hits.column(INGEST_ID)[0].as_py() if hits.num_rows else None


def sessions_row(
    bundle: SessionBundle,
    ingest_id: str,
    source_hash: str,
    pipeline_version: str,
    rows: dict[str, int],
) -> pa.Table:
    """The bundle's sessions row with the lake-filled columns set."""
    row = bundle.table("sessions")
    filled = {
        "source_hash": source_hash,
        "pipeline_version": pipeline_version,
        INGEST_ID: ingest_id,
        "ingested_at": dt.datetime.now(dt.timezone.utc),
        **{f"n_{name}": rows.get(name, 0) for name in SESSION_SCOPED},
    }
    spec = TABLES["sessions"]
    for name, value in filled.items():
        index = row.schema.get_field_index(name)
        row = row.set_column(
            index, spec.column(name).field(), pa.array([value], spec.column(name).type)
        )
    return conform_table(spec, row, bundle.session_id)


def drop_older_ingests(store: Store, session_id: str, ingest_id: str) -> None:
    """Delete partitions of ingests of this session older than `ingest_id` (best effort)."""
    predicate = f"session_id = '{session_id}' AND {INGEST_ID} < '{ingest_id}'"
    _delete_partitions(store, session_id, lambda iid: iid < ingest_id, predicate)


def drop_ingest(store: Store, session_id: str, ingest_id: str) -> None:
    """Remove every trace of one uncommitted ingest (best effort; never raises)."""
    predicate = f"session_id = '{session_id}' AND {INGEST_ID} = '{ingest_id}'"
    _delete_partitions(store, session_id, lambda iid: iid == ingest_id, predicate)
    if store.is_local:  # files written but never committed
        for name in SESSION_SCOPED:
            folder = (
                Path(store.table_uri(name))
                / f"session_id={session_id}"
                / f"{INGEST_ID}={ingest_id}"
            )
            shutil.rmtree(folder, ignore_errors=True)


def _delete_partitions(store: Store, session_id: str, matches, predicate: str) -> None:
    for name in SESSION_SCOPED:
        try:
            table = store.table(name)
            if any(matches(iid) for iid in partition_ingest_ids(table, session_id)):
                table.delete(predicate)
        except Exception as exc:  # cleanup must not mask the real outcome
            log.warning("could not clean %s of session %s: %s", name, session_id, exc)


def partition_ingest_ids(table, session_id: str) -> set[str]:
    """Ingest ids that have files for `session_id` in a Delta table."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return set()
    mine = actions.filter(pc.equal(actions.column("partition.session_id"), session_id))
    return set(mine.column(f"partition.{INGEST_ID}").to_pylist())
