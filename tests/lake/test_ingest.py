"""Ingest through the lake: real NWB files, re-ingest as a no-op, bad input failing alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
from deltalake import DeltaTable

import lake
from ingest import discover
from schemas import TABLES

JANELIA = "sub-anm369963_ses-20170228.nwb"
OGEN = "sub_anm00239123_ses_20170627T093549_ecephys_and_ogen.nwb"
HUMAN = "sub-4_ses-4_ecephys+image.nwb"
#: file -> (session id, units, spikes, sum of spike times, electrodes, trials) from the README.
REAL = {
    JANELIA: ("anm369963_2017-02-28_2", 1, 1_679, 1830408.7248250002, 64, 178),
    OGEN: ("anm00239123_2017-06-27_09-35-49", 4, 34_057, 87436293.55639184, 32, 412),
    HUMAN: ("TWH103_CBID4", 35, 214_278, 302104732.80567324, 19, 0),
}


def versions(lk: lake.Lake) -> dict[str, int]:
    return {name: DeltaTable(f"{lk.uri}/{name}").version() for name in TABLES}


def everything(lk: lake.Lake, columns: dict[str, list[str]] | None = None) -> dict[str, list]:
    """Every current row of every table (optionally of some columns), sorted, NaN-comparable."""
    out = {}
    for name in TABLES:
        frame = lk.scan(name).collect()
        if name == "sessions":
            frame = frame.drop("ingested_at")
        # by name: sessions committed in another order add their extra columns in another order
        frame = frame.select(sorted(columns[name] if columns is not None else frame.columns))
        rows = frame.sort(frame.columns).rows() if frame.height else []
        out[name] = [tuple(_comparable(v) for v in row) for row in rows]
    return out


def _comparable(value):
    """NaN made equal to NaN (as a sentinel), inside lists too."""
    if isinstance(value, float) and value != value:
        return "<NaN>"
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


@pytest.fixture(scope="module")
def real_lake(tmp_path_factory, realdata) -> lake.Lake:
    lk = lake.open(tmp_path_factory.mktemp("real") / "lake")
    report = lk.ingest([realdata / "nwb"])
    assert report.ok, str(report)
    assert len(report.landed) == 3
    return lk


def test_every_real_nwb_file_lands_with_its_exact_numbers(real_lake, realdata):
    sessions = real_lake.sessions()
    assert sorted(sessions["session_id"]) == sorted(v[0] for v in REAL.values())
    for name, (sid, units, spikes, total, electrodes, trials) in REAL.items():
        row = sessions.filter(pl.col("session_id") == sid).row(0, named=True)
        assert (row["n_units"], row["n_spikes"], row["n_channels"], row["n_trials"]) == (
            units,
            spikes,
            electrodes,
            trials,
        )
        times = real_lake.sql(f"SELECT time FROM spikes WHERE session_id = '{sid}'")["time"]
        with h5py.File(realdata / "nwb" / name) as fh:
            source = fh["units/spike_times"][:]
        assert np.sum(source) == total  # the README's number: a numpy sum in file order
        assert np.array_equal(np.sort(times.to_numpy()), np.sort(source))  # the same values
        assert row["source_kind"] == "nwb"
        assert row["pipeline_version"].startswith("lake-2+nwb-")


def test_spikes_per_unit_match_the_source_ragged_arrays(real_lake, realdata):
    path = realdata / "nwb" / OGEN
    with h5py.File(path) as fh:
        ids = fh["units/id"][:]
        ends = fh["units/spike_times_index"][:].astype(np.int64)
        times = fh["units/spike_times"][:]
    sid = REAL[OGEN][0]
    for uid, part in zip(ids, np.split(times, ends[:-1]), strict=True):
        got = real_lake.sql(
            f"SELECT time FROM spikes WHERE session_id = '{sid}' AND unit_id = {int(uid)} "
            "ORDER BY time"
        )["time"].to_numpy()
        assert np.array_equal(got, np.sort(part))


def test_reingesting_unchanged_files_is_a_no_op(real_lake, realdata):
    before_versions = versions(real_lake)
    before = everything(real_lake)
    report = real_lake.ingest([realdata / "nwb"])
    assert [o.status for o in report.outcomes] == ["unchanged"] * 3
    assert versions(real_lake) == before_versions
    assert everything(real_lake) == before


def test_a_changed_file_replaces_its_session(tmp_path, realdata):
    source = tmp_path / OGEN
    shutil.copy(realdata / "nwb" / OGEN, source)
    lk = lake.open(tmp_path / "lake")
    assert lk.ingest([source]).ok
    with h5py.File(source, "r+") as fh:  # drop the last unit's last spike
        index = fh["units/spike_times_index"][:].astype(np.int64)
        times = fh["units/spike_times"][: index[-1] - 1]
        index[-1] -= 1
        del fh["units/spike_times"], fh["units/spike_times_index"]
        fh["units/spike_times"] = times
        fh["units/spike_times_index"] = index
    report = lk.ingest([source])
    assert report.landed and report.landed[0].replaced
    assert lk.sessions()["n_spikes"].to_list() == [34_056]
    assert lk.sql("SELECT count(*) FROM spikes").item() == 34_056


def _damaged_copies(realdata: Path, folder: Path) -> dict[str, str]:
    """Bad files next to one good file; name -> what the error must mention."""
    folder.mkdir()
    good = folder / JANELIA
    shutil.copy(realdata / "nwb" / JANELIA, good)
    (folder / "text.nwb").write_text("not HDF5")
    cut = folder / "cut.nwb"
    shutil.copy(realdata / "nwb" / OGEN, cut)
    with open(cut, "r+b") as fh:
        fh.truncate(cut.stat().st_size // 2)
    for name, edit in {
        "no_units.nwb": lambda fh: fh.__delitem__("units"),
        "bad_index.nwb": lambda fh: (
            fh.__delitem__("units/spike_times_index"),
            fh.__setitem__("units/spike_times_index", np.array([999], np.int32)),
        ),
        "bad_id.nwb": lambda fh: (
            fh.__delitem__("identifier"),
            fh.__setitem__("identifier", "bad id!"),
        ),
    }.items():
        shutil.copy(realdata / "nwb" / HUMAN if name == "bad_id.nwb" else good, folder / name)
        with h5py.File(folder / name, "r+") as fh:
            edit(fh)
    return {
        "text.nwb": "not an HDF5 file",
        "cut.nwb": "truncated",
        "no_units.nwb": "no units table",
        "bad_index.nwb": "spike_times_index",
        "bad_id.nwb": "identifier",
        "missing.nwb": "no such file",
    }


def test_bad_input_fails_alone_and_leaves_the_lake_as_it_was(tmp_path, realdata):
    lk = lake.open(tmp_path / "lake")
    assert lk.ingest([realdata / "nwb" / OGEN]).ok
    before = everything(lk)
    before_columns = {
        name: lk.scan(name).drop("ingested_at", strict=False).collect_schema().names()
        for name in TABLES
    }
    folder = tmp_path / "batch"
    expected = _damaged_copies(realdata, folder)
    report = lk.ingest([folder, folder / "missing.nwb"])
    assert [Path(o.source).name for o in report.landed] == [JANELIA]
    failed = {Path(o.source).name: o.reason for o in report.failed}
    assert sorted(failed) == sorted(expected)
    for name, words in expected.items():
        assert name in failed[name] and words in failed[name], failed[name]
        assert "\n" not in failed[name]
        assert not any(o.traceback for o in report.failed), "bad input is not a bug"
    after = everything(lk, before_columns)  # new sessions may add columns (NULL for the old)
    for table, rows in before.items():  # the session already there is untouched
        ogen = [r for r in after[table] if r[0] == REAL[OGEN][0]]
        assert ogen == [r for r in rows if r[0] == REAL[OGEN][0]], table
    assert sorted(lk.sessions()["session_id"]) == sorted([REAL[OGEN][0], REAL[JANELIA][0]])


def test_parallel_ingest_gives_the_same_lake(tmp_path, realdata, real_lake):
    lk = lake.open(tmp_path / "lake")
    report = lk.ingest([realdata / "nwb"], jobs=2)
    assert report.ok and len(report.landed) == 3
    mine, theirs = everything(lk), everything(real_lake)
    for table in TABLES:
        if table == "sessions":
            continue
        assert mine[table] == theirs[table], table


def test_session_id_override_applies_to_one_source_only(tmp_path, realdata):
    lk = lake.open(tmp_path / "lake")
    assert lk.ingest([realdata / "nwb" / JANELIA], session_id="janelia-1").ok
    assert lk.sessions()["session_id"].to_list() == ["janelia-1"]
    with pytest.raises(lake.LakeError, match="one source"):
        lk.ingest([realdata / "nwb"], session_id="x")


def test_an_all_failed_batch_adds_no_version_to_any_table(tmp_path, realdata):
    lk = lake.open(tmp_path / "lake")
    assert lk.ingest([realdata / "nwb" / OGEN]).ok
    before = versions(lk)
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "text.nwb").write_text("not HDF5")
    report = lk.ingest([folder, tmp_path / "missing.nwb"])
    assert (len(report.landed), len(report.failed)) == (0, 2)
    assert versions(lk) == before


def test_an_all_failed_batch_into_a_new_location_creates_no_lake(tmp_path):
    (tmp_path / "text.nwb").write_text("not HDF5")
    lk = lake.open(tmp_path / "lake")
    report = lk.ingest([tmp_path / "text.nwb"])
    assert (len(report.landed), len(report.failed)) == (0, 1)
    assert not (tmp_path / "lake").exists()
    with pytest.raises(lake.LakeError, match="no nplake lake at"):
        lk.sessions()


def test_malformed_spike_times_fail_without_adding_versions(tmp_path, realdata):
    lk = lake.open(tmp_path / "lake")
    assert lk.ingest([realdata / "nwb" / JANELIA]).ok
    before = versions(lk)
    bad = tmp_path / "bad.nwb"
    shutil.copyfile(realdata / "nwb" / OGEN, bad)
    with h5py.File(bad, "r+") as fh:
        times = fh["units/spike_times"][()]
        del fh["units/spike_times"]
        fh["units/spike_times"] = np.stack([times, times], axis=1)
    report = lk.ingest([bad])
    (failed,) = report.failed
    assert "units/spike_times" in failed.reason and "1-D" in failed.reason
    assert versions(lk) == before


def test_two_sources_with_one_session_id_in_a_batch_are_reported(tmp_path, realdata):
    folder = tmp_path / "copies"
    folder.mkdir()
    first, second = folder / "a.nwb", folder / "b.nwb"
    shutil.copy(realdata / "nwb" / JANELIA, first)
    shutil.copy(realdata / "nwb" / JANELIA, second)
    lk = lake.open(tmp_path / "lake")
    sid = REAL[JANELIA][0]
    first_run = lk.ingest([folder])  # in order: a.nwb claims the session id, b.nwb fails
    assert [(Path(o.source).name, o.status) for o in first_run.outcomes] == [
        ("a.nwb", "landed"),
        ("b.nwb", "failed"),
    ]
    assert not first_run.landed[0].replaced and not first_run.ok
    assert f"session id {sid!r} also comes from {first} in this batch" in first_run.failed[0].reason
    before = versions(lk)
    again = lk.ingest([folder])  # a no-op: the copy no longer replaces the original each time
    assert [o.status for o in again.outcomes] == ["unchanged", "failed"]
    assert versions(lk) == before
    parallel = lk.ingest([folder], jobs=2)  # whichever claims first wins; the other fails
    (winner,) = parallel.landed + parallel.unchanged
    (loser,) = parallel.failed
    assert {Path(winner.source).name, Path(loser.source).name} == {"a.nwb", "b.nwb"}
    assert f"also comes from {winner.source} in this batch" in loser.reason
    assert lk.sessions()["source_uri"].to_list() == [str(Path(winner.source).resolve())]


def test_searching_a_folder_skips_hidden_files(tmp_path, realdata):
    # an export killed mid-write leaves .<name>.<host>.<pid>.<token>.partial.nwb behind
    folder = tmp_path / "shared"
    folder.mkdir()
    shutil.copy(realdata / "nwb" / OGEN, folder / OGEN)
    (folder / ".s.host.1.0123abcd.partial.nwb").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    sources, problems = discover([folder])
    assert ([s.path.name for s in sources], problems) == ([OGEN], [])
    hidden = folder / ".s.host.1.0123abcd.partial.nwb"
    assert [s.path for s in discover([hidden])[0]] == [hidden]  # named on its own: read


def test_past_versions_from_empty_to_newest(tmp_path, realdata):
    lk = lake.open(tmp_path / "lake")
    assert lk.ingest([realdata / "nwb" / JANELIA]).ok
    assert lk.at(0).sql("SELECT count(*) FROM units").item() == 0  # tables made, no session
    assert lk.at(lk.version).sql("SELECT count(*) FROM units").item() == 1
    for bad in (-1, lk.version + 1, str(lk.version + 1)):
        with pytest.raises(lake.LakeError, match=r"has versions 0 to \d+; there is no version"):
            lk.at(bad)
    with pytest.raises(lake.LakeError, match="no release 'nope'"):
        lk.at("nope")
