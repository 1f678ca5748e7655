"""Publishing: every lake version becomes one Delta commit per table it changed.

The lake log is the commit point; the Delta tables follow it, in order, so any Delta reader
(delta-rs, polars, DuckDB, Spark) sees exactly the files of a committed lake version — never
those of a failed, killed or superseded ingest. Each Delta commit carries the application
transaction `nplake = <lake version>` (Delta's `txn` action): a table's `txn` says how far it
is published, and two publishers of the same version cannot both commit (delta-rs rejects the
second as a concurrent transaction), so publishing is idempotent and can be resumed by any
writer after a kill. Entries chain, per table, to the previous entry that changed it, so
catching up reads only the entries that matter.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable

from deltalake import DeltaTable, Field
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    Transaction,
)

from lake.storage.log import LakeLog, read_version_hint
from lake.storage.manifest import LogEntry, Manifest
from lake.storage.schema import data_schema, partition_columns, schema_from_text
from schemas import TABLES

APP_ID = "nplake"
#: Where the newest version every table is published up to is noted.
PUBLISHED = "_nplake/log/_published"
_ATTEMPTS = 8


def publish(
    log: LakeLog,
    manifest: Manifest,
    table_uri: Callable[[str], str],
    options: dict[str, str] | None,
) -> int:
    """Bring every Delta table up to `manifest`'s version; returns the Delta commits made."""
    entries: dict[int, LogEntry] = {}

    def entry(version: int) -> LogEntry:
        if version not in entries:
            entries[version] = log.entry(version)
        return entries[version]

    done_before = published_all(log)
    commits = 0
    for name in TABLES:
        last = manifest.touched.get(name, -1)
        if last < 0 or last <= done_before:  # published already: do not even open it
            continue
        commits += _publish_table(name, last, entry, table_uri(name), manifest, options)
    if manifest.version > done_before:
        log.files.put(PUBLISHED, json.dumps({"version": manifest.version}).encode())
    return commits


def published_all(log: LakeLog) -> int:
    """The version up to which every table is known published (a hint; -1 when unknown).

    Written after every table is caught up, so a publisher skips the tables no later entry
    changed instead of opening each Delta table to read its `txn`.
    """
    return read_version_hint(log.files, PUBLISHED)


def _open(uri: str, options: dict[str, str] | None) -> DeltaTable | None:
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        return None


def _publish_table(
    name: str,
    last: int,
    entry: Callable[[int], LogEntry],
    uri: str,
    manifest: Manifest,
    options: dict[str, str] | None,
) -> int:
    dt = _open(uri, options)
    done = -1 if dt is None else dt.transaction_version(APP_ID)
    done = -1 if done is None else done
    if done >= last:
        return 0
    pending = []
    version = last
    while version > done:
        pending.append(version)
        version = entry(version).previous.get(name, -1)
    commits = 0
    for version in reversed(pending):
        dt, made = _apply(name, entry(version), uri, manifest, options, dt)
        commits += made
    return commits


def _apply(
    name: str,
    entry: LogEntry,
    uri: str,
    manifest: Manifest,
    options: dict[str, str] | None,
    dt: DeltaTable | None,
) -> tuple[DeltaTable | None, int]:
    """Commit one entry's changes to one Delta table (nothing if it is there already)."""
    txn = CommitProperties(
        custom_metadata={"nplake.version": entry.version, "nplake.operation": entry.operation},
        app_transactions=[Transaction(APP_ID, entry.version)],
    )
    for attempt in range(_ATTEMPTS):
        if dt is None:
            _create(name, uri, entry, manifest, options)
            dt = _open(uri, options)
            continue
        done = dt.transaction_version(APP_ID)
        if done is not None and done >= entry.version:
            return dt, 0
        try:
            _add_columns(dt, entry, name)
            dt.create_write_transaction(
                _actions(name, entry),
                mode="append",
                schema=dt.schema(),
                partition_by=partition_columns(name) or None,
                commit_properties=txn,
            )
            dt.update_incremental()
            return dt, 1
        except CommitFailedError:  # another publisher or writer came first: look again
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
            dt.update_incremental()
    return dt, 0


def _create(
    name: str, uri: str, entry: LogEntry, manifest: Manifest, options: dict[str, str] | None
) -> None:
    """Create a missing Delta table with the schema it has at `entry` (safe to race)."""
    text = entry.schemas.get(name)
    schema = schema_from_text(text) if text else manifest.schema(name)
    with contextlib.suppress(CommitFailedError):  # another publisher created it first
        DeltaTable.create(
            uri,
            schema,
            mode="ignore",
            partition_by=partition_columns(name) or None,
            name=name,
            description=TABLES[name].description,
            storage_options=options,
        )


def _add_columns(dt: DeltaTable, entry: LogEntry, name: str) -> None:
    """Add the columns an entry's new schema has and the Delta table lacks (metadata only)."""
    text = entry.schemas.get(name)
    if text is None:
        return
    have = {f.name for f in dt.schema().fields}
    wanted = data_schema(name, schema_from_text(text))
    new = [Field.from_arrow(f.with_nullable(True)) for f in wanted if f.name not in have]
    new = [f for f in new if f.name not in partition_columns(name)]
    if new:
        dt.alter.add_columns(new)
        dt.update_incremental()


def _actions(name: str, entry: LogEntry) -> list[AddAction | RemoveAction]:
    now = int(time.time() * 1000)
    data_change = entry.operation != "optimize"
    actions: list[AddAction | RemoveAction] = []
    for table, path in entry.removed:
        if table == name:
            actions.append(
                RemoveAction(
                    path=path,
                    data_change=data_change,
                    deletion_timestamp=now,
                    partition_values=_partition_values(name, path),
                )
            )
    for f in entry.added:
        if f.table == name:
            actions.append(
                AddAction(
                    path=f.path,
                    size=f.size,
                    partition_values={"session_id": f.partition} if f.partition else {},
                    modification_time=f.modification_time,
                    data_change=data_change,
                    stats=f.stats,
                )
            )
    return actions


def _partition_values(name: str, path: str) -> dict[str, str | None]:
    if not partition_columns(name):
        return {}
    folder = path.split("/", 1)[0]
    return {"session_id": folder.split("=", 1)[1]}
