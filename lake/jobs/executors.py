"""Where sources are prepared: in this process, in spawned worker processes, or on Dask.

Each executor runs `prepare_source` over tasks and yields results as they finish, and `None`
every second or so while nothing finished, so the coordinator can commit a group that is due.
Worker processes are spawned: deltalake breaks in forked children (STACK.md).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from lake.jobs.work import KnownHashes, Task, WorkResult, install_known, prepare_source

#: How long the coordinator waits for a result before looking at its group again (s).
TICK_S = 1.0


def run_inline(tasks: Sequence[Task], known: KnownHashes) -> Iterator[WorkResult | None]:
    """Prepare every task in this process, one after another."""
    for task in tasks:
        yield prepare_source(task, known)


def run_pool(tasks: Sequence[Task], known: KnownHashes, jobs: int) -> Iterator[WorkResult | None]:
    """Prepare tasks in `jobs` spawned processes; a dead worker fails its tasks, not the batch."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=install_known, initargs=(known,)
    ) as pool:
        futures: dict[Future, Task] = {pool.submit(prepare_source, t): t for t in tasks}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=TICK_S, return_when=FIRST_COMPLETED)
                if not done:
                    yield None
                for future in done:
                    yield _result(future, futures[future])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _result(future: Future, task: Task) -> WorkResult:
    try:
        return future.result()
    except BrokenProcessPool:
        reason = "its worker process died (killed, or out of memory); nothing of it landed"
        return WorkResult(source=task.path, status="failed", reason=reason)
