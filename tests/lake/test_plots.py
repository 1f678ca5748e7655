"""lake.plots and `nplake plot`: what the figures draw (checked against numpy over the files and
against the SQL macros), the PNG files the CLI writes, and matplotlib only imported when plotting.
"""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from lake import plots
from lake.cli import app
from schemas.errors import InvalidSessionId, UnknownSession
from tests.queries.lakes import bins, nwb_events, nwb_spikes, ref_counts, shared_lake

PNG = b"\x89PNG\r\n\x1a\n"
DPI = 120  # lake.plots writes PNGs at this resolution
runner = CliRunner()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


def _png_size(path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG header, which must be a PNG's."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


def _steps(ax):
    from matplotlib.patches import StepPatch

    return [p for p in ax.patches if isinstance(p, StepPatch)]


def test_raster_psth_draws_each_spike_around_each_event_and_the_rates(shared):
    lk = shared.lake
    sid = shared.synthetic[0]
    path = shared.files[sid]
    spikes = nwb_spikes(path)
    index, times = nwb_events(path, "trials.change_time")
    times = times[np.argsort(index)]  # raster rows are events in event_index order
    ids = sorted(u for u in spikes if len(spikes[u]))[:3]
    fig = plots.raster_psth_figure(
        lk, sid, ids, "trials.change_time", window=(-0.5, 1.0), bin_width=0.05
    )
    assert len(fig.axes) == 2 * len(ids)  # a raster and a PSTH per unit
    assert sid in fig.get_suptitle()
    for unit, raster, psth in zip(ids, fig.axes[0::2], fig.axes[1::2], strict=True):
        expected = ref_counts(spikes[unit], times, np.array([-0.5, 1.0]))[:, 0]
        (ticks,) = raster.collections
        x, y = ticks.get_offsets().T
        assert len(x) == expected.sum() > 0  # one tick per spike in a window
        assert np.bincount(y.astype(int), minlength=len(times)).tolist() == expected.tolist()
        assert ((x >= -0.5) & (x < 1.0)).all()
        assert raster.get_title() == f"unit {unit}"
        (step,) = _steps(psth)
        counts = ref_counts(spikes[unit], times, bins(-0.5, 0.05, 30)).sum(axis=0)
        assert np.array_equal(step.get_data().values, counts / (len(times) * 0.05))
        assert np.allclose(step.get_data().edges, bins(-0.5, 0.05, 30))
        assert psth.get_xlabel() == "s from trials.change_time"
    assert fig.axes[0].get_ylabel() == "trials.change_time (events)"
    assert fig.axes[1].get_ylabel() == "rate (Hz)"


def test_raster_psth_refuses_bad_sessions_and_units(shared, tmp_path):
    lk = shared.lake
    sid = shared.synthetic[0]
    with pytest.raises(ValueError, match="1 to"):
        plots.raster_psth(lk, sid, [], "licks", out=tmp_path / "x.png")
    with pytest.raises(ValueError, match=f"session {sid} has no unit 5"):
        plots.raster_psth(lk, sid, [5], "licks", out=tmp_path / "x.png")
    with pytest.raises(UnknownSession, match="not_here"):
        plots.raster_psth(lk, "not_here", [1], "licks", out=tmp_path / "x.png")
    with pytest.raises(InvalidSessionId):
        plots.raster_psth(lk, "../x", [1], "licks", out=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_area_psth_draws_one_line_per_area_with_the_sql_rates(shared):
    lk = shared.lake
    fig = plots.area_psth_figure(lk, "licks", preset="visual_behavior", bins=(-0.5, 0.05, 20))
    (ax,) = fig.axes
    sql = lk.sql(
        "WITH vb_plot AS (SELECT * FROM units_quality WHERE visual_behavior) "
        "SELECT * FROM psth_by_area('vb_plot', 'licks', -0.5, 0.05, 20)"
    )
    areas = (
        sql.group_by("structure_acronym")
        .agg(pl.col("n_units").max())
        .sort("n_units", "structure_acronym", descending=[True, False])
        .drop_nulls()
        .head(8)
    )
    steps = _steps(ax)
    assert len(steps) == areas.height > 0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"{a} ({n} units)" for a, n in areas.rows()]
    for step, area in zip(steps, areas["structure_acronym"], strict=True):
        rows = sql.filter(pl.col("structure_acronym") == area).sort("bin")
        assert np.allclose(step.get_data().values, rows["rate_hz"].to_numpy(), rtol=1e-12)
    assert ax.get_xlabel() == "s from licks" and ax.get_ylabel() == "mean rate (Hz)"
    assert "visual_behavior" in ax.get_title()


def test_units_per_area_cells_hold_the_unit_counts(shared):
    lk = shared.lake
    fig = plots.units_per_area_figure(lk, preset="allen_visual_coding")
    ax = fig.axes[0]
    grid = np.asarray(ax.images[0].get_array())
    counts = lk.sql(
        "SELECT coalesce(structure_acronym, '(none)') AS area, session_id, count(*) AS n "
        "FROM units_with_preset('allen_visual_coding') GROUP BY ALL"
    )
    sessions = sorted(lk.sessions()["session_id"])
    totals = counts.group_by("area").agg(pl.col("n").sum())
    areas = totals.sort("n", "area", descending=[True, False])["area"].to_list()
    expected = np.zeros((len(areas), len(sessions)), dtype=np.int64)
    for area, session, n in counts.rows():
        expected[areas.index(area), sessions.index(session)] = n
    assert np.array_equal(grid, expected) and grid.sum() > 0
    cells = [t for t in ax.texts if t.get_text()]
    assert sorted(int(t.get_text()) for t in cells) == sorted(expected[expected > 0].tolist())
    assert [t.get_text() for t in ax.get_xticklabels()] == [plots._short(s) for s in sessions]
    assert [t.get_text() for t in ax.get_yticklabels()] == [plots._short(a) for a in areas]


def test_cli_plot_psth_writes_the_area_psth_png(shared, tmp_path):
    args = ["plot", "psth", "--lake", shared.lake.uri, "--event", "licks"]
    args += ["--preset", "visual_behavior", "--window", "-0.25", "0.5", "--bin-width", "0.05"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "psth_licks_visual_behavior.png"
    assert f"wrote {path}" in result.output
    assert _png_size(path) == (7 * DPI, 4 * DPI)
    from matplotlib.image import imread

    pixels = imread(path)[..., :3]
    figure = plots.area_psth_figure(
        shared.lake, "licks", preset="visual_behavior", bins=(-0.25, 0.05, 15)
    )
    n_lines = len(_steps(figure.axes[0]))
    assert 2 <= n_lines < len(TAB10)
    # the lines take the colour cycle in order: exactly the first n_lines colours are drawn
    drawn = [_pixels_of(pixels, color) >= 5 for color in TAB10]
    assert drawn == [True] * n_lines + [False] * (len(TAB10) - n_lines)


TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def _pixels_of(pixels: np.ndarray, color: str) -> int:
    """Pixels within 0.06 (of 1) of `color` in every channel: antialiased lines shift a bit."""
    from matplotlib.colors import to_rgb

    return int((np.abs(pixels - np.array(to_rgb(color))).max(axis=-1) < 0.06).sum())


def test_cli_plot_raster_and_areas_write_pngs_and_refuse_bad_input(shared, tmp_path):
    lake_dir = shared.lake.uri
    sid = shared.synthetic[1]
    unit = shared.lake.sql(f"SELECT min(unit_id) FROM units WHERE session_id = '{sid}'").item()
    args = ["plot", "raster", "--lake", lake_dir, "--session", sid, "--units", str(unit)]
    args += ["--event", "licks", "--window", "-0.25", "0.5", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert _png_size(tmp_path / f"raster_{sid}_licks.png") == (round(2.6 * DPI), 5 * DPI)
    areas = ["plot", "areas", "--lake", lake_dir, "--preset", "allen_visual_coding"]
    result = runner.invoke(app, [*areas, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert _png_size(tmp_path / "units_per_area_allen_visual_coding.png")[0] >= 5 * DPI
    result = runner.invoke(app, ["plot", "raster", "--lake", lake_dir, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--session" in result.output
    result = runner.invoke(
        app, ["plot", "psth", "--lake", lake_dir, "--event", "spikes", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    for event in ("intervals.no_such_table", "trials.no_such_time"):
        args = ["plot", "psth", "--lake", lake_dir, "--event", event, "--out", str(tmp_path)]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "the lake has no such" in result.output, event
    none_pass = ["plot", "areas", "--lake", lake_dir, "--preset", "ibl", "--out", str(tmp_path)]
    result = runner.invoke(app, none_pass)
    assert result.exit_code == 2 and "none pass preset 'ibl'" in result.output
    unknown = ["plot", "raster", "--lake", lake_dir, "--session", "nope", "--units", "1"]
    result = runner.invoke(app, [*unknown, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no session 'nope'" in result.output


def test_import_lake_does_not_import_matplotlib_or_numba():
    code = "import sys, lake; print('matplotlib' in sys.modules, 'numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_window_bins_cover_the_window_and_refuse_unusable_ones():
    assert plots.window_bins((-0.5, 1.0), 0.02) == (-0.5, 0.02, 75)
    assert plots.window_bins((-0.5, 0.5), 0.3) == (-0.5, 0.3, 4)  # the last bin ends at 0.7
    assert plots.window_bins((0.0, 0.1), 1.0) == (0.0, 1.0, 1)
    for window, width in (((0.5, 0.1), 0.02), ((0.0, 0.0), 0.02), ((0.0, float("nan")), 0.1)):
        with pytest.raises(ValueError, match="START < STOP"):
            plots.window_bins(window, width)
    for width in (0.0, -0.01, float("inf")):
        with pytest.raises(ValueError, match="bin width must be a positive"):
            plots.window_bins((0.0, 1.0), width)


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        ("psth", ["--window", "0.5", "0.1"], "START < STOP"),
        ("psth", ["--bin-width", "0"], "bin width must be a positive"),
        ("raster", ["--bin-width", "0"], "bin width must be a positive"),
        ("raster", ["--window", "1.0", "-1.0"], "START < STOP"),
    ],
)
def test_cli_plot_refuses_unusable_windows_and_bins(shared, tmp_path, kind, extra, message):
    sid = shared.synthetic[0]
    unit = shared.lake.sql(f"SELECT min(unit_id) FROM units WHERE session_id = '{sid}'").item()
    args = ["plot", kind, "--lake", shared.lake.uri, "--event", "licks", "--out", str(tmp_path)]
    if kind == "raster":
        args += ["--session", sid, "--units", str(unit)]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("*.png"))
