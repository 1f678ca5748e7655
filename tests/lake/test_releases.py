"""Releases: named versions, time travel by date, diffs, and vacuum keeping what releases need."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lake
from ingest.synth import generate_session, nwb_file_name, write_nwb
from lake.cli import app

QUESTIONS = {
    "units": "SELECT session_id, unit_id, spike_count FROM units ORDER BY 1, 2",
    "spikes": "SELECT session_id, count(*) AS n, sum(time) AS t FROM spikes GROUP BY 1 ORDER BY 1",
    "trials": "SELECT session_id, trial_index, start_time FROM trials ORDER BY 1, 2",
    "sessions": "SELECT session_id, ingest_id, source_hash FROM sessions ORDER BY 1",
}
IDS = ("1100000001", "1100000002", "1100000003")


def _write(folder: Path, sid: str, seed: int) -> Path:
    session = generate_session(sid, seed=seed, size="tiny")
    path = folder / nwb_file_name(session)
    write_nwb(session, path)
    return path


def _answers(lk: lake.Lake) -> dict:
    return {name: lk.sql(query) for name, query in QUESTIONS.items()}


def _same(a: dict, b: dict) -> bool:
    return all(a[k].equals(b[k]) for k in QUESTIONS)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def where(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "lake"), None
    s3 = request.getfixturevalue("s3")
    return s3.uri("releases"), s3.options


def test_release_diff_and_time_travel(where, tmp_path):
    uri, options = where
    sources = tmp_path / "sources"
    sources.mkdir()
    paths = {sid: _write(sources, sid, seed=i) for i, sid in enumerate(IDS)}
    lk = lake.open(uri, storage_options=options)
    assert lk.ingest(list(paths.values())).ok
    first = lk.release("2026.1", message="the first three sessions")
    answers_1 = _answers(lk)
    time.sleep(0.05)
    between = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.05)
    # a pipeline fix changes one source: re-ingest it (fewer units this time)
    paths[IDS[1]].unlink()
    changed = _write(sources, IDS[1], seed=99)
    report = lk.ingest([paths[IDS[0]], changed, paths[IDS[2]]])
    assert [o.status for o in report.outcomes] == ["unchanged", "landed", "unchanged"]
    second = lk.release("2026.2")
    answers_2 = _answers(lk)
    assert second.version > first.version

    diff = lk.diff("2026.1", "2026.2")
    assert diff.sessions["session_id"].to_list() == [IDS[1]]
    assert diff.sessions["change"].to_list() == ["replaced"]
    old_units = answers_1["units"].filter(answers_1["units"]["session_id"] == IDS[1]).height
    new_units = answers_2["units"].filter(answers_2["units"]["session_id"] == IDS[1]).height
    units = diff.rows.filter(diff.rows["table"] == "units").row(0, named=True)
    assert (units["rows_before"], units["rows_after"]) == (old_units, new_units)
    assert (units["removed"], units["added"]) == (old_units, new_units)
    spikes = diff.rows.filter(diff.rows["table"] == "spikes").row(0, named=True)
    n = answers_1["spikes"].filter(answers_1["spikes"]["session_id"] == IDS[1])["n"].item()
    assert spikes["rows_before"] == n
    assert lk.diff("2026.1", "2026.1").sessions.is_empty()

    # both releases answer as they did when they were made, also after a zero-retention vacuum
    for _ in range(2):
        assert _same(_answers(lk.at("2026.1")), answers_1)
        assert _same(_answers(lk.at("2026.2")), answers_2)
        lk.maintenance.vacuum(retention_hours=0)
    assert _same(_answers(lk.at(between)), answers_1)  # a date between the two: the first
    assert lk.at(between.isoformat()).version == first.version
    with pytest.raises(lake.LakeError, match="was vacuumed"):
        lk.at(first.version - 1)  # not a release: its files may be gone

    # names never move silently; bad names, unknown releases, dates before the lake: one line
    with pytest.raises(lake.LakeError, match=r"exists .*release delete 2026\.1"):
        lk.release("2026.1")
    for bad in ("", "../x", "a b", "12345", "x" * 65):
        with pytest.raises(lake.NplakeError, match="cannot name a release"):
            lk.release(bad)
    with pytest.raises(lake.LakeError, match=r"no release '2027\.1'.*2026\.1, 2026\.2"):
        lk.at("2027.1")
    with pytest.raises(lake.LakeError, match="before the lake existed"):
        lk.at("1999-01-01T00:00:00+00:00")
    assert lk.releases()["name"].to_list() == ["2026.1", "2026.2"]
    lk.delete_release("2026.1")
    lk.release("2026.1", message="moved on purpose")
    moved = lk.releases().filter(lk.releases()["name"] == "2026.1")
    assert moved["version"].item() == lk.version  # the newest: vacuum commits are versions too


def test_cli_release_diff_and_at(tmp_path):
    runner = CliRunner()
    sources = tmp_path / "sources"
    sources.mkdir()
    paths = [_write(sources, sid, seed=i) for i, sid in enumerate(IDS[:2])]
    where = ["--lake", str(tmp_path / "lake")]
    assert runner.invoke(app, ["ingest", str(paths[0]), *where]).exit_code == 0
    result = runner.invoke(app, ["release", "create", "v1", "-m", "one session", *where])
    assert result.exit_code == 0, result.output
    assert "release v1 = version 1 (1 sessions)" in result.output
    assert runner.invoke(app, ["ingest", str(paths[1]), *where]).exit_code == 0
    result = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM sessions", "--at", "v1", *where])
    assert result.exit_code == 0 and " 1 " in result.stdout
    result = runner.invoke(app, ["diff", "v1", "2", "--format", "json", *where])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [(s["session_id"], s["change"]) for s in body["sessions"]] == [(IDS[1], "added")]
    result = runner.invoke(app, ["release", "list", *where])
    assert "one session" in result.stdout
    result = runner.invoke(app, ["sessions", "--at", "nope", *where])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "no release 'nope'" in result.output
    result = runner.invoke(app, ["release", "create", "v1", *where])
    assert result.exit_code == 2 and "release delete v1" in result.output
    result = runner.invoke(app, ["release", "delete", "v1", *where])
    assert result.exit_code == 0 and "deleted release v1 (was version 1)" in result.output
