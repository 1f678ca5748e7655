"""NWB export into folders: clear errors, and no partial file left behind."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from lake import ExportError
from tests.lake.export.helpers import JANELIA, REPO


def test_unwritable_folder_is_a_clear_error(lk, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(ExportError, match=f"session {JANELIA}: cannot create folder"):
        lk.export_nwb(JANELIA, blocker / "out")


def test_too_little_free_space_is_a_clear_error(lk, tmp_path, monkeypatch):
    import lake.export.files as files

    def full(path):
        return shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000)

    monkeypatch.setattr(files.shutil, "disk_usage", full)
    folder = tmp_path / "sub-anm369963"
    with pytest.raises(ExportError) as caught:
        lk.export_nwb(JANELIA, tmp_path)
    message = str(caught.value)
    assert f"session {JANELIA}: not enough space in {folder}: the file needs about " in message
    assert message.endswith("1,000 bytes (0.0 MB) are free")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_space_estimate_bounds_the_file_size(lk, files):
    from lake.export.files import estimated_size
    from lake.export.session import read_session

    for sid, path in files.items():
        size = path.stat().st_size
        assert size <= estimated_size(read_session(lk, sid)) <= 2 * size + 2**20


def test_unwritable_existing_folder_is_a_clear_error(lk, tmp_path, monkeypatch):
    """Root writes anywhere: the file system's refusal is simulated where h5py creates the file."""

    def refused(path, *args, **kwargs):
        msg = (
            f"Unable to synchronously create file (unable to open file: name = '{path}', "
            "errno = 13, error message = 'Permission denied', flags = 15, o_flags = c2)"
        )
        raise PermissionError(errno.EACCES, msg)

    monkeypatch.setattr(h5py, "File", refused)
    folder = tmp_path / "sub-anm369963"
    folder.mkdir()
    with pytest.raises(ExportError, match=f"into {folder}: Permission denied$"):
        lk.export_nwb(JANELIA, tmp_path)
    assert list(folder.iterdir()) == []


def _partial(folder: Path, pid: int, host: str | None = None) -> Path:
    from lake.export.files import host_label

    stem = "sub-anm369963_ses-anm369963-2017-02-28-2_ecephys"
    path = folder / f".{stem}.{host or host_label()}.{pid}.0123abcd.partial.nwb"
    path.write_bytes(b"half a file")
    return path


def test_stale_partial_files_of_dead_processes_are_removed(lk, tmp_path):
    folder = tmp_path / "sub-anm369963"
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(done.stdout)  # exited and reaped
    stale = [_partial(folder, dead), _partial(folder, os.getpid())]  # not being written
    kept = [
        _partial(folder, os.getppid()),  # alive
        _partial(folder, dead, host="another-host"),  # cannot be checked from here
        folder / ".notes.txt",
    ]
    kept[-1].write_text("not ours")
    path = lk.export_nwb(JANELIA, tmp_path)
    assert sorted(folder.iterdir()) == sorted([path, *kept])
    assert not any(p.exists() for p in stale)


CHILD = """
import resource, signal, sys
import lake, lake.export.nwb as export
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Python's default: writes fail with EFBIG
limit = int(sys.argv[3])
if sys.argv[4] == "disk-fills-while-writing":  # the free-space check passed, then...
    export.check_space = lambda *args: None
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    lake.open(sys.argv[1]).export_nwb(sys.argv[2], sys.argv[5])
except lake.NplakeError as exc:
    print(exc)
"""


def _child(lk, out: Path, limit: int, mode: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-c", CHILD, lk.uri, JANELIA, str(limit), mode, str(out)]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=False)


def test_a_file_size_limit_below_the_estimate_is_refused_before_writing(lk, tmp_path):
    done = _child(lk, tmp_path, 200_000, "checked")
    assert done.returncode == 0, done.stderr
    assert "more than this process may write to one file (ulimit -f: 200,000 bytes" in done.stdout
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("limit", [300_000, 450_000])  # the file is ~500 kB
def test_a_write_failing_part_way_leaves_no_partial_file(lk, tmp_path, limit):
    """The limit is hit inside HDF5: a clean error, or a crash whose file the next export removes.

    Which one depends on where HDF5 was when the write failed (it can crash the process while
    closing the failed file); neither leaves a file behind once the next export ran.
    """
    done = _child(lk, tmp_path, limit, "disk-fills-while-writing")
    folder = tmp_path / "sub-anm369963"
    if done.returncode == 0:  # a clean error, and the partial file already gone
        assert "cannot write" in done.stdout and done.stdout.rstrip().endswith("File too large")
        assert list(folder.iterdir()) == []
    else:
        assert done.returncode < 0, done.stderr[-2000:]  # killed by a signal inside HDF5
    path = lk.export_nwb(JANELIA, tmp_path)
    assert list(folder.iterdir()) == [path]
