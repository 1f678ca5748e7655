"""Export one session of the lake as a standard NWB file, written with pynwb from the tables.

What goes where (docs/export.md): session and subject metadata in `/general`; a Device (with
its DeviceModel) and an ElectrodeGroup per probe; the electrodes table (positions, CCF, brain
areas, `local_index` = channel); `/units` with ragged spike times streamed from the lake,
amplitudes, every metric, the electrodes region of the peak channel, waveforms; trials and
every interval table under `/intervals`; licks and rewards as EventsTables under `/events`;
running speed as `/processing/running/speed`; and `/processing/nplake`, the lake columns NWB
has no home for (probe sampling rates and clock fits, clock_alignment, sync_edges, rig,
notes...). Ingesting the file again yields the same rows in every table, apart from the
provenance columns of `sessions` (`PROVENANCE`).

The file is written under a temporary name in the target folder and renamed when complete: a
failure (a session whose rows disagree, a full disk) leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lake._nwb_common import Build
from lake._nwb_meta import PROVENANCE, add_electrodes, add_probes, new_nwbfile
from lake._nwb_read import InconsistentSession, SessionRows, read_session
from schemas import NplakeError, UnknownSession, validate_session_id

if TYPE_CHECKING:
    from lake.lake import Lake

__all__ = [
    "PROVENANCE",
    "ExportError",
    "InconsistentSession",
    "dandi_path",
    "export_nwb",
]

#: Module tables written whole (lake tables with no standard NWB home), in file order.
_MODULE_ONLY = ("clock_alignment", "sync_edges")
_DANDI_UNSAFE = re.compile(r"[^A-Za-z0-9-]")


class ExportError(NplakeError):
    """An NWB export could not be written (target exists, folder not writable, ...)."""


def export_nwb(
    lk: Lake, session_id: str, path: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write session `session_id` of `lk` as an NWB file; return the file's path.

    Parameters
    ----------
    lk
        The lake to read (a `Lake.at(version)` exports the session as it was then).
    session_id
        A session in that lake.
    path
        A file name ending in `.nwb`, or a folder: the file then gets the DANDI-style name
        `sub-<subject>/sub-<subject>_ses-<session>_ecephys.nwb` inside it.
    overwrite
        Replace an existing file (else an existing file is an ExportError).

    Examples
    --------
    >>> export_nwb(lk, "1064644573", "shared/")  # doctest: +SKIP
    PosixPath('shared/sub-512345/sub-512345_ses-1064644573_ecephys.nwb')
    """
    sid = validate_session_id(session_id)
    known = lk.sessions()["session_id"].to_list()
    if sid not in known:
        close = difflib.get_close_matches(sid, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        msg = f"no session {sid!r} in the lake at {lk.uri} (version {lk.version}){hint}"
        raise UnknownSession(msg)
    rows = read_session(lk, sid)
    target = _target(Path(path).expanduser(), rows)
    if target.exists() and not overwrite:
        msg = f"session {sid}: {target} exists (use overwrite=True / --overwrite to replace it)"
        raise ExportError(msg)
    nwbfile, build = build_nwbfile(rows)
    _write(nwbfile, build, target, overwrite=overwrite)
    return target


def dandi_path(subject_id: str | None, session_id: str) -> Path:
    """`sub-<subject>/sub-<subject>_ses-<session>_ecephys.nwb`, labels made DANDI-safe.

    Characters other than letters, digits and '-' (DANDI uses '_' and '.' as separators)
    become '-'; a session without subject is 'sub-unknown'.

    Examples
    --------
    >>> dandi_path("anm369963", "anm369963_2017-02-28_2").as_posix()
    'sub-anm369963/sub-anm369963_ses-anm369963-2017-02-28-2_ecephys.nwb'
    """
    subject = _DANDI_UNSAFE.sub("-", subject_id or "") or "unknown"
    session = _DANDI_UNSAFE.sub("-", session_id)
    return Path(f"sub-{subject}") / f"sub-{subject}_ses-{session}_ecephys.nwb"


def _target(path: Path, rows: SessionRows) -> Path:
    if path.suffix.lower() == ".nwb":
        return path
    return path / dandi_path(rows.session.get("subject_id"), rows.session_id)


def build_nwbfile(rows: SessionRows) -> tuple[Any, Build]:
    """The pynwb NWBFile of a session's rows, and what to do once pynwb has written it.

    Spikes stay in the lake: the file gets empty spike datasets that `Build.after_write`
    fills from the lake's Parquet files.
    """
    from ingest._nwb_write import add_nplake_module
    from lake._nwb_task import add_events, add_intervals, add_running, add_trials
    from lake._nwb_units import add_units

    build = Build(rows)
    counts = {name: table.num_rows for name, table in rows.tables.items()}
    nwbfile = new_nwbfile(build, counts)
    probes = add_probes(nwbfile, build)
    electrodes = add_electrodes(nwbfile, build, probes)
    add_units(nwbfile, build, probes, electrodes)
    add_trials(nwbfile, build)
    add_intervals(nwbfile, build)
    add_events(nwbfile, build)
    add_running(nwbfile, build)
    for name in _MODULE_ONLY:
        if rows.table(name).num_rows:
            build.module[name] = rows.table(name)
    add_nplake_module(
        nwbfile,
        build.module,
        writer=build.writer,
        renames=build.renames,
        descriptions=rows.descriptions,
    )
    return nwbfile, build


def _write(nwbfile: Any, build: Build, target: Path, *, overwrite: bool) -> None:
    """Write under a temporary name in the target folder, then rename (no partial files)."""
    import h5py
    from pynwb import NWBHDF5IO

    sid = build.session_id
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"session {sid}: cannot create folder {target.parent}: {exc.strerror or exc}"
        raise ExportError(msg) from None
    partial = target.parent / f".{target.stem}.{uuid.uuid4().hex[:8]}.partial.nwb"
    try:
        with _in_background(build.during_write) as wait:
            with NWBHDF5IO(str(partial), "w") as io:
                io.write(nwbfile)
            wait()
        if build.after_write:
            with h5py.File(partial, "r+") as fh:
                for step in build.after_write:
                    step(fh)
        _publish(partial, target, sid, overwrite=overwrite)
    except OSError as exc:
        msg = f"session {sid}: cannot write {target}: {exc.strerror or exc}"
        raise ExportError(msg) from None
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


@contextlib.contextmanager
def _in_background(tasks: list[Callable[[], None]]) -> Iterator[Callable[[], None]]:
    """Run `tasks` in threads; the yielded `wait` joins them and re-raises their first error.

    Leaving the block early (an error) still joins them, so no thread outlives the export.
    """
    errors: list[BaseException] = []

    def guarded(task: Callable[[], None]) -> None:
        try:
            task()
        except BaseException as exc:  # re-raised in the exporting thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,), daemon=True) for t in tasks]
    for thread in threads:
        thread.start()

    def wait() -> None:
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    try:
        yield wait
    finally:
        for thread in threads:
            thread.join()


def _publish(partial: Path, target: Path, sid: str, *, overwrite: bool) -> None:
    """Move the finished file to `target`; without overwrite, never clobber a file."""
    if overwrite:
        os.replace(partial, target)
        return
    try:
        os.link(partial, target)  # atomic, fails if the target appeared meanwhile
    except FileExistsError:
        msg = f"session {sid}: {target} exists (use overwrite=True / --overwrite to replace it)"
        raise ExportError(msg) from None
    except OSError:  # no hard links on this file system
        if target.exists():
            msg = f"session {sid}: {target} exists (use overwrite=True / --overwrite)"
            raise ExportError(msg) from None
        os.replace(partial, target)
