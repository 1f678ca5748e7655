"""NWB export: valid files, DANDI names, past versions, sessions and targets refused."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
from pynwb import NWBHDF5IO, validate

import lake
from lake import ExportError
from lake.export import dandi_path
from lake.storage import commit_bundle
from schemas import InvalidSessionId, UnknownSession
from tests.lake.builders import make_bundle
from tests.lake.export.helpers import JANELIA, REPO, SYNTH


# ------------------------------------------------------------------------------------ files
def test_exported_file_reads_with_pynwb(files, lk):
    with NWBHDF5IO(str(files[SYNTH]), "r") as io:
        nwbfile = io.read()
        units = nwbfile.units.to_dataframe(index=True)
        assert len(units) == lk.sessions().filter(session_id=SYNTH)["n_units"].item()
        first = lk.sql(f"SELECT unit_id, time FROM spikes WHERE session_id = '{SYNTH}'")
        unit = int(first["unit_id"][0])
        expected = first.filter(unit_id=unit)["time"].to_numpy()
        assert np.array_equal(units.loc[unit, "spike_times"], expected)
        assert nwbfile.subject.subject_id is not None
        # licks and rewards come back as the series the source had, not as events tables
        assert set(nwbfile.events) == set()
        assert nwbfile.processing["licking"]["licks"].timestamps[:].size > 0
        assert set(nwbfile.processing["rewards"].data_interfaces) == {"volume", "autorewarded"}


def test_dandi_names():
    assert dandi_path("anm369963", JANELIA).as_posix() == (
        "sub-anm369963/sub-anm369963_ses-anm369963-2017-02-28-2_ecephys.nwb"
    )
    assert dandi_path(None, "s.1").as_posix() == "sub-unknown/sub-unknown_ses-s-1_ecephys.nwb"
    assert dandi_path("a b/c:d", "x").name == "sub-a-b-c-d_ses-x_ecephys.nwb"


def test_folder_target_gets_the_dandi_name(files):
    path = files[JANELIA]
    assert path.parent.name == "sub-anm369963"
    assert path.name == "sub-anm369963_ses-anm369963-2017-02-28-2_ecephys.nwb"
    assert not list(path.parent.glob(".*"))  # no temporary file left


def test_file_target_is_used_as_given(lk, tmp_path):
    path = lk.export_nwb(JANELIA, tmp_path / "mine.nwb")
    assert path == tmp_path / "mine.nwb" and path.is_file()


def test_import_lake_does_not_import_pynwb():
    code = "import sys, lake; sys.exit('pynwb' in sys.modules or 'hdmf' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0


# ----------------------------------------------------------------------------- past versions
def test_export_from_a_past_lake_version(versioned, tmp_path):
    lk, first = versioned
    n_first = lk.at(first).sessions()["n_spikes"].item()
    n_second = lk.sessions()["n_spikes"].item()
    assert n_first != n_second
    old = lk.at(first).export_nwb(SYNTH, tmp_path / "old.nwb")
    new = lk.export_nwb(SYNTH, tmp_path / "new.nwb")
    with h5py.File(old) as fh_old, h5py.File(new) as fh_new:
        assert len(fh_old["units/spike_times"]) == n_first
        assert len(fh_new["units/spike_times"]) == n_second


# --------------------------------------------------------------------------------- bad input
def test_unknown_session_suggests_close_matches(lk, tmp_path):
    with pytest.raises(UnknownSession, match="did you mean anm369963_2017-02-28_2"):
        lk.export_nwb("anm369963_2017-02-28_3", tmp_path)
    with pytest.raises(UnknownSession, match="no session 'zzz'"):
        lk.export_nwb("zzz", tmp_path)
    assert not any(tmp_path.iterdir())


def test_invalid_session_id_never_reaches_a_file_name(lk, tmp_path):
    with pytest.raises(InvalidSessionId):
        lk.export_nwb("../../etc/passwd", tmp_path)


def test_existing_file_needs_overwrite(lk, tmp_path):
    path = lk.export_nwb(JANELIA, tmp_path / "x.nwb")
    path.write_bytes(b"precious")
    with pytest.raises(ExportError, match=r"exists.*overwrite"):
        lk.export_nwb(JANELIA, tmp_path / "x.nwb")
    assert path.read_bytes() == b"precious"
    lk.export_nwb(JANELIA, tmp_path / "x.nwb", overwrite=True)
    assert validate(path=str(path)) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nwb"]


# -------------------------------------------------------------------------------------- S3
@pytest.mark.slow  # a round trip through a moto S3 server
def test_export_from_a_lake_on_s3(s3, tmp_path):
    s3_options = s3.options
    from lake.storage import Store
    from tests.lake.export.helpers import differences

    uri = "s3://nplake-test/export-lake"
    store = Store.at(uri, s3_options)
    commit_bundle(store, make_bundle("s3-session", seed=2), source_hash="h", pipeline_version="t")
    remote = lake.open(uri, storage_options=s3_options)
    path = remote.export_nwb("s3-session", tmp_path)
    local = lake.open(tmp_path / "lake")
    assert local.ingest(path).ok
    assert differences(remote, local, "s3-session") == []
