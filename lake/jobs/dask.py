"""Prepare sessions on a Dask cluster (`pip install "nplake[distributed]"`).

Workers fingerprint, decode and write each session's per-session files to the lake's storage
under the coordinator's lease; the coordinator (this process) commits groups, exactly as with
`--jobs`. Nothing here is imported by `import lake`.

**A worker lost mid-session** (killed, out of memory, its machine gone): Dask runs the session
again on another worker. Each attempt logs an event as it starts (to a topic of this batch);
the coordinator counts them, and once a session has started more than `RETRIES + 1` times, so
its worker died `RETRIES + 1` times, it cancels it and reports it failed. (Dask alone would try
up to the scheduler's `allowed-failures`, 3 by default: a session that kills every worker it
lands on should not take three of them.) The attempt that starts before the cancel reaches it
is cancelled too. The starts are counted from events, which can arrive late (a busy machine):
if Dask's own limit comes first, its KilledWorker is reported the same way. Files a lost
attempt wrote belong to the coordinator's lease and are never
named by a lake version: garbage collection deletes them once the ingest has ended.

The lake's known hashes (for the unchanged check) go to the workers as the result of one task,
not as scattered data: if every worker holding them dies, Dask computes them again.

**A local lake** needs one file system shared by the coordinator and every worker (the same
path everywhere): a session whose files the coordinator cannot see fails with that reason and is
never committed.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator, Sequence

from lake.jobs.executors import TICK_S
from lake.jobs.work import KnownHashes, Task, WorkResult, prepare_source

#: Tries per session beyond the first when its worker dies.
RETRIES = 1


def dask_executor(client):
    """An executor running `prepare_source` on `client`'s cluster."""
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - the extra is missing
        msg = 'distributed ingest needs Dask: pip install "nplake[distributed]"'
        raise ImportError(msg) from exc
    if not isinstance(client, Client):
        msg = f"client must be a dask.distributed.Client, not {type(client).__name__}"
        raise TypeError(msg)

    def run(tasks: Sequence[Task], known: KnownHashes) -> Iterator[WorkResult | None]:
        return _run(client, tasks, known)

    return run


class _Known:
    """The lake's known hashes, opaque to Dask (which would walk a dict for tasks and keys)."""

    def __init__(self, hashes: dict) -> None:
        self.hashes = hashes


def prepare_attempt(task: Task, known: _Known, topic: str, key: str) -> WorkResult:
    """One attempt at a task on a worker: say that it starts (deaths are counted so), work."""
    from distributed import get_worker

    get_worker().log_event(topic, {"key": key})
    return prepare_source(task, known.hashes)


class _Attempts:
    """How often each task has started, from the events its attempts log (thread-safe).

    A task runs again only when its worker died while running it (`prepare_source` never
    raises, and a task Dask moves to another worker before it starts logs nothing), so the
    deaths of a task are its starts minus one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._starts: dict[str, int] = {}

    def started(self, event: tuple[float, dict]) -> None:
        """A subscription handler: one attempt of `event[1]['key']` started."""
        key = str(event[1]["key"])
        with self._lock:
            self._starts[key] = self._starts.get(key, 0) + 1

    def deaths(self, key: str) -> int:
        """How often the workers running `key` died."""
        with self._lock:
            return max(self._starts.get(key, 0) - 1, 0)


def _run(client, tasks: Sequence[Task], known: KnownHashes) -> Iterator[WorkResult | None]:
    from distributed import wait
    from distributed.client import FIRST_COMPLETED

    topic = f"nplake-{secrets.token_hex(6)}"
    attempts = _Attempts()
    client.subscribe_topic(topic, attempts.started)
    # the lake's known hashes as a task's result, not scattered data: if every worker holding
    # it dies, Dask computes it again (scattered data would be lost, with every task needing it)
    known_future = client.submit(
        _Known, dict(known), key=f"nplake-known-{secrets.token_hex(6)}", pure=False
    )
    futures = {}
    for task in tasks:
        key = f"nplake-prepare-{os.path.basename(task.path.rstrip('/'))}-{secrets.token_hex(6)}"
        future = client.submit(
            prepare_attempt, task, known_future, topic, key, key=key, pure=False, retries=0
        )
        futures[future] = task
    pending = set(futures)
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=TICK_S, return_when=FIRST_COMPLETED)
            except TimeoutError:
                done = set()
            for future in done:
                yield _result(future, futures.pop(future))
                future.release()  # let the cluster drop the result
            for future in [f for f in pending if attempts.deaths(f.key) > RETRIES]:
                future.cancel()
                pending.discard(future)
                yield _lost(futures.pop(future))
            if not done:
                yield None
    finally:
        for future in pending:
            future.cancel()
        known_future.release()
        client.unsubscribe_topic(topic)


def _lost(task: Task) -> WorkResult:
    reason = (
        "its Dask worker died each time it was tried (killed, or out of memory); it is not "
        "tried again, and nothing of it landed"
    )
    return WorkResult(source=task.path, status="failed", reason=reason)


def _result(future, task: Task) -> WorkResult:
    from distributed import KilledWorker

    try:
        result = future.result()
    except KilledWorker:  # Dask's allowed-failures came before our count of the starts
        return _lost(task)
    except Exception as exc:  # it could not be sent, or Dask failed it otherwise
        reason = f"its Dask worker failed ({type(exc).__name__}: {exc}); nothing of it landed"
        return WorkResult(source=task.path, status="failed", reason=reason)
    return _check_visible(result, task)


def _check_visible(result: WorkResult, task: Task) -> WorkResult:
    """Fail a session of a local lake whose files this process cannot see (no shared disk)."""
    if result.prepared is None or "://" in task.root:
        return result
    missing = [
        f"{task.root}/{f.table}/{f.path}"
        for f in result.prepared.files
        if not _has_size(f"{task.root}/{f.table}/{f.path}", f.size)
    ]
    if not missing:
        return result
    reason = (
        f"its worker wrote {missing[0]} (and {len(missing) - 1} more) where this process "
        f"cannot see it: a local lake needs one file system shared by every Dask worker and "
        f"this process at the same path (or put the lake on S3); nothing of it landed"
    )
    return WorkResult(
        source=result.source, status="failed", session_id=result.session_id, reason=reason
    )


def _has_size(path: str, size: int) -> bool:
    try:
        return os.path.getsize(path) == size
    except OSError:
        return False
