"""Maintenance: publish what is committed, collect garbage, compact, vacuum, prune checkpoints.

None of these changes what any retained version answers:

- **publish** catches the Delta tables up with the lake log (after a writer was killed);
- **collect_garbage** deletes files no version names — written by ingests that failed or were
  killed — once their lease is dead (a running ingest's files are never touched, however slow);
- **optimize** merges the small files of shared tables into files of about `TARGET_BYTES`
  (one log entry per table; time travel and releases keep the old files);
- **vacuum** deletes files that only versions older than the retention horizon read, except
  those of named releases, and prunes checkpoints no longer needed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.storage.commit import delete_files
from lake.storage.leases import LEASES, Lease, lease_of, read_leases
from lake.storage.log import CHECKPOINT_STRIDE, LOG
from lake.storage.manifest import LogEntry, Manifest, data_file
from lake.storage.parquet import DataFile, reconcile_batch, write_data_file
from lake.storage.releases import list_releases
from lake.storage.schema import per_session, schema_key
from lake.storage.store import Store
from schemas import TABLES, CommitConflict

#: Files of shared tables are merged up to about this size.
TARGET_BYTES = 64 << 20
#: Shared-table files below this size count as small.
SMALL_BYTES = 16 << 20
#: Default time travel horizon of `vacuum` (Delta's default too).
RETENTION_HOURS = 7 * 24.0
#: Recent checkpoints kept besides every CHECKPOINT_STRIDE-th and the releases' versions.
RECENT_CHECKPOINTS = 10
_ATTEMPTS = 20


@dataclass
class MaintenanceReport:
    """What maintenance did: commits published, files and bytes removed or merged."""

    published: int = 0
    garbage_files: int = 0
    garbage_bytes: int = 0
    compacted: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (in, out)
    vacuumed_files: int = 0
    vacuumed_bytes: int = 0
    checkpoints_pruned: int = 0

    @property
    def reclaimed_bytes(self) -> int:
        """Bytes deleted in all."""
        return self.garbage_bytes + self.vacuumed_bytes

    def __str__(self) -> str:
        merged = ", ".join(f"{t}: {a} -> {b} files" for t, a, b in _rows(self.compacted))
        return "\n".join(
            [
                f"published {self.published} Delta commits",
                f"garbage: {self.garbage_files} uncommitted files, {_mb(self.garbage_bytes)}",
                f"optimize: {merged or 'nothing to merge'}",
                f"vacuum: {self.vacuumed_files} old files, {_mb(self.vacuumed_bytes)}; "
                f"{self.checkpoints_pruned} checkpoints pruned",
                f"reclaimed {_mb(self.reclaimed_bytes)}",
            ]
        )


def _rows(compacted: dict[str, tuple[int, int]]):
    return [(t, a, b) for t, (a, b) in compacted.items()]


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def collect_garbage(store: Store, report: MaintenanceReport | None = None) -> MaintenanceReport:
    """Delete files no version names whose lease is dead, and the dead leases themselves."""
    report = report or MaintenanceReport()
    leases = read_leases(store.files)
    alive = {lease for lease, info in leases.items() if info.alive()}
    listing = [f for name in TABLES for f in store.files.list(name)]
    manifest = store.log.manifest()  # read after listing: a file committed meanwhile is named
    named = _named(manifest)
    garbage = [
        f
        for f in listing
        if "/_delta_log/" not in f.path
        and f.path not in named
        and lease_of(f.path) not in alive
        and not f.path.rsplit("/", 1)[-1].startswith(".")
    ]
    store.files.delete([f.path for f in garbage])
    dead = [lease for lease in leases if lease not in alive]
    store.files.delete([f"{LEASES}/{lease}.json" for lease in dead])
    report.garbage_files += len(garbage)
    report.garbage_bytes += sum(f.size for f in garbage)
    return report


def _named(manifest: Manifest) -> set[str]:
    """Paths (from the lake root) of every current file and every tombstone."""
    out = set()
    for table in (manifest.files, manifest.tombstones):
        for t, p in zip(
            table.column("table").to_pylist(), table.column("path").to_pylist(), strict=True
        ):
            out.add(f"{t}/{p}")
    return out


def optimize(
    store: Store,
    *,
    tables: tuple[str, ...] | None = None,
    report: MaintenanceReport | None = None,
) -> MaintenanceReport:
    """Merge the small files of shared tables, all in one commit (replanned if it loses a race).

    A merge rewrites rows without changing them: every reader's answer is the same before and
    after, and time travel keeps the old files until vacuum.
    """
    report = report or MaintenanceReport()
    names = [n for n in (tables or tuple(TABLES)) if not per_session(n)]
    with Lease(store.files) as lease:
        for _ in range(_ATTEMPTS):
            manifest = store.log.manifest()
            plans = {name: bins for name in names if (bins := _bins(manifest, name))}
            if not plans:
                return report
            written: list[DataFile] = []
            try:
                for name, bins in plans.items():
                    written += [_merge(store, manifest, name, g, lease.id) for g in bins]
                removed = tuple((n, f.path) for n, bins in plans.items() for g in bins for f in g)
                entry = LogEntry(
                    version=manifest.version + 1,
                    timestamp_ms=max(int(time.time() * 1000), manifest.timestamp_ms + 1),
                    operation="optimize",
                    added=tuple(written),
                    removed=removed,
                    lease=lease.id,
                    previous=manifest.chain(plans),
                )
                if store.log.append(entry):
                    store.finish_commit(manifest.apply(entry))
                    for name, bins in plans.items():
                        report.compacted[name] = (sum(len(g) for g in bins), len(bins))
                    return report
            except BaseException:
                delete_files(store.files, written)
                raise
            delete_files(store.files, written)  # another writer committed first: plan again
    msg = "optimize: other writers kept committing first"
    raise CommitConflict(msg)


def small_files(manifest: Manifest, name: str) -> int:
    """How many of a shared table's files are small."""
    rows = manifest.table_files(name)
    return int(pc.sum(pc.less(rows.column("size"), SMALL_BYTES)).as_py() or 0)


def _bins(manifest: Manifest, name: str) -> list[list[DataFile]]:
    """Groups of small files to merge, each up to TARGET_BYTES (groups of one are skipped)."""
    rows = manifest.table_files(name)
    small = rows.filter(pc.less(rows.column("size"), SMALL_BYTES)).sort_by("path")
    files = [data_file(r) for r in small.to_pylist()]
    bins: list[list[DataFile]] = [[]]
    size = 0
    for f in files:
        if bins[-1] and size + f.size > TARGET_BYTES:
            bins.append([])
            size = 0
        bins[-1].append(f)
        size += f.size
    return [b for b in bins if len(b) > 1]


def _merge(
    store: Store, manifest: Manifest, name: str, group: list[DataFile], lease: str
) -> DataFile:
    """One file holding the rows of `group`, in (session_id, sort order), current schema."""
    schema = manifest.schema(name)
    parts = []
    for f in group:
        with store.files.open_input(f"{name}/{f.path}") as handle:
            table = pq.read_table(handle)
        parts += [reconcile_batch(b, schema) for b in table.to_batches()]
    merged = pa.Table.from_batches(parts, schema=schema)
    keys = ["session_id", *TABLES[name].sort_by]
    merged = merged.sort_by([(k, "ascending") for k in keys])
    return write_data_file(
        store.files,
        name,
        f"part-{lease}-{uuid.uuid4().hex[:12]}.parquet",
        merged.to_batches(),
        schema,
        schema_key=schema_key(schema),
        sort_by=tuple(keys),
    )


def vacuum(
    store: Store,
    *,
    retention_hours: float = RETENTION_HOURS,
    report: MaintenanceReport | None = None,
) -> MaintenanceReport:
    """Delete files only versions older than `retention_hours` read (releases keep theirs)."""
    report = report or MaintenanceReport()
    now = int(time.time() * 1000)
    horizon = now - int(retention_hours * 3600 * 1000)
    releases = list_releases(store.files)
    for _ in range(_ATTEMPTS):
        manifest = store.log.manifest()
        kept = set()
        for release in releases:
            kept |= _named(store.log.manifest(release.version))
        stones = manifest.tombstones
        old = stones.filter(pc.less(stones.column("removed_ms"), horizon))
        expired = [data_file(r) for r in old.to_pylist() if f"{r['table']}/{r['path']}" not in kept]
        if not expired and manifest.vacuumed_before_ms >= horizon:
            break
        entry = LogEntry(
            version=manifest.version + 1,
            timestamp_ms=max(now, manifest.timestamp_ms + 1),
            operation="vacuum",
            forgotten=tuple((f.table, f.path) for f in expired),
            info={"vacuumed_before_ms": horizon, "releases": [r.name for r in releases]},
        )
        if store.log.append(entry):
            store.finish_commit(manifest.apply(entry))
            delete_files(store.files, expired)
            report.vacuumed_files += len(expired)
            report.vacuumed_bytes += sum(f.size for f in expired)
            break
    report.checkpoints_pruned += prune_checkpoints(store, {r.version for r in releases})
    return report


def prune_checkpoints(store: Store, keep: set[int]) -> int:
    """Delete checkpoints besides the recent ones, every CHECKPOINT_STRIDE-th and `keep`."""
    latest = store.log.latest() or 0
    doomed = []
    for f in store.files.list(LOG):
        name = f.path.rsplit("/", 1)[-1]
        if not name.endswith(".checkpoint.parquet"):
            continue
        version = int(name.split(".", 1)[0])
        if (
            version % CHECKPOINT_STRIDE
            and version not in keep
            and version <= latest - RECENT_CHECKPOINTS
        ):
            doomed.append(f.path)
    store.files.delete(doomed)
    return len(doomed)


def run_all(
    store: Store, *, retention_hours: float = RETENTION_HOURS, compact: bool = True
) -> MaintenanceReport:
    """Everything, in a safe order: publish, garbage, optimize, vacuum (and checkpoints)."""
    report = MaintenanceReport(published=store.publish())
    collect_garbage(store, report)
    if compact:
        optimize(store, report=report)
    vacuum(store, retention_hours=retention_hours, report=report)
    return report
