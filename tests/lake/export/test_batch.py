"""Exporting many sessions (`export_sessions`, `nplake export`): reports, the CLI, progress."""

from __future__ import annotations

import h5py
from typer.testing import CliRunner

import lake
from ingest import decode
from lake.cli import app
from lake.storage import commit_bundle
from tests.lake.builders import make_bundle
from tests.lake.export.helpers import JANELIA, SYNTH

runner = CliRunner()


def test_sessions_sharing_a_file_name_never_overwrite_each_other(tmp_path):
    from lake.export import export_sessions

    lk = lake.open(tmp_path / "lake")
    for sid in ("a_b", "a.b"):  # both are ses-a-b for DANDI
        commit_bundle(lk.store, make_bundle(sid), source_hash=sid, pipeline_version="t")
    report = export_sessions(lk, ["a_b", "a.b"], tmp_path / "out", overwrite=True)
    assert [o.ok for o in report.outcomes] == [True, False]
    assert "also the file name of session a_b" in report.outcomes[1].reason
    assert "1 exported" in str(report) and "1 failed" in str(report)


def test_many_sessions_into_one_file_name_export_only_the_first(tmp_path):
    from lake.export import export_sessions

    lk = lake.open(tmp_path / "lake")
    for sid in ("s1", "s2"):
        commit_bundle(lk.store, make_bundle(sid), source_hash=sid, pipeline_version="t")
    target = tmp_path / "out" / "one.nwb"
    report = export_sessions(lk, ["s1", "s2"], target, overwrite=True)
    assert [o.ok for o in report.outcomes] == [True, False]
    assert "one.nwb is also the file name of session s1" in report.outcomes[1].reason
    assert decode(target).session_id == "s1"


def test_an_unexpected_error_fails_that_session_only(tmp_path, monkeypatch):
    from lake.export import batch

    lk = lake.open(tmp_path / "lake")
    for sid in ("s1", "s2"):
        commit_bundle(lk.store, make_bundle(sid), source_hash=sid, pipeline_version="t")
    real = batch.export_nwb

    def flaky(lk, sid, folder, **kwargs):
        if sid == "s1":
            raise RuntimeError("disk gremlin")
        return real(lk, sid, folder, **kwargs)

    monkeypatch.setattr(batch, "export_nwb", flaky)
    report = batch.export_sessions(lk, ["s1", "s2"], tmp_path / "out")
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


def test_the_progress_bar_reports_each_session(tmp_path, capsys):
    from lake.export import export_sessions

    lk = lake.open(tmp_path / "lake")
    for sid in ("s1", "s2"):
        commit_bundle(lk.store, make_bundle(sid), source_hash=sid, pipeline_version="t")
    report = export_sessions(lk, ["s1", "s2", "zz"], tmp_path / "out", progress=True)
    err = capsys.readouterr().err
    assert "export" in err and "3/3" in err
    assert err.count("exported ") == 2 and "failed    zz: no session 'zz'" in err
    assert [o.ok for o in report.outcomes] == [True, True, False]
