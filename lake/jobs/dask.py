"""Prepare sessions on a Dask cluster (`pip install "nplake[distributed]"`).

Workers fingerprint, decode and write each session's per-session files to the lake's storage
under the coordinator's lease; the coordinator (this process) commits groups, exactly as with
`--jobs`. A worker lost mid-session is retried once on another worker (its half-written files
belong to the lease and are collected as garbage); a second loss reports the session failed.
Nothing here is imported by `import lake`.
"""

from __future__ import annotations

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


def _run(client, tasks: Sequence[Task], known: KnownHashes) -> Iterator[WorkResult | None]:
    from distributed import wait
    from distributed.client import FIRST_COMPLETED

    known_future = client.scatter(dict(known), broadcast=True, hash=False)
    futures = {
        client.submit(prepare_source, task, known_future, retries=RETRIES, pure=False): task
        for task in tasks
    }
    pending = set(futures)
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=TICK_S, return_when=FIRST_COMPLETED)
            except TimeoutError:
                yield None
                continue
            for future in done:
                yield _result(future, futures[future])
    finally:
        for future in pending:
            future.cancel()


def _result(future, task: Task) -> WorkResult:
    try:
        return future.result()
    except Exception as exc:  # the worker died twice, or the task could not be sent
        reason = (
            f"its Dask worker failed ({type(exc).__name__}: {exc}); it was retried {RETRIES} "
            "time(s); nothing of it landed"
        )
        return WorkResult(source=task.path, status="failed", reason=reason)
