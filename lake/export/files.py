"""Export: where the file is written, and how a failed export leaves nothing behind.

The file is written as `.<name>.<host>.<pid>.<token>.partial.nwb` in the target folder and
renamed when complete. Three things keep that folder clean:

- before writing, the free space of the folder (and the process's file-size limit,
  `ulimit -f`) is checked against an upper estimate of the file's size: a shortfall is an
  ExportError before anything is written;
- a failure while writing removes the partial file *before* the HDF5 file is closed (HDF5 may
  crash the process while closing a file whose writes failed, e.g. on a full disk);
- a process that died while writing (killed, or crashed) leaves its partial file, which the
  next export into that folder removes: the name says which host and process wrote it, and a
  process that no longer exists on this host writes no more.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lake.storage.leases import pid_alive
from schemas.errors import ExportError

if TYPE_CHECKING:
    from lake.export.session import SessionRows

#: Bytes reserved on top of the estimate: the cached NWB schema (~0.4 MB) and HDF5 structure.
MARGIN_BYTES = 1 << 20
#: The small tables take at most this many times their in-memory (Arrow) size in the file
#: (measured: 1.2-1.6x; variable-length strings cost most).
SMALL_TABLE_FACTOR = 4

_PARTIAL = re.compile(
    r"^\.(?P<stem>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]{8})\.partial\.nwb$"
)
#: Partial files this process is writing now (never stale, whatever the folder scan says).
_ACTIVE: set[str] = set()


def host_label() -> str:
    """The host name as partial file names give it (letters, digits and '-')."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def partial_path(target: Path) -> Path:
    """A new temporary name for `target`, in its folder, naming this host and process."""
    token = uuid.uuid4().hex[:8]
    return target.parent / f".{target.stem}.{host_label()}.{os.getpid()}.{token}.partial.nwb"


@contextlib.contextmanager
def writing(partial: Path):
    """Mark `partial` as being written by this process (a folder scan leaves it alone)."""
    _ACTIVE.add(str(partial))
    try:
        yield partial
    finally:
        _ACTIVE.discard(str(partial))
        remove(partial)


def remove(path: Path) -> None:
    """Delete `path` if it exists; a file that cannot be deleted is left (nothing to do)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def abandon(fh: Any) -> None:
    """Close an h5py file that failed (already deleted), sending its last writes nowhere.

    HDF5 flushes a file when closing it. After a write failed for lack of space or the
    file-size limit, that flush fails again, and HDF5 then leaves the file half closed and can
    crash the process (at once, or when it exits). Pointing the file's descriptor at
    /dev/null first lets the flush succeed and the close finish cleanly.
    """
    with contextlib.suppress(Exception):
        if os.name == "posix" and fh.driver == "sec2":
            fd = fh.id.get_vfd_handle()
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
    with contextlib.suppress(Exception):
        fh.close()


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete the partial files in `folder` whose writer is gone; return their paths.

    A partial file is stale when it was written on this host by a process that no longer
    exists, or by this process outside any running export. Files from other hosts (a shared
    file system) are left alone: their writers cannot be checked from here. A reused process
    id keeps a stale file until that process ends too (the safe side).
    """
    removed = []
    host, me = host_label(), os.getpid()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        found = _PARTIAL.match(entry.name)
        if found is None or found["host"] != host or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(found["pid"])
        stale = entry.path not in _ACTIVE if pid == me else not pid_alive(pid)
        if stale:
            remove(Path(entry.path))
            removed.append(Path(entry.path))
    return removed


def check_space(folder: Path, needed: int, session_id: str) -> None:
    """ExportError when `folder` has less than `needed` bytes free, or `ulimit -f` is lower.

    The free space is checked once, before writing: another writer can still fill the disk
    meanwhile (the write then fails and the partial file is removed).
    """
    free = shutil.disk_usage(folder).free
    if needed > free:
        msg = (
            f"session {session_id}: not enough space in {folder}: the file needs about "
            f"{_size(needed)}, {_size(free)} are free"
        )
        raise ExportError(msg)
    limit = _file_size_limit()
    if limit is not None and needed > limit:
        msg = (
            f"session {session_id}: the file needs about {_size(needed)}, more than this "
            f"process may write to one file (ulimit -f: {_size(limit)}); writing into {folder} "
            "would fail part way"
        )
        raise ExportError(msg)


def _file_size_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _size(n: int) -> str:
    return f"{n:,} bytes ({n / 1e6:,.1f} MB)"


def io_failure(exc: BaseException) -> str | None:
    """Why writing failed, for an error from the file system or HDF5; None for anything else.

    HDF5 reports failed writes (a full disk, the file-size limit) as RuntimeError or OSError
    with `errno = N, error message = '...'` in the text; other RuntimeErrors are bugs.
    """
    text = str(exc)
    found = re.search(r"errno = (\d+), error message = '([^']*)'", text)
    if found:
        return found[2] or os.strerror(int(found[1]))
    if isinstance(exc, OSError):
        return exc.strerror or text
    return None


def publish(partial: Path, target: Path, session_id: str, *, overwrite: bool) -> None:
    """Move the finished file to `target`; without overwrite, never clobber a file."""
    if overwrite:
        os.replace(partial, target)
        return
    try:
        os.link(partial, target)  # atomic, fails if the target appeared meanwhile
    except FileExistsError:
        raise ExportError(exists_message(session_id, target)) from None
    except OSError:  # no hard links on this file system
        if target.exists():
            raise ExportError(exists_message(session_id, target)) from None
        os.replace(partial, target)


def exists_message(session_id: str, target: Path) -> str:
    """The error text for a target that exists (without overwrite)."""
    return f"session {session_id}: {target} exists (use overwrite=True / --overwrite to replace it)"


def estimated_size(rows: SessionRows) -> int:
    """An upper estimate of the exported file's size in bytes.

    Spike times (and amplitudes) are float64 in contiguous datasets, so exactly 8 bytes each;
    a time series sample of one component is at most a float64 value plus its float64 time
    (16 bytes a `timeseries` row); the small tables take at most SMALL_TABLE_FACTOR times their
    Arrow size; MARGIN_BYTES covers the cached schema and the HDF5 structure.
    """
    spikes = rows.spikes
    n_spikes = spikes.num_rows if spikes is not None else 0
    per_spike = 16 if spikes is not None and spikes.amplitudes != "none" else 8
    samples = rows.table("timeseries").num_rows
    small = sum(table.nbytes for name, table in rows.tables.items() if name != "timeseries")
    return n_spikes * per_spike + 16 * samples + SMALL_TABLE_FACTOR * small + MARGIN_BYTES
