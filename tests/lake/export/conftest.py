"""Lakes the export tests share: a real and a synthetic session; a session replaced once."""

from __future__ import annotations

from pathlib import Path

import pytest

import lake
from ingest.synth import generate_session, write_nwb
from tests.lake.export.helpers import SYNTH


@pytest.fixture(scope="module")
def lk(tmp_path_factory, realdata) -> lake.Lake:
    root = tmp_path_factory.mktemp("export")
    lk = lake.open(root / "lake")
    synth = write_nwb(generate_session(SYNTH, seed=9), root / "synth.nwb")
    report = lk.ingest([realdata / "nwb" / "sub-anm369963_ses-20170228.nwb", synth])
    assert report.ok, str(report)
    return lk


@pytest.fixture(scope="module")
def files(lk, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("files")
    return {sid: lk.export_nwb(sid, out) for sid in lk.sessions()["session_id"]}


@pytest.fixture(scope="module")
def versioned(tmp_path_factory) -> tuple[lake.Lake, int]:
    """A lake whose session SYNTH was replaced: (lake, the version before the replacement)."""
    root = tmp_path_factory.mktemp("versions")
    lk = lake.open(root / "lake")
    lk.ingest(write_nwb(generate_session(SYNTH, seed=1), root / "v1.nwb"))
    first = lk.version
    lk.ingest(write_nwb(generate_session(SYNTH, seed=2), root / "v2.nwb"))
    return lk, first
