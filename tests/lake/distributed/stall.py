"""A Dask worker plugin that stalls one session's spikes file halfway, for a test to kill.

Installed on every worker (also those the nanny restarts after a kill). When a worker reaches the
end of the session's spikes batches, the file is open and partly written; the worker writes
`stalled-<pid>` into `folder` and sleeps until it is killed. With `every_time=False` only the
first attempt stalls (a one-shot flag file in `folder`), so the retry lands.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin


class StallSpikes(WorkerPlugin):
    """Stall the spikes file of `session_id` until the worker is killed."""

    name = "nplake-stall-spikes"

    def __init__(self, session_id: str, folder: str, *, every_time: bool) -> None:
        self.session_id = session_id
        self.folder = folder
        self.every_time = every_time

    def setup(self, worker) -> None:
        from lake.storage import commit

        real = commit.write_data_file
        if getattr(real, "stalls", False):
            return
        plugin = self

        def write(files, table, rel, batches, *args, **kwargs):
            if table == "spikes" and rel.startswith(f"session_id={plugin.session_id}/"):
                batches = plugin.stalled(batches)
            return real(files, table, rel, batches, *args, **kwargs)

        write.stalls = True
        commit.write_data_file = write

    def stalled(self, batches) -> Iterator:
        yield from batches
        if not self.every_time:
            try:
                os.close(os.open(Path(self.folder) / "once", os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
        note = Path(self.folder) / f".note-{os.getpid()}"
        note.write_text(str(os.getpid()))
        note.rename(Path(self.folder) / f"stalled-{os.getpid()}")  # whole, for the killer
        time.sleep(600)


class Killer:
    """A thread that SIGKILLs every process announcing itself in `folder`, until stopped."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for note in sorted(self.folder.glob("stalled-*")):
                pid = int(note.read_text())
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)
                note.unlink()
