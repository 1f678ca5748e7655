"""Where a lake may be made: never in someone's data, and one line when the place is wrong."""

from __future__ import annotations

import os
import subprocess

import pytest
from typer.testing import CliRunner

import lake
from lake.cli import app

JANELIA = "sub-anm369963_ses-20170228.nwb"
runner = CliRunner()


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1, result.output
    return result.output


def test_lake_naming_a_file_is_refused(tmp_path, realdata):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    for args in (["ingest", str(realdata / "nwb" / JANELIA)], ["sessions"], ["sql", "SELECT 1"]):
        out = _one_line_error(runner.invoke(app, [*args, "--lake", str(target)]))
        assert "is a file, not a lake folder" in out
    assert target.read_text() == "mine"


def test_a_non_empty_folder_that_is_not_a_lake_needs_force(tmp_path, realdata):
    folder = tmp_path / "my-data"
    folder.mkdir()
    (folder / "thesis.tex").write_text("x")
    source = str(realdata / "nwb" / JANELIA)
    out = _one_line_error(runner.invoke(app, ["ingest", source, "--lake", str(folder)]))
    assert "is not empty and is not an nplake lake" in out and "--force" in out
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]  # nothing written
    forced = runner.invoke(app, ["ingest", source, "--lake", str(folder), "--force"])
    assert forced.exit_code == 0, forced.output
    assert lake.open(folder).sessions().height == 1
    again = runner.invoke(app, ["ingest", source, "--lake", str(folder)])  # a lake now
    assert again.exit_code == 0 and "1 unchanged" in again.output


def test_a_lake_made_by_an_older_nplake_says_so(tmp_path):
    old = tmp_path / "old"
    (old / "sessions" / "_delta_log").mkdir(parents=True)
    out = _one_line_error(runner.invoke(app, ["sessions", "--lake", str(old)]))
    assert "made by an older nplake" in out


def test_a_read_only_lake_reads_and_refuses_writes_in_one_line(tmp_path, realdata):
    if os.geteuid() != 0:
        pytest.skip("remounting a tmpfs read-only needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(disk)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        uri = str(disk / "lake")
        assert lake.open(uri).ingest([realdata / "nwb" / JANELIA]).ok
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM units", "--lake", uri])
        assert result.exit_code == 0, result.output
        source = str(realdata / "nwb" / "sub-4_ses-4_ecephys+image.nwb")
        out = _one_line_error(runner.invoke(app, ["ingest", source, "--lake", uri]))
        assert "read-only file system" in out and "--lake" in out
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
