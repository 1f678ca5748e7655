"""The nplake command: exit codes, output formats, lake location, errors."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
from typer.testing import CliRunner

from lake.cli import app

JANELIA = "sub-anm369963_ses-20170228.nwb"
runner = CliRunner()


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory, realdata):
    folder = tmp_path_factory.mktemp("cli") / "lake"
    result = runner.invoke(app, ["ingest", str(realdata / "nwb"), "--lake", str(folder)])
    assert result.exit_code == 0, result.output
    assert "3 landed, 0 unchanged, 0 failed" in result.output
    return folder


def test_reingest_reports_unchanged_and_succeeds(lake_dir, realdata):
    result = runner.invoke(app, ["ingest", str(realdata / "nwb"), "--lake", str(lake_dir)])
    assert result.exit_code == 0
    assert "0 landed, 3 unchanged, 0 failed" in result.output


def test_a_failed_session_makes_the_exit_code_non_zero(tmp_path, realdata):
    shutil.copy(realdata / "nwb" / JANELIA, tmp_path / JANELIA)
    (tmp_path / "broken.nwb").write_text("not hdf5")
    result = runner.invoke(app, ["ingest", str(tmp_path), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 1
    assert "1 landed, 0 unchanged, 1 failed" in result.output
    assert "broken.nwb: not an HDF5 file" in result.output


def test_sql_json_is_an_array_of_objects(lake_dir):
    query = "SELECT session_id, n_units FROM sessions ORDER BY 1"
    result = runner.invoke(app, ["sql", query, "--lake", str(lake_dir), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"session_id": "TWH103_CBID4", "n_units": 35},
        {"session_id": "anm00239123_2017-06-27_09-35-49", "n_units": 4},
        {"session_id": "anm369963_2017-02-28_2", "n_units": 1},
    ]


def test_sql_csv_and_parquet(lake_dir, tmp_path):
    query = "SELECT session_id, n_spikes FROM sessions ORDER BY n_spikes"
    result = runner.invoke(app, ["sql", query, "--lake", str(lake_dir), "--format", "csv"])
    assert result.stdout == (
        "session_id,n_spikes\n"
        "anm369963_2017-02-28_2,1679\n"
        "anm00239123_2017-06-27_09-35-49,34057\n"
        "TWH103_CBID4,214278\n"
    )
    no_out = runner.invoke(app, ["sql", query, "--lake", str(lake_dir), "--format", "parquet"])
    assert no_out.exit_code == 2
    assert "needs --out" in no_out.output
    target = tmp_path / "out.parquet"
    args = ["sql", query, "--lake", str(lake_dir), "--format", "parquet", "--out", str(target)]
    assert runner.invoke(app, args).exit_code == 0
    assert pl.read_parquet(target)["n_spikes"].to_list() == [1679, 34057, 214278]


def test_lake_location_from_the_environment(lake_dir):
    result = runner.invoke(
        app,
        ["sql", "SELECT count(*) AS n FROM units", "--format", "csv"],
        env={"NPLAKE_LAKE": str(lake_dir)},
    )
    assert result.stdout == "n\n40\n"


def test_lake_option_wins_over_the_environment(lake_dir, tmp_path):
    result = runner.invoke(
        app,
        ["sql", "SELECT count(*) AS n FROM units", "--format", "csv", "--lake", str(lake_dir)],
        env={"NPLAKE_LAKE": str(tmp_path / "elsewhere")},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "n\n40\n"


def test_sql_results_a_format_cannot_hold_are_refused_by_column(lake_dir, tmp_path):
    query = "SELECT [1, 2] AS pair, 'ab'::BLOB AS raw, 'nan'::DOUBLE AS x"
    where = ["--lake", str(lake_dir)]
    csv = runner.invoke(app, ["sql", query, *where, "--format", "csv"])
    assert csv.exit_code == 2
    assert "--format csv cannot hold lists, structs or bytes: column(s) pair, raw" in csv.output
    as_json = runner.invoke(app, ["sql", query, *where, "--format", "json"])
    assert as_json.exit_code == 2
    assert "--format json cannot hold bytes: column(s) raw;" in as_json.output
    fine = runner.invoke(
        app, ["sql", "SELECT [1, 2] AS pair, 'nan'::DOUBLE AS x", *where, "-f", "json"]
    )
    assert json.loads(fine.stdout) == [{"pair": [1, 2], "x": None}]  # JSON has no NaN
    target = tmp_path / "all.parquet"
    assert (
        runner.invoke(app, ["sql", query, *where, "-f", "parquet", "-o", str(target)]).exit_code
        == 0
    )
    assert pl.read_parquet(target).row(0)[:2] == ([1, 2], b"ab")


def test_describe_tables_sessions(lake_dir):
    described = runner.invoke(app, ["describe", "units", "--lake", str(lake_dir)])
    assert described.exit_code == 0
    assert "spike_count" in described.stdout and "cell_type" in described.stdout
    tables = runner.invoke(app, ["tables", "--lake", str(lake_dir)])
    assert "spikes" in tables.stdout and "250014" in tables.stdout
    sessions = runner.invoke(app, ["sessions", "--lake", str(lake_dir)])
    assert "TWH103_CBID4" in sessions.stdout


def test_errors_are_one_line_with_exit_code_2(lake_dir, tmp_path):
    unknown = runner.invoke(app, ["describe", "neurons", "--lake", str(lake_dir)])
    assert unknown.exit_code == 2
    assert "unknown table 'neurons'" in unknown.output
    bad_query = runner.invoke(app, ["sql", "SELECT nope FROM units", "--lake", str(lake_dir)])
    assert bad_query.exit_code == 2
    assert "query failed" in bad_query.output
    empty = runner.invoke(app, ["sql", "SELECT 1", "--lake", str(tmp_path / "empty")])
    assert empty.exit_code == 2
    assert "no nplake lake at" in empty.output


def test_failures_print_one_unwrapped_line_naming_the_file_once(tmp_path):
    folder = tmp_path / ("a-folder-with-a-long-name-" * 4)
    folder.mkdir()
    bad = folder / "sess[b]1.nwb"  # rich markup in a file name is shown as written
    bad.write_text("not hdf5")
    result = runner.invoke(app, ["ingest", str(bad), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "not an HDF5 file" in line]
    assert len(lines) == 2  # the progress line and the summary line, each whole
    for line in lines:
        assert line.count(str(bad)) == 1, line


def test_markup_in_user_text_is_not_interpreted(lake_dir):
    result = runner.invoke(app, ["describe", "units[/x]", "--lake", str(lake_dir)])
    assert result.exit_code == 2
    assert "unknown table 'units[/x]'" in result.output


def test_default_lake_is_in_the_data_home(tmp_path, monkeypatch):
    from lake.location import default_demo_uri, default_lake_uri

    monkeypatch.delenv("NPLAKE_LAKE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_lake_uri() == str(tmp_path / "data" / "nplake" / "lake")
    assert default_demo_uri() == str(tmp_path / "data" / "nplake" / "demo-lake")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_lake_uri() == str(tmp_path / "home" / ".local" / "share" / "nplake" / "lake")
    monkeypatch.setenv("NPLAKE_LAKE", str(tmp_path / "mine"))
    assert default_lake_uri() == str(tmp_path / "mine")


def test_demo_ingests_synthetic_sessions_and_answers_three_questions(tmp_path):
    from lake.demo import QUESTIONS

    target = tmp_path / "demo-lake"
    result = runner.invoke(app, ["demo", "--lake", str(target), "--sessions", "2"])
    assert result.exit_code == 0, result.output
    assert "2 landed, 0 unchanged, 0 failed" in result.output
    for title, _ in QUESTIONS:
        assert title in result.output
    import lake

    lk = lake.open(target)
    assert lk.sessions().height == 2
    per_genotype = lk.sql(QUESTIONS[1][1])
    assert per_genotype["units"].sum() == lk.sql("SELECT count(*) FROM units").item()
    assert per_genotype["spikes"].sum() == lk.sql("SELECT count(*) FROM spikes").item()


def test_import_lake_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, lake; lk = lake.Lake; "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pynwb', 'hdmf', 'matplotlib', 'dask', 'pandas', 'numba'}); print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
