"""Leases: a running writer's claim on the files it has written but not yet committed.

Every data file carries the id of the lease it was written under (`part-<lease>-...`). While a
writer runs, a thread refreshes its lease file (`_nplake/leases/<id>.json`) every
`HEARTBEAT_S`; garbage collection deletes uncommitted files only when their lease is gone or
dead: its heartbeat older than `LEASE_TIMEOUT_S`, or its process gone (same host). A slow
ingest therefore keeps its files however long it takes, and a killed one loses them at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass

from lake.storage.files import Files

LEASES = "_nplake/leases"
HEARTBEAT_S = 30.0
#: A lease whose heartbeat is older than this is dead, wherever its writer runs.
LEASE_TIMEOUT_S = 15 * 60.0


def new_lease_id(now: dt.datetime | None = None) -> str:
    """A lease id: UTC time to the microsecond plus random hex (sorts by start time)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%f}Z{secrets.token_hex(4)}"


def lease_of(filename: str) -> str | None:
    """The lease id in a data file's name (`part-<lease>-<rest>.parquet`), if any."""
    name = filename.rsplit("/", 1)[-1]
    if not name.startswith("part-"):
        return None
    lease = name[5:].split("-", 1)[0]
    return lease if len(lease) >= 24 and "Z" in lease else None


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease file says about its writer."""

    lease: str
    host: str
    pid: int
    heartbeat: float  # unix seconds

    def alive(self, now: float | None = None) -> bool:
        """Whether the writer may still commit files of this lease."""
        now = time.time() if now is None else now
        if now - self.heartbeat > LEASE_TIMEOUT_S:
            return False
        if self.host == socket.gethostname():
            return pid_alive(self.pid)
        return True


class Lease:
    """A lease held by this process: created on enter, refreshed, deleted on exit."""

    def __init__(self, files: Files, lease_id: str | None = None) -> None:
        self.files = files
        self.id = lease_id or new_lease_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self._write()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):  # else left for garbage collection (it is dead now)
            self.files.delete([f"{LEASES}/{self.id}.json"])

    def held(self) -> bool:
        """Whether the lease file still exists (garbage collection removes a dead lease)."""
        return self.files.exists(f"{LEASES}/{self.id}.json")

    def _write(self) -> None:
        body = {"lease": self.id, "host": socket.gethostname(), "pid": os.getpid()}
        body["heartbeat"] = time.time()
        self.files.put(f"{LEASES}/{self.id}.json", json.dumps(body).encode())

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._write()
            except OSError:  # a full disk or a network blip: try again at the next beat
                continue


def read_leases(files: Files) -> dict[str, LeaseInfo]:
    """Every lease file of the lake, by lease id (unreadable ones are skipped: dead)."""
    out = {}
    for info in files.list(LEASES):
        data = files.read_bytes(info.path)
        if data is None:
            continue
        try:
            body = json.loads(data)
            out[body["lease"]] = LeaseInfo(
                body["lease"], body["host"], int(body["pid"]), float(body["heartbeat"])
            )
        except (ValueError, KeyError, TypeError):
            continue
    return out


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (unknown counts as alive)."""
    if os.name != "posix" or pid <= 0:
        return True  # os.kill is no probe on Windows: it terminates the process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True
