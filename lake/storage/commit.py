"""Group commit: many sessions land in one lake version, each whole or not at all.

1. **Prepare** (any process, e.g. a worker): decode a session, write its per-session tables'
   files (spikes, sync_edges) under a lease, keep its small tables in memory. Nothing is
   visible: no log entry names these files.
2. **Commit** (the coordinator): on top of the newest lake version, check each session's
   columns against the lake (a clash fails that session alone), write one file per shared
   table holding the group's rows, rewrite the files holding rows of sessions being replaced
   without those rows, and append one log entry naming every added and removed file. The
   put-if-absent of that entry is the commit point. If another writer took the version first,
   the files that depend on the lake's state are written again on top of the new version
   (rebase); the group's sessions never fail because someone else committed.
3. **Publish** each changed Delta table (lake/storage/publish.py) and write a checkpoint.

A replaced session's old files stay on disk (time travel) until `vacuum`. The last commit of a
session wins: two ingests of one session both land, in commit order, the later replacing the
earlier, exactly as if they had run one after the other.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.storage import parquet
from lake.storage.files import Files
from lake.storage.leases import new_lease_id
from lake.storage.log import LakeLog
from lake.storage.manifest import LogEntry, Manifest, SessionChange
from lake.storage.parquet import (
    DataFile,
    chunked_files,
    reconcile_batch,
    write_data_file,
)
from lake.storage.schema import (
    data_schema,
    evolved,
    per_session,
    schema_key,
    schema_to_text,
)
from schemas import LAKE_FILLED, TABLES, CommitConflict, SchemaViolation, SessionBundle
from schemas.conform import conform_table

log = logging.getLogger(__name__)

#: Attempts of a commit that keeps losing the race for the next version to other writers.
COMMIT_ATTEMPTS = 50


@dataclass
class PreparedSession:
    """A decoded session ready to commit: its big tables written, its small ones in memory."""

    session_id: str
    ingest_id: str
    shared: dict[str, pa.Table]  # small tables with a session_id column, incl. its sessions row
    files: list[DataFile]  # files of per-session tables, written under the batch's lease
    rows: dict[str, int]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GroupResult:
    """What one group commit did: the lake version, landed sessions, failures with reasons."""

    version: int | None
    landed: list[SessionChange]  # the sessions that landed, with the ingests they replaced
    failed: dict[str, str]  # ingest id -> reason


def new_ingest_id(now: dt.datetime | None = None) -> str:
    """A new ingest id: UTC start time to the microsecond plus 8 random hex digits."""
    return new_lease_id(now)


def prepare_session(
    files: Files,
    bundle: SessionBundle,
    *,
    lease: str,
    source_hash: str,
    pipeline_version: str,
    source_stat: str | None = None,
) -> PreparedSession:
    """Write a validated bundle's per-session tables under `lease`; keep its small tables.

    A stream that fails validation while it is written (e.g. spikes out of order) raises
    before anything is committed, and its files are deleted.
    """
    if not bundle.validated:
        bundle = bundle.validate()
    sid = bundle.session_id
    ingest_id = new_ingest_id()
    written: list[DataFile] = []
    rows: dict[str, int] = {}
    try:
        for name, spec in TABLES.items():
            if name == "sessions" or not per_session(name) or not bundle.num_rows(name):
                continue
            schema = data_schema(name, spec.arrow_schema)
            key = schema_key(spec.arrow_schema)
            count = 0
            for k, part in enumerate(
                chunked_files(bundle.batches(name), schema, parquet.MAX_ROWS_PER_FILE)
            ):
                rel = f"session_id={sid}/part-{lease}-{ingest_id}-{k:03d}.parquet"
                f = write_data_file(
                    files,
                    name,
                    rel,
                    part,
                    schema,
                    schema_key=key,
                    sort_by=spec.sort_by,
                    partition=sid,
                )
                written.append(f)
                count += f.rows
            if count != bundle.num_rows(name):
                msg = f"wrote {count} rows but the decoder announced {bundle.num_rows(name)}"
                raise SchemaViolation(msg, table=name)
            rows[name] = count
    except BaseException:
        delete_files(files, written)
        raise
    shared: dict[str, pa.Table] = {}
    for name in TABLES:
        if name == "sessions" or per_session(name) or not bundle.num_rows(name):
            continue
        shared[name] = _plain(bundle.table(name))
        rows[name] = shared[name].num_rows
    for name in TABLES:
        rows.setdefault(name, 0)
    rows.pop("sessions")
    shared["sessions"] = sessions_row(
        bundle, ingest_id, source_hash, pipeline_version, rows, source_stat
    )
    return PreparedSession(sid, ingest_id, shared, written, rows, list(bundle.notes))


def sessions_row(
    bundle: SessionBundle,
    ingest_id: str,
    source_hash: str,
    pipeline_version: str,
    rows: dict[str, int],
    source_stat: str | None = None,
) -> pa.Table:
    """The bundle's sessions row with the lake-filled columns set."""
    row = bundle.table("sessions")
    filled = {
        "source_hash": source_hash,
        "source_stat": source_stat,
        "pipeline_version": pipeline_version,
        "ingest_id": ingest_id,
        "ingested_at": dt.datetime.now(dt.timezone.utc),
        **{f"n_{name}": rows.get(name, 0) for name in TABLES if name != "sessions"},
    }
    spec = TABLES["sessions"]
    for name, value in filled.items():
        if name not in LAKE_FILLED and not name.startswith("n_"):
            continue
        field_ = spec.column(name).field()
        array = pa.array([value], spec.column(name).type)
        index = row.schema.get_field_index(name)
        row = (
            row.set_column(index, field_, array) if index >= 0 else row.append_column(field_, array)
        )
    return _plain(conform_table(spec, row, bundle.session_id))


def commit_group(
    files: Files,
    log_: LakeLog,
    group: Sequence[PreparedSession],
    *,
    lease: str,
    held: callable | None = None,
) -> tuple[GroupResult, Manifest | None]:
    """Commit prepared sessions as one lake version; returns the result and the new manifest.

    `held()` says whether the lease is still valid (garbage collection removes dead leases);
    a commit never names files a collector may have deleted.
    """
    failed: dict[str, str] = {}
    seen: set[str] = set()
    todo: list[PreparedSession] = []
    for p in sorted(group, key=lambda p: p.session_id):
        if p.session_id in seen:
            failed[p.ingest_id] = f"session {p.session_id} appears twice in one commit"
            delete_files(files, p.files)
            continue
        seen.add(p.session_id)
        todo.append(p)
    ensure_created(log_)
    manifest = log_.manifest()
    for attempt in range(COMMIT_ATTEMPTS):
        todo, schemas = _check_columns(manifest, todo, failed, files)
        if not todo:
            return GroupResult(None, [], failed), None
        written: list[DataFile] = []
        try:
            entry, landed = _plan(files, manifest, todo, schemas, lease, written)
            if held is not None and not held():
                msg = "this ingest's lease was collected as dead (it stalled too long)"
                raise CommitConflict(msg)
            if log_.append(entry):
                return GroupResult(entry.version, landed, failed), manifest.apply(entry)
        except BaseException:
            delete_files(files, written)
            raise
        delete_files(files, written)  # another writer took this version: rebase on it
        time.sleep(min(0.5, 0.005 * 2**attempt))
        manifest = _catch_up(log_, manifest)
    msg = f"gave up after {COMMIT_ATTEMPTS} attempts: other writers kept committing first"
    raise CommitConflict(msg)


def ensure_created(log_: LakeLog) -> None:
    """Write version 0 (every table with its starting schema) if the lake has no log yet."""
    if log_.exists():
        return
    empty = Manifest.empty()
    entry = LogEntry(
        version=0,
        timestamp_ms=int(time.time() * 1000),
        operation="create",
        schemas={t: empty.schemas[t][empty.current[t]] for t in TABLES},
        previous=dict.fromkeys(TABLES, -1),
    )
    log_.append(entry)  # False: another writer created it first, which is as good


def _catch_up(log_: LakeLog, manifest: Manifest) -> Manifest:
    latest = log_.latest()
    for version in range(manifest.version + 1, (latest or 0) + 1):
        manifest = manifest.apply(log_.entry(version))
    return manifest


def _check_columns(
    manifest: Manifest,
    todo: list[PreparedSession],
    failed: dict[str, str],
    files: Files,
) -> tuple[list[PreparedSession], dict[str, pa.Schema]]:
    """Sessions whose columns fit the lake (and the group before them), and the new schemas."""
    schemas = {name: manifest.schema(name) for name in TABLES}
    kept = []
    for p in todo:
        try:
            trial = dict(schemas)
            for name, table in p.shared.items():
                trial[name] = evolved(trial[name], name, table.schema)
        except SchemaViolation as exc:
            failed[p.ingest_id] = str(exc)
            delete_files(files, p.files)
            continue
        schemas = trial
        kept.append(p)
    return kept, schemas


def _plan(
    files: Files,
    manifest: Manifest,
    todo: list[PreparedSession],
    schemas: dict[str, pa.Schema],
    lease: str,
    written: list[DataFile],
) -> tuple[LogEntry, list[SessionChange]]:
    """Write the group's shared-table files and the rewrites; the log entry naming them all."""
    current = manifest.session_rows("sessions")
    ingest_of = _current_ingest_ids(files, manifest, [p.session_id for p in todo])
    replaced = {p.session_id for p in todo if p.session_id in current}
    added: list[DataFile] = [f for p in todo for f in p.files]
    removed: list[tuple[str, str]] = []
    changed_schemas = {
        name: schema_to_text(schema)
        for name, schema in schemas.items()
        if schema_key(schema) != manifest.current[name]
    }
    for name in TABLES:
        if per_session(name):
            for sid in replaced:
                removed += [(name, path) for path in manifest.paths(name, sid)]
            continue
        for f in manifest.files_holding(name, replaced):
            removed.append((name, f.path))
            kept = _rewrite_without(files, manifest, f, replaced, lease)
            if kept is not None:
                written.append(kept)
                added.append(kept)
        tables = [p.shared[name] for p in todo if name in p.shared]
        if tables:
            written.append(_write_group_file(files, name, tables, schemas[name], lease))
            added.append(written[-1])
    landed = [
        SessionChange(p.session_id, p.ingest_id, ingest_of.get(p.session_id), p.rows) for p in todo
    ]
    version = manifest.version + 1
    entry = LogEntry(
        version=version,
        timestamp_ms=max(int(time.time() * 1000), manifest.timestamp_ms + 1),
        operation="ingest",
        added=tuple(added),
        removed=tuple(removed),
        schemas=changed_schemas,
        landed=tuple(landed),
        lease=lease,
    )
    entry = LogEntry(**{**entry.__dict__, "previous": manifest.chain(entry.tables())})
    return entry, landed


def _write_group_file(
    files: Files, name: str, tables: list[pa.Table], schema: pa.Schema, lease: str
) -> DataFile:
    """One file holding the group's rows of a shared table (sessions in id order)."""
    batches = (reconcile_batch(b, schema) for t in tables for b in t.to_batches())
    rel = f"part-{lease}-{uuid.uuid4().hex[:12]}.parquet"
    return write_data_file(
        files,
        name,
        rel,
        batches,
        schema,
        schema_key=schema_key(schema),
        sort_by=("session_id", *TABLES[name].sort_by),
    )


def _rewrite_without(
    files: Files, manifest: Manifest, f: DataFile, sessions: set[str], lease: str
) -> DataFile | None:
    """A copy of a shared file without the rows of `sessions` (None when nothing is left)."""
    if all(sid in sessions for sid, _ in f.sessions):
        return None
    schema = manifest.schema_of_key(f.table, f.schema_key)
    drop = pa.array(sorted(sessions), pa.string())
    source = pq.ParquetFile(files.open_input(f"{f.table}/{f.path}"))

    def batches():
        for batch in source.iter_batches(batch_size=256 * 1024):
            keep = pc.invert(pc.is_in(batch.column("session_id"), value_set=drop))
            yield reconcile_batch(batch.filter(keep), schema)

    rel = f"part-{lease}-{uuid.uuid4().hex[:12]}.parquet"
    return write_data_file(
        files,
        f.table,
        rel,
        batches(),
        schema,
        schema_key=f.schema_key,
        sort_by=("session_id", *TABLES[f.table].sort_by),
    )


def _current_ingest_ids(files: Files, manifest: Manifest, session_ids: list[str]) -> dict:
    """The ingest id the lake holds for each of `session_ids` that it holds."""
    present = [s for s in session_ids if s in manifest.session_rows("sessions")]
    if not present:
        return {}
    from lake.storage.read import read_rows

    rows = read_rows(files, manifest, "sessions", present, columns=["session_id", "ingest_id"])
    return dict(
        zip(
            rows.column("session_id").to_pylist(), rows.column("ingest_id").to_pylist(), strict=True
        )
    )


def delete_files(files: Files, written: Sequence[DataFile]) -> None:
    """Delete uncommitted files (best effort: what is left, garbage collection removes)."""
    try:
        files.delete([f"{f.table}/{f.path}" for f in written])
    except OSError as exc:
        log.warning("could not delete %d uncommitted files: %s", len(written), exc)


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns decoded and chunks combined (shared files store plain values)."""
    fields, columns = [], []
    for f, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_dictionary(f.type):
            column = column.cast(f.type.value_type)
            f = f.with_type(f.type.value_type)
        fields.append(f)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))
