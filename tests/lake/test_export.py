"""NWB export: valid files, DANDI names, past versions, the CLI, and bad input failing cleanly."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pytest
from pynwb import NWBHDF5IO, validate
from typer.testing import CliRunner

import lake
from ingest import decode
from ingest.synth import generate_session, write_nwb
from lake.cli import app
from lake.commit import commit_bundle
from lake.export_nwb import ExportError, InconsistentSession, dandi_path
from schemas import InvalidSessionId, SessionBundle, UnknownSession
from tests.lake.builders import make_bundle
from tests.lake.test_s3 import s3_options  # noqa: F401 - the moto S3 server fixture

JANELIA = "anm369963_2017-02-28_2"
SYNTH = "1064644573"
REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


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
        assert set(nwbfile.events) == {"licks", "rewards"}


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


def test_unwritable_folder_is_a_clear_error(lk, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(ExportError, match=f"session {JANELIA}: cannot create folder"):
        lk.export_nwb(JANELIA, blocker / "out")


def test_too_little_free_space_is_a_clear_error(lk, tmp_path, monkeypatch):
    import lake._nwb_files as files

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
    from lake._nwb_files import estimated_size
    from lake._nwb_read import read_session

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
    from lake._nwb_files import host_label

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
import lake, lake.export_nwb as export
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


def _tampered(sid: str, table: str, change) -> SessionBundle:
    """A bundle with one table changed after validation (rows that contradict each other)."""
    good = make_bundle(sid, seed=4)
    tables = dict(good.tables)
    tables[table] = change(good.table(table))
    return SessionBundle(sid, tables, validated=True)


def _replace(table: pa.Table, column: str, values) -> pa.Table:
    return table.set_column(table.column_names.index(column), column, [values])


def _shift_counts(units: pa.Table) -> pa.Table:
    counts = units.column("spike_count").to_numpy().copy()
    counts[0] += 1
    counts[1] -= 1  # the total still matches: only streaming the spikes can tell
    return _replace(units, "spike_count", counts)


def _one_more_spike(units: pa.Table) -> pa.Table:
    counts = units.column("spike_count").to_numpy().copy()
    counts[0] += 1
    return _replace(units, "spike_count", counts)


def _rename_unit(units: pa.Table) -> pa.Table:
    ids = units.column("unit_id").to_numpy().copy()
    ids[2] = 999
    order = np.argsort(ids)
    return _replace(units, "unit_id", ids).take(pa.array(order))


def _repeat_unit(units: pa.Table) -> pa.Table:
    ids = units.column("unit_id").to_numpy().copy()
    ids[1] = ids[0]
    return _replace(units, "unit_id", ids)


def _units_backwards(spikes: pa.Table) -> pa.Table:
    """Each unit's spikes in time order, but the units in descending order."""
    ids = spikes.column("unit_id").to_numpy()
    order = np.lexsort((np.arange(len(ids)), -ids))
    return spikes.take(pa.array(order))


def _nan_time(spikes: pa.Table) -> pa.Table:
    times = spikes.column("time").to_numpy().copy()
    times[3] = np.nan
    return _replace(spikes, "time", times)


INCONSISTENT = {
    "counts": (
        "units",
        _shift_counts,
        r"spike counts disagree with units.spike_count \(unit 100: ",
    ),
    "total": ("units", _one_more_spike, r"\d+ spikes, but units.spike_count sums to \d+"),
    "unknown unit": ("units", _rename_unit, r"spikes name units that are not in units: \[102\]"),
    "repeated unit": ("units", _repeat_unit, r"units.unit_id is not unique"),
    "unsorted": ("spikes", _units_backwards, r"spikes are not sorted by unit_id"),
    "nan time": ("spikes", _nan_time, r"some spike times are NaN"),
}


@pytest.mark.parametrize("case", list(INCONSISTENT))
def test_inconsistent_session_fails_without_leaving_a_file(tmp_path, case):
    table, change, message = INCONSISTENT[case]
    lk = lake.open(tmp_path / "lake")
    lk._store.ensure_tables()
    bundle = _tampered("bad", table, change)
    commit_bundle(lk._store, bundle, source_hash="x", pipeline_version="t")
    out = tmp_path / "out"
    with pytest.raises(InconsistentSession, match=f"session bad: {message}"):
        lk.export_nwb("bad", out)
    assert [p for p in out.rglob("*") if p.is_file()] == []
    assert not [t for t in threading.enumerate() if t.name.startswith("nplake-")]


def test_channels_naming_unknown_probes_are_inconsistent(tmp_path):
    good = make_bundle("bad2", seed=1)
    tables = dict(good.tables)
    tables["probes"] = pa.table({"probe": ["probeZ"]})
    lk = lake.open(tmp_path / "lake")
    lk._store.ensure_tables()
    bundle = SessionBundle("bad2", tables, validated=False).validate()
    commit_bundle(lk._store, bundle, source_hash="x", pipeline_version="t")
    with pytest.raises(InconsistentSession, match="channels name probes that are not in probes"):
        lk.export_nwb("bad2", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.nwb"))


def test_sessions_sharing_a_file_name_never_overwrite_each_other(tmp_path):
    from lake._export_batch import export_sessions

    lk = lake.open(tmp_path / "lake")
    lk._store.ensure_tables()
    for sid in ("a_b", "a.b"):  # both are ses-a-b for DANDI
        commit_bundle(lk._store, make_bundle(sid), source_hash=sid, pipeline_version="t")
    report = export_sessions(lk, ["a_b", "a.b"], tmp_path / "out", overwrite=True)
    assert [o.ok for o in report.outcomes] == [True, False]
    assert "also the file name of session a_b" in report.outcomes[1].reason
    assert "1 exported" in str(report) and "1 failed" in str(report)


def test_many_sessions_into_one_file_name_export_only_the_first(tmp_path):
    from lake._export_batch import export_sessions

    lk = lake.open(tmp_path / "lake")
    lk._store.ensure_tables()
    for sid in ("s1", "s2"):
        commit_bundle(lk._store, make_bundle(sid), source_hash=sid, pipeline_version="t")
    target = tmp_path / "out" / "one.nwb"
    report = export_sessions(lk, ["s1", "s2"], target, overwrite=True)
    assert [o.ok for o in report.outcomes] == [True, False]
    assert "one.nwb is also the file name of session s1" in report.outcomes[1].reason
    assert decode(target).session_id == "s1"


def test_an_unexpected_error_fails_that_session_only(tmp_path, monkeypatch):
    from lake import _export_batch

    lk = lake.open(tmp_path / "lake")
    lk._store.ensure_tables()
    for sid in ("s1", "s2"):
        commit_bundle(lk._store, make_bundle(sid), source_hash=sid, pipeline_version="t")
    real = _export_batch.export_nwb

    def flaky(lk, sid, folder, **kwargs):
        if sid == "s1":
            raise RuntimeError("disk gremlin")
        return real(lk, sid, folder, **kwargs)

    monkeypatch.setattr(_export_batch, "export_nwb", flaky)
    report = _export_batch.export_sessions(lk, ["s1", "s2"], tmp_path / "out")
    assert [o.ok for o in report.outcomes] == [False, True]
    assert report.outcomes[0].reason == "unexpected RuntimeError: disk gremlin"
    assert len(list((tmp_path / "out").rglob("*.nwb"))) == 1


# ------------------------------------------------------------------------------------- CLI
def test_cli_exports_many_sessions_with_a_summary(lk, tmp_path):
    args = ["export", JANELIA, SYNTH, "--out", str(tmp_path), "--lake", lk.uri]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 exported" in result.output and "0 failed" in result.output
    assert (tmp_path / "sub-anm369963").is_dir()
    assert len(list(tmp_path.rglob("*.nwb"))) == 2
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "exists" in again.output and "0 exported" in again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_cli_reports_failures_and_exits_non_zero(lk, tmp_path):
    result = runner.invoke(
        app, ["export", JANELIA, "anm369963_2017-02-28_9", "--out", str(tmp_path), "--lake", lk.uri]
    )
    assert result.exit_code == 1
    assert "1 exported" in result.output and "1 failed" in result.output
    assert "did you mean anm369963_2017-02-28_2" in result.output


def test_cli_exports_a_past_version(versioned, tmp_path):
    lk, first = versioned
    out = tmp_path / "out"
    args = ["export", SYNTH, "--out", str(out), "--lake", lk.uri]
    result = runner.invoke(app, [*args, "--version", str(first)])
    assert result.exit_code == 0, result.output
    (path,) = out.rglob("*.nwb")
    with h5py.File(path) as fh:
        assert len(fh["units/spike_times"]) == lk.at(first).sessions()["n_spikes"].item()
    missing = runner.invoke(app, [*args, "--version", "99"])
    assert missing.exit_code == 2
    assert "there is no version 99" in " ".join(missing.output.split())


# -------------------------------------------------------------------------------------- S3
def test_export_from_a_lake_on_s3(s3_options, tmp_path):  # noqa: F811 - the fixture
    from lake.storage import Store
    from tests.lake.export_helpers import differences

    uri = "s3://nplake-test/export-lake"
    store = Store.at(uri, s3_options)
    store.ensure_tables()
    commit_bundle(store, make_bundle("s3-session", seed=2), source_hash="h", pipeline_version="t")
    remote = lake.open(uri, storage_options=s3_options)
    path = remote.export_nwb("s3-session", tmp_path)
    local = lake.open(tmp_path / "lake")
    assert local.ingest(path).ok
    assert differences(remote, local, "s3-session") == []


def test_the_progress_bar_reports_each_session(tmp_path, capsys):
    from lake._export_batch import export_sessions

    lk = lake.open(tmp_path / "lake")
    lk._store.ensure_tables()
    for sid in ("s1", "s2"):
        commit_bundle(lk._store, make_bundle(sid), source_hash=sid, pipeline_version="t")
    report = export_sessions(lk, ["s1", "s2", "zz"], tmp_path / "out", progress=True)
    err = capsys.readouterr().err
    assert "export" in err and "3/3" in err
    assert err.count("exported ") == 2 and "failed    zz: no session 'zz'" in err
    assert [o.ok for o in report.outcomes] == [True, True, False]
