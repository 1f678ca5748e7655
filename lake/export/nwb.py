"""Export one session of the lake as a standard NWB file, written with pynwb from the tables.

What goes where (docs/export.md): session and subject metadata in `/general`; a Device (with
its DeviceModel) and an ElectrodeGroup per probe; the electrodes table (positions, CCF, brain
areas, `local_index` = channel); `/units` with ragged spike times streamed from the lake,
amplitudes, every metric, the electrodes region of the peak channel, waveforms; trials and
every interval table under `/intervals`; licks and rewards as EventsTables under `/events`;
running speed as `/processing/running/speed`; and `/processing/nplake`, the lake columns NWB
has no home for (probe sampling rates and clock fits, clock_alignment, sync_edges, rig,
notes...). Ingesting the file again yields the same rows in every table, apart from the
provenance columns of `sessions` (`lake.export.meta.PROVENANCE`).

The file is written under a temporary name in the target folder and renamed when complete
(`lake.export.files`). An export that fails with an error (rows that disagree, a folder that
cannot be written, too little free space, a write that fails part way) leaves no file behind;
one whose process dies (killed, or crashed inside HDF5) leaves its temporary file, which the
next export into that folder removes.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from ingest.nwb.processing_nplake import TABLE_SERIES
from lake.export.context import ExportContext
from lake.export.files import (
    abandon,
    check_space,
    estimated_size,
    exists_message,
    io_failure,
    partial_path,
    publish,
    remove,
    remove_stale_partials,
    writing,
)
from lake.export.meta import new_nwbfile
from lake.export.probes import add_electrodes, add_probes
from lake.export.session import SessionRows, read_session
from lake.export.spikes import spike_checks
from schemas import validate_session_id
from schemas.errors import ExportError

if TYPE_CHECKING:
    from lake import Lake

#: Module tables written whole (lake tables with no standard NWB home, and what the source
#: said that a re-read of the export would say differently), in file order.
_MODULE_ONLY = ("clock_alignment", "sync_edges", "timeseries_info", "inventory", "descriptions")
_DANDI_UNSAFE = re.compile(r"[^A-Za-z0-9-]")
#: hdmf's raw-data chunk cache for the files it opens (h5tools.RDCC_NBYTES).
_CHUNK_CACHE = 32 << 20

#: A background check: runs until done, or until the event is set (the export failed).
Task = Callable[[threading.Event], None]


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
    lk = lk.pinned()  # one lake version for every table
    rows = read_session(lk, sid, session=session_row(lk, sid))
    target = target_path(Path(path).expanduser(), rows.session.get("subject_id"), sid)
    if target.exists() and not overwrite:
        raise ExportError(exists_message(sid, target))
    folder = _folder(target.parent, sid)
    remove_stale_partials(folder)
    check_space(folder, estimated_size(rows), sid)
    # the spikes are checked against the units (a thread reading their unit ids) while the
    # file is built and pynwb writes it; no spike is written before the check has passed
    with _in_background(spike_checks(rows)) as wait:
        nwbfile, ctx = build_nwbfile(rows)
        _write(nwbfile, ctx, target, wait, overwrite=overwrite)
    return target


def session_row(lk: Lake, session_id: str) -> dict:
    """The sessions row of `session_id`; UnknownSession (with close matches) when absent."""
    sid = lk.require_session(session_id)
    return lk.sessions().filter(pl.col("session_id") == sid).row(0, named=True)


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


def target_path(path: Path, subject_id: str | None, session_id: str) -> Path:
    """`path` itself when it names a `.nwb` file, else the DANDI-style file inside that folder."""
    if path.suffix.lower() == ".nwb":
        return path
    return path / dandi_path(subject_id, session_id)


def _folder(folder: Path, sid: str) -> Path:
    """The target folder, created if needed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"session {sid}: cannot create folder {folder}: {exc.strerror or exc}"
        raise ExportError(msg) from None
    return folder


def build_nwbfile(rows: SessionRows) -> tuple[Any, ExportContext]:
    """The pynwb NWBFile of a session's rows, and what to do once pynwb has written it.

    Spikes stay in the lake: the file gets empty spike datasets that `ExportContext.after_write`
    fills from the lake's Parquet files.
    """
    from ingest.nwb.write import add_nplake_module
    from lake.export.series import add_series
    from lake.export.task import add_events, add_intervals, add_running, add_trials
    from lake.export.units import add_units

    ctx = ExportContext(rows)
    counts = {name: table.num_rows for name, table in rows.tables.items()}
    nwbfile = new_nwbfile(ctx, counts)
    probes = add_probes(nwbfile, ctx)
    electrodes = add_electrodes(nwbfile, ctx, probes)
    add_units(nwbfile, ctx, probes, electrodes)
    add_trials(nwbfile, ctx)
    add_intervals(nwbfile, ctx)
    add_series(nwbfile, ctx)
    add_events(nwbfile, ctx)
    add_running(nwbfile, ctx)
    for name in _MODULE_ONLY:
        if rows.table(name).num_rows:
            ctx.module[name] = rows.table(name)
    if ctx.table_series:
        paths, tables = zip(*ctx.table_series, strict=True)
        ctx.module[TABLE_SERIES] = pa.table({"path": list(paths), "table": list(tables)})
    add_nplake_module(
        nwbfile,
        ctx.module,
        writer=ctx.writer,
        renames=ctx.renames,
        descriptions=rows.descriptions,
    )
    return nwbfile, ctx


def _write(
    nwbfile: Any, ctx: ExportContext, target: Path, wait: Callable[[], None], *, overwrite: bool
) -> None:
    """Write under a temporary name in the target folder, then rename (no partial files).

    `wait` returns once the background checks have passed (it raises their error).
    """
    sid = ctx.session_id
    with writing(partial_path(target)) as partial:
        try:
            write_file(nwbfile, ctx, partial, wait)
            publish(partial, target, sid, overwrite=overwrite)
        except (OSError, RuntimeError) as exc:
            reason = io_failure(exc)
            if reason is None:
                raise
            msg = f"session {sid}: cannot write {target.name} into {target.parent}: {reason}"
            raise ExportError(msg) from None


def write_file(nwbfile: Any, ctx: ExportContext, path: Path, wait: Callable[[], None]) -> None:
    """Write the file with pynwb, then (after `wait`) complete it with `ctx.after_write`.

    One HDF5 file handle for both. On any failure `path` is deleted before the handle is
    closed (`abandon`), so nothing is left behind even if closing fails.
    """
    import h5py
    from pynwb import NWBHDF5IO

    fh = h5py.File(path, "x", rdcc_nbytes=_CHUNK_CACHE)
    try:
        io = NWBHDF5IO(str(path), "w", file=fh)
        io.write(nwbfile)
        wait()
        for step in ctx.after_write:
            step(fh)
        fh.flush()
    except BaseException:
        remove(path)
        abandon(fh)
        raise
    io.close()


@contextlib.contextmanager
def _in_background(tasks: list[Task]) -> Iterator[Callable[[], None]]:
    """Run `tasks` in threads; the yielded `wait` joins them and re-raises their first error.

    Leaving the block early (an error) asks them to stop and joins them: no thread outlives
    the export.
    """
    errors: list[BaseException] = []
    stop = threading.Event()

    def guarded(task: Task) -> None:
        try:
            task(stop)
        except BaseException as exc:  # re-raised in the exporting thread
            errors.append(exc)

    threads = [
        threading.Thread(target=guarded, args=(t,), name="nplake-export-check", daemon=True)
        for t in tasks
    ]
    for thread in threads:
        thread.start()

    def wait() -> None:
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    try:
        yield wait
    except BaseException:
        stop.set()
        raise
    finally:
        for thread in threads:
            thread.join()
