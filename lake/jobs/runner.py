"""The ingest coordinator: sources out to workers, prepared sessions back, group commits.

1. Sources whose files have the names, sizes and modification times a session was made from
   (the quick fingerprint) are **unchanged** without reading a byte; the rest go to workers,
   which hash their bytes (unchanged again if a session was made from them) or decode them.
2. Prepared sessions wait in a group; a group commits when it is `GROUP_SECONDS` old, holds
   `GROUP_SESSIONS` sessions or `GROUP_BYTES` of small-table rows, and at the end — so a batch
   of N sessions costs a handful of lake versions, not N, and each session still lands whole or
   not at all (a failing session fails alone).
3. Two sources of one batch that decode to the same session id: the first to arrive claims it;
   the other fails without committing anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest import DecodeOptions, Source, Unreadable
from ingest.discover import quick_fingerprint
from lake.jobs.executors import run_inline, run_pool
from lake.jobs.report import IngestReport, Outcome
from lake.jobs.work import (
    KnownHashes,
    Task,
    WorkResult,
    options_key,
    pipeline_version,
)
from lake.storage.commit import PreparedSession, commit_group, delete_files
from lake.storage.leases import Lease
from lake.storage.schema import per_session
from lake.storage.store import Store
from schemas import TABLES, NplakeError

log = logging.getLogger(__name__)

GROUP_SECONDS = 30.0
GROUP_SESSIONS = 1000
GROUP_BYTES = 256 << 20
#: A shared table is merged after an ingest once it holds this many small files.
AUTO_OPTIMIZE_FILES = 32

Executor = Callable[[Sequence[Task], KnownHashes], Iterator[WorkResult | None]]


@dataclass
class SourceIndex:
    """What the lake holds, for the unchanged check: quick and full fingerprints."""

    by_stat: dict[tuple[str, str, str], str] = field(default_factory=dict)
    by_hash: dict[tuple[str, str, str], str] = field(default_factory=dict)

    @staticmethod
    def read(store: Store) -> SourceIndex:
        """One read of the sessions table (no per-source scan)."""
        if not store.exists():
            return SourceIndex()
        from lake.storage.read import read_rows

        columns = ["session_id", "source_hash", "source_stat", "pipeline_version"]
        rows = read_rows(
            store.files, store.log.manifest(), "sessions", columns=[*columns, "decoder_options"]
        )
        index = SourceIndex()
        for sid, digest, stat, version, options in zip(
            *(rows.column(c).to_pylist() for c in [*columns, "decoder_options"]), strict=True
        ):
            index.by_hash[(digest, version, options)] = sid
            if stat:
                index.by_stat[(stat, version, options)] = sid
        return index


@dataclass
class _Group:
    """Prepared sessions waiting for their commit."""

    items: list[tuple[WorkResult, PreparedSession]] = field(default_factory=list)
    since: float = 0.0
    bytes: int = 0

    def add(self, result: WorkResult, prepared: PreparedSession) -> None:
        if not self.items:
            self.since = time.monotonic()
        self.items.append((result, prepared))
        self.bytes += sum(t.nbytes for t in prepared.shared.values())

    def due(self) -> bool:
        if not self.items:
            return False
        return (
            time.monotonic() - self.since >= GROUP_SECONDS
            or len(self.items) >= GROUP_SESSIONS
            or self.bytes >= GROUP_BYTES
        )


def run_ingest(
    store: Store,
    sources: Sequence[Source],
    problems: Sequence[Unreadable],
    options: DecodeOptions,
    *,
    jobs: int = 1,
    executor: Executor | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> IngestReport:
    """Ingest `sources`: prepare them (inline, `jobs` processes, or `executor`), commit groups."""
    start = time.perf_counter()
    report = IngestReport([], 0.0)

    def emit(outcome: Outcome) -> None:
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)

    for p in problems:
        emit(Outcome(source=str(p.path), status="failed", reason=f"{p.path}: {p.reason}"))
    existed = store.exists()
    index = SourceIndex.read(store)
    claims: dict[str, str] = {}
    tasks: list[Task] = []
    with Lease(store.files) as lease:
        for source in sources:
            task, outcome = _triage(store, source, options, lease.id, index, claims)
            if outcome is not None:
                emit(outcome)
            elif task is not None:
                tasks.append(task)
        if tasks:
            if executor is None:
                executor = run_inline if jobs <= 1 or len(tasks) <= 1 else _pool(jobs)
            group = _Group()
            for result in executor(tasks, index.by_hash):
                if result is not None:
                    _receive(store, result, claims, group, emit)
                if group.due():
                    _commit(store, group, lease, report, emit)
                    group = _Group()
            _commit(store, group, lease, report, emit)
    if report.versions:
        _auto_optimize(store, report)
    if not existed and not store.exists():
        _remove_leftovers(store)  # nothing landed: leave no lake where there was none
    order = {str(p.path): i for i, p in enumerate([*problems, *sources])}
    report.outcomes.sort(key=lambda o: order.get(o.source, len(order)))
    report.seconds = time.perf_counter() - start
    return report


def _auto_optimize(store: Store, report: IngestReport) -> None:
    """Merge a shared table's small files once it has AUTO_OPTIMIZE_FILES of them.

    Each group commit writes one file per table; without merging, a lake fed one session at a
    time would again hold a file per session per table. A failure here changes nothing (the
    old files stay current) and is a warning: `nplake optimize` does the same later.
    """
    from lake.storage.maintenance import optimize, small_files

    manifest = store.log.manifest()
    due = tuple(
        name
        for name in TABLES
        if not per_session(name) and small_files(manifest, name) >= AUTO_OPTIMIZE_FILES
    )
    if not due:
        return
    try:
        done = optimize(store, tables=due)
    except Exception as exc:  # the ingest stands; merging can wait for `nplake optimize`
        report.warnings.append(f"merging small files failed ({exc}); run `nplake optimize`")
        return
    report.optimized = dict(done.compacted)


def _remove_leftovers(store: Store) -> None:
    """Remove the empty folders a batch that landed nothing made at a new local location."""
    if not store.is_local:
        return
    root = Path(store.root)
    for folder in sorted((root / "_nplake").rglob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    for folder in (root / "_nplake", root):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _pool(jobs: int) -> Executor:
    def run(tasks: Sequence[Task], known: KnownHashes) -> Iterator[WorkResult | None]:
        return run_pool(tasks, known, jobs)

    return run


def _triage(
    store: Store,
    source: Source,
    options: DecodeOptions,
    lease: str,
    index: SourceIndex,
    claims: dict[str, str],
) -> tuple[Task | None, Outcome | None]:
    """A task for `source`, or its outcome when its quick fingerprint says it is unchanged."""
    opts = options.for_source(source.path)
    path = str(source.path)
    try:
        stat = quick_fingerprint(source, opts)
    except (NplakeError, OSError) as exc:
        return None, Outcome(source=path, status="failed", reason=str(exc))
    hit = index.by_stat.get((stat, pipeline_version(source.decoder), options_key(opts)))
    if hit is not None:
        problem = _claim(claims, hit, path)
        if problem:
            return None, Outcome(source=path, status="failed", session_id=hit, reason=problem)
        return None, Outcome(source=path, status="unchanged", session_id=hit)
    task = Task(store.root, store.storage_options, path, source.decoder.name, opts, lease, stat)
    return task, None


def _claim(claims: dict[str, str], session_id: str, path: str) -> str | None:
    """Take `session_id` for source `path`; the reason it cannot, if another source has it."""
    owner = claims.setdefault(session_id, path)
    if owner == path:
        return None
    return (
        f"{path}: session id {session_id!r} also comes from {owner} in this batch; only one "
        "source can hold it, and that one came first (ingest this one alone with "
        "--session-id to keep both)"
    )


def _receive(
    store: Store,
    result: WorkResult,
    claims: dict[str, str],
    group: _Group,
    emit: Callable[[Outcome], None],
) -> None:
    """Route one worker result: report it now, or add it to the group."""
    outcome = Outcome(
        source=result.source,
        status="failed",
        session_id=result.session_id,
        reason=result.reason,
        traceback=result.traceback,
        seconds=result.seconds,
    )
    if result.status == "failed":
        emit(outcome)
        return
    problem = _claim(claims, result.session_id or "", result.source)
    if problem:
        if result.prepared is not None:
            delete_files(store.files, result.prepared.files)
        outcome.reason = problem
        emit(outcome)
    elif result.status == "unchanged":
        outcome.status = "unchanged"
        emit(outcome)
    else:
        assert result.prepared is not None
        group.add(result, result.prepared)


def _commit(
    store: Store, group: _Group, lease: Lease, report: IngestReport, emit: Callable
) -> None:
    """Commit a group; report each of its sessions as landed or failed."""
    if not group.items:
        return
    prepared = [p for _, p in group.items]
    try:
        result, manifest = commit_group(
            store.files, store.log, prepared, lease=lease.id, held=lease.held
        )
    except Exception as exc:  # nothing of the group is committed: each session fails
        for _, p in group.items:
            delete_files(store.files, p.files)
        reason = _commit_failure(exc)
        for r, _ in group.items:
            emit(Outcome(source=r.source, status="failed", session_id=r.session_id, reason=reason))
        return
    if manifest is not None:
        report.versions.append(manifest.version)
        problem = store.finish_commit(manifest)
        if problem:
            report.warnings.append(problem)
    landed = {x.ingest_id: x for x in result.landed}
    for r, p in group.items:
        hit = landed.get(p.ingest_id)
        if hit is None:
            reason = result.failed.get(p.ingest_id, "not committed")
            emit(Outcome(source=r.source, status="failed", session_id=r.session_id, reason=reason))
            continue
        emit(
            Outcome(
                source=r.source,
                status="landed",
                session_id=p.session_id,
                rows=p.rows,
                seconds=r.seconds,
                notes=p.notes,
                replaced=hit.replaced is not None,
                version=result.version,
            )
        )


def _commit_failure(exc: Exception) -> str:
    """One line saying why a group commit failed."""
    from lake.storage.errors import describe_os_error

    if isinstance(exc, NplakeError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc, "committing")
    return f"internal error {type(exc).__name__} while committing: {exc}"
