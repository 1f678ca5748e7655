"""The batch runner: ingest many sources, each session alone, in one process or a spawn pool.

One source is fingerprinted (content hash of the files its decoder reads), skipped when the lake
already holds it from the same bytes, options and pipeline version, else decoded, validated and
committed. A failure fails that session only; the report says why, and the rest lands.
Worker processes are started with `spawn`: deltalake breaks in forked children (STACK.md).
"""

from __future__ import annotations

import json
import multiprocessing
import time
import traceback
from collections.abc import Callable, MutableMapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow.compute as pc

from ingest import DecodeOptions, Decoder, Source, Unreadable, fingerprint
from lake.commit import commit_bundle
from lake.storage import Store
from schemas import LakeError, NplakeError

#: Version of the lake's table layout; part of every session's pipeline version.
LAKE_FORMAT = "1"

Status = Literal["landed", "unchanged", "failed"]


def pipeline_version(decoder: Decoder) -> str:
    """The pipeline version recorded with a session: table layout plus decoder version."""
    return f"lake-{LAKE_FORMAT}+{decoder.name}-{decoder.version}"


@dataclass
class Outcome:
    """What happened to one source."""

    source: str
    status: Status
    session_id: str | None = None
    reason: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    replaced: bool = False
    traceback: str | None = None

    @property
    def problem(self) -> str:
        """Why the source failed, naming the source once ('' when it did not fail)."""
        if not self.reason:
            return ""
        return self.reason if self.source in self.reason else f"{self.source}: {self.reason}"


@dataclass
class IngestReport:
    """Outcomes of one ingest call, with a readable summary (`str(report)`)."""

    outcomes: list[Outcome]
    seconds: float

    def with_status(self, status: Status) -> list[Outcome]:
        """Outcomes with this status."""
        return [o for o in self.outcomes if o.status == status]

    @property
    def landed(self) -> list[Outcome]:
        """Sources committed by this call."""
        return self.with_status("landed")

    @property
    def unchanged(self) -> list[Outcome]:
        """Sources the lake already held, byte for byte."""
        return self.with_status("unchanged")

    @property
    def failed(self) -> list[Outcome]:
        """Sources that failed, each with its reason."""
        return self.with_status("failed")

    @property
    def ok(self) -> bool:
        """Whether no source failed."""
        return not self.failed

    def __str__(self) -> str:
        spikes = sum(o.rows.get("spikes", 0) for o in self.landed)
        lines = [
            f"{len(self.landed)} landed, {len(self.unchanged)} unchanged, "
            f"{len(self.failed)} failed in {self.seconds:.1f} s ({spikes:,} spikes written)"
        ]
        for o in self.landed:
            verb = "replaced" if o.replaced else "new"
            lines.append(
                f"  landed    {o.session_id} ({verb}; {o.rows.get('units', 0)} units, "
                f"{o.rows.get('spikes', 0):,} spikes, {o.seconds:.1f} s) <- {o.source}"
            )
            lines += [f"            note: {n}" for n in o.notes]
        lines += [f"  unchanged {o.session_id} <- {o.source}" for o in self.unchanged]
        lines += [f"  FAILED    {o.problem}" for o in self.failed]
        return "\n".join(lines)


def ingest_one(
    root: str,
    storage_options: dict | None,
    path: str,
    decoder_name: str,
    options: DecodeOptions,
    claims: MutableMapping[str, str],
) -> Outcome:
    """Ingest one source into the lake at `root` (runs in a worker process or inline).

    `claims` maps the session ids of this batch to the source that has them (a dict shared by
    every worker): a source whose session id another source of the batch claimed first fails
    without writing, so two copies of a file neither replace each other nor churn re-ingests.
    """
    start = time.perf_counter()
    store = Store(root, storage_options)
    outcome = Outcome(source=path, status="failed")
    try:
        from ingest.registry import decoder_named  # imports every decoder: only when ingesting

        decoder = decoder_named(decoder_name)
        source = Source(Path(path), decoder)
        source_hash = fingerprint(source, options)
        version = pipeline_version(decoder)
        options_json = json.dumps(options.to_json_dict(), sort_keys=True)
        existing = find_unchanged(store, source_hash, version, options_json)
        if existing is not None:
            _claim(claims, existing, path)
            outcome.status, outcome.session_id = "unchanged", existing
        else:
            bundle = decoder.decode(source.path, options)
            if not bundle.validated:
                bundle = bundle.validate()
            _claim(claims, bundle.session_id, path)
            outcome.session_id = bundle.session_id
            if not store.exists():  # the first session to land creates the lake
                store.ensure_tables()
            result = commit_bundle(store, bundle, source_hash=source_hash, pipeline_version=version)
            outcome.status, outcome.rows = "landed", result.rows
            outcome.replaced = result.replaced is not None
            outcome.notes = list(bundle.notes)
    except NplakeError as exc:
        outcome.reason = str(exc)
    except Exception as exc:  # a bug: report it with its traceback, keep the batch going
        outcome.reason = f"internal error {type(exc).__name__}: {exc}"
        outcome.traceback = traceback.format_exc()
    outcome.seconds = time.perf_counter() - start
    return outcome


def _claim(claims: MutableMapping[str, str], session_id: str, path: str) -> None:
    """Take `session_id` for source `path`; LakeError when another source of the batch has it."""
    owner = claims.setdefault(session_id, path)  # atomic, also on a Manager's dict
    if owner != path:
        msg = (
            f"{path}: session id {session_id!r} also comes from {owner} in this batch; only one "
            "source can hold it, and that one came first (ingest this one alone with "
            "--session-id to keep both)"
        )
        raise LakeError(msg)


def find_unchanged(store: Store, source_hash: str, version: str, options_json: str) -> str | None:
    """The session id already ingested from these bytes, options and pipeline version."""
    if not store.exists():
        return None
    sessions = store.table("sessions").to_pyarrow_table(
        columns=["session_id", "source_hash", "pipeline_version", "decoder_options"]
    )
    hit = sessions.filter(
        pc.and_(
            pc.and_(
                pc.equal(sessions.column("source_hash"), source_hash),
                pc.equal(sessions.column("pipeline_version"), version),
            ),
            pc.equal(sessions.column("decoder_options"), options_json),
        )
    )
    return hit.column("session_id")[0].as_py() if hit.num_rows else None


def run_ingest(
    store: Store,
    sources: Sequence[Source],
    problems: Sequence[Unreadable],
    options: DecodeOptions,
    *,
    jobs: int = 1,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> IngestReport:
    """Ingest `sources` with `jobs` worker processes (1: in this process)."""
    start = time.perf_counter()
    outcomes = [
        Outcome(source=str(p.path), status="failed", reason=f"{p.path}: {p.reason}")
        for p in problems
    ]
    for outcome in outcomes:
        if on_outcome:
            on_outcome(outcome)
    if store.exists():  # tables a newer nplake added; a new lake is made by its first session
        store.ensure_tables()
    args = [
        (store.root, store.options(), str(s.path), s.decoder.name, options.for_source(s.path))
        for s in sources
    ]
    if jobs <= 1 or len(args) <= 1:
        claims: dict[str, str] = {}
        for a in args:
            outcome = ingest_one(*a, claims)
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
    else:
        context = multiprocessing.get_context("spawn")
        with (
            context.Manager() as manager,
            ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool,
        ):
            shared = manager.dict()
            futures = [pool.submit(ingest_one, *a, shared) for a in args]
            try:
                for future in as_completed(futures):
                    outcome = future.result()
                    outcomes.append(outcome)
                    if on_outcome:
                        on_outcome(outcome)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return IngestReport(outcomes, time.perf_counter() - start)
