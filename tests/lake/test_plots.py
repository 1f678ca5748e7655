"""lake.plots and `nplake plot`: PNG files, and matplotlib only imported when plotting."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lake import plots
from lake.cli import app
from tests.queries.lakes import shared_lake

PNG = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG and path.stat().st_size > 2000


def test_raster_psth_area_psth_and_units_per_area_write_pngs(shared, tmp_path):
    lk = shared.lake
    sid = shared.synthetic[0]
    units = lk.sql(f"SELECT unit_id FROM units WHERE session_id = '{sid}' ORDER BY 1 LIMIT 3")
    out = plots.raster_psth(
        lk, sid, units["unit_id"].to_list(), "trials.change_time", out=tmp_path / "r.png"
    )
    assert _is_png(out)
    assert _is_png(plots.area_psth(lk, "licks", out=tmp_path / "a.png", preset="visual_behavior"))
    assert _is_png(plots.units_per_area(lk, out=tmp_path / "u.png"))
    with pytest.raises(ValueError, match="1 to"):
        plots.raster_psth(lk, sid, [], "licks", out=tmp_path / "x.png")


def test_cli_plot_writes_pngs_and_refuses_bad_input(shared, tmp_path):
    lake_dir = shared.lake.uri
    sid = shared.synthetic[1]
    unit = shared.lake.sql(f"SELECT min(unit_id) FROM units WHERE session_id = '{sid}'").item()
    result = runner.invoke(
        app,
        [
            "plot",
            "raster",
            "--lake",
            lake_dir,
            "--session",
            sid,
            "--units",
            str(unit),
            "--event",
            "licks",
            "--window",
            "-0.25",
            "0.5",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert _is_png(tmp_path / f"raster_{sid}_licks.png")
    result = runner.invoke(
        app,
        [
            "plot",
            "areas",
            "--lake",
            lake_dir,
            "--out",
            str(tmp_path),
            "--preset",
            "allen_visual_coding",
        ],
    )
    assert result.exit_code == 0, result.output
    assert _is_png(tmp_path / "units_per_area_allen_visual_coding.png")
    result = runner.invoke(app, ["plot", "raster", "--lake", lake_dir, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--session" in result.output
    result = runner.invoke(
        app, ["plot", "psth", "--lake", lake_dir, "--event", "spikes", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2


def test_import_lake_does_not_import_matplotlib_or_numba():
    code = "import sys, lake; print('matplotlib' in sys.modules, 'numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
