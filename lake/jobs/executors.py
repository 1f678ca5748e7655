"""Where sources are prepared: in this process, in spawned worker processes, or on Dask.

Each executor runs `prepare_source` over tasks and yields results as they finish, and `None`
every second or so while nothing finished, so the coordinator can commit a group that is due.
Worker processes are spawned: deltalake breaks in forked children (STACK.md).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Generator, Iterator, Sequence
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
    """Prepare tasks in `jobs` spawned processes; a worker that dies fails its own source only.

    When a worker dies (killed, out of memory, a crash in a C library), the pool breaks and
    every unfinished task with it. Those are suspects: each is run again alone, in a fresh
    process, so the source that kills its process fails with that reason and the others land.
    """
    suspects = yield from _pooled(tasks, known, jobs)
    for task in suspects:
        again = yield from _pooled([task], known, 1)
        if again:
            reason = "its worker process died (killed, out of memory, or a crash while reading)"
            reason += "; tried twice, nothing of it landed"
            yield WorkResult(source=task.path, status="failed", reason=reason)


def _pooled(
    tasks: Sequence[Task], known: KnownHashes, jobs: int
) -> Generator[WorkResult | None, None, list[Task]]:
    """Run tasks in one pool; yield their results; return those its breaking took down."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=install_known, initargs=(known,)
    ) as pool:
        futures: dict[Future, Task] = {pool.submit(prepare_source, t): t for t in tasks}
        pending = set(futures)
        broken: list[Task] = []
        try:
            while pending:
                done, pending = wait(pending, timeout=TICK_S, return_when=FIRST_COMPLETED)
                if not done:
                    yield None
                for future in done:
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        broken.append(futures[future])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return broken
