"""A full disk during ingest or export: one line saying so, and the lake as it was.

The lake lives on a small tmpfs mounted for the test (root only; skipped elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import polars as pl
import pytest

import lake
from ingest.synth import generate_session, nwb_file_name, write_nwb
from tests.lake.storage.writers import data_files, named_files


@contextlib.contextmanager
def _tmpfs(folder: Path, size: str):
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _session(folder: Path, sid: str, size: str, seed: int) -> Path:
    session = generate_session(sid, seed=seed, size=size)
    path = folder / nwb_file_name(session)
    write_nwb(session, path)
    return path


def test_a_full_disk_fails_the_session_in_one_line_and_keeps_the_lake(tmp_path, realdata):
    sources = tmp_path / "sources"
    sources.mkdir()
    small = realdata / "nwb" / "sub-anm369963_ses-20170228.nwb"
    big = _session(sources, "1200000001", "small", seed=3)
    with _tmpfs(tmp_path / "disk", "3m") as disk:
        lk = lake.open(disk / "lake")
        assert lk.ingest([small]).ok
        before = lk.sql("SELECT * FROM units ORDER BY session_id, unit_id")
        plain_before = pl.read_delta(f"{lk.uri}/units")
        report = lk.ingest([big])
        (failed,) = report.failed
        assert failed.traceback is None
        assert "the disk is full" in failed.reason and "\n" not in failed.reason
        lk = lake.open(disk / "lake")
        assert lk.sql("SELECT * FROM units ORDER BY session_id, unit_id").equals(before)
        for table in ("units", "spikes", "sessions", "trials"):
            pl.read_delta(f"{lk.uri}/{table}")  # every plain reader still reads
        assert pl.read_delta(f"{lk.uri}/units").equals(plain_before)
        store = lk.store
        assert data_files(store) == named_files(store)  # the failed ingest left nothing
        # export onto the full disk: one line, no partial file
        filler = disk / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as fh:
            while True:
                fh.write(b"\0" * (1 << 16))
        sid = lk.sessions()["session_id"].item()
        with pytest.raises(lake.NplakeError, match="space") as raised:
            lk.export_nwb(sid, disk / "out")
        assert "\n" not in str(raised.value)
        assert not any(p.suffix == ".nwb" for p in (disk / "out").rglob("*"))
