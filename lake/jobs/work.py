"""One source's work, run by a worker (a spawned process, a Dask worker, or inline).

Fingerprint the source; if the lake holds a session made from the same bytes, options and
pipeline version, say so; else decode, validate, and write the session's per-session tables
under the batch's lease. Nothing is committed here: the coordinator commits groups.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ingest import DecodeOptions, Decoder, Source, fingerprint
from ingest.discover import source_path
from lake.storage.commit import PreparedSession, prepare_session
from lake.storage.errors import describe_os_error, is_storage_error
from lake.storage.store import Store
from schemas import NplakeError

#: Version of the lake's table layout; part of every session's pipeline version.
LAKE_FORMAT = "2"
#: (content hash, pipeline version, decoder options) -> session id, as the lake holds them.
KnownHashes = Mapping[tuple[str, str, str], str]
_KNOWN: KnownHashes = {}


def pipeline_version(decoder: Decoder) -> str:
    """The pipeline version recorded with a session: table layout plus decoder version."""
    return f"lake-{LAKE_FORMAT}+{decoder.name}-{decoder.version}"


def options_key(options: DecodeOptions) -> str:
    """Decoder options as the JSON text `sessions.decoder_options` holds."""
    return json.dumps(options.to_json_dict(), sort_keys=True)


@dataclass(frozen=True)
class Task:
    """One source to prepare, with everything a worker in another process needs."""

    root: str
    storage_options: dict | None = field(repr=False)  # may hold secrets: never in a log line
    path: str
    decoder: str
    options: DecodeOptions
    lease: str
    source_stat: str | None


@dataclass
class WorkResult:
    """What a worker did with one source."""

    source: str
    status: Literal["prepared", "unchanged", "failed"]
    session_id: str | None = None
    prepared: PreparedSession | None = None
    reason: str | None = None
    traceback: str | None = None
    seconds: float = 0.0


def install_known(known: KnownHashes) -> None:
    """Give this worker process the lake's known hashes (a process pool's initializer)."""
    global _KNOWN
    _KNOWN = known


def prepare_source(task: Task, known: KnownHashes | None = None) -> WorkResult:
    """Fingerprint, then decode and prepare one source (never raises)."""
    start = time.perf_counter()
    result = WorkResult(source=task.path, status="failed")
    try:
        from ingest.registry import decoder_named  # imports every decoder: only when ingesting

        decoder = decoder_named(task.decoder)
        source = Source(source_path(task.path), decoder)
        source_hash = fingerprint(source, task.options)
        version = pipeline_version(decoder)
        hit = (_KNOWN if known is None else known).get(
            (source_hash, version, options_key(task.options))
        )
        if hit is not None:
            result.status, result.session_id = "unchanged", hit
        else:
            bundle = decoder.decode(source.path, task.options)
            result.session_id = bundle.session_id
            store = Store(task.root, task.storage_options)
            result.prepared = prepare_session(
                store.files,
                bundle,
                lease=task.lease,
                source_hash=source_hash,
                pipeline_version=version,
                source_stat=task.source_stat,
            )
            result.status = "prepared"
    except NplakeError as exc:
        result.reason = str(exc)
    except OSError as exc:
        if is_storage_error(exc):
            result.reason = describe_os_error(exc, "writing this session")
        else:
            result.reason, result.traceback = _internal(exc)
    except Exception as exc:  # a bug: report it with its traceback, keep the batch going
        result.reason, result.traceback = _internal(exc)
    result.seconds = time.perf_counter() - start
    return result


def _internal(exc: BaseException) -> tuple[str, str]:
    return f"internal error {type(exc).__name__}: {exc}", traceback.format_exc()
