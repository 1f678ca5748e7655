"""lake.analysis: the same numbers as the SQL macros, and as numpy over the source NWB files."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from lake.presets import preset_expr
from schemas.errors import InvalidName, UnknownSession
from tests.queries.lakes import bins, nwb_events, nwb_spikes, ref_counts, shared_lake


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


def _sorted(frame: pl.DataFrame, *key: str) -> pl.DataFrame:
    return frame.sort(list(key))


@pytest.mark.parametrize("event", ["trials.change_time", "licks", "intervals.encoding_table"])
def test_window_counts_equal_the_sql_macro(shared, event):
    lk = shared.lake
    py = lk.analysis.aligned_counts(None, event, window=(-0.25, 0.5))
    sql = lk.sql(f"SELECT * FROM aligned_counts('units', '{event}', -0.25, 0.5)")
    key = ("session_id", "unit_id", "event_index")
    assert py.height > 0
    assert _sorted(py, *key).equals(_sorted(sql, *key))


def test_binned_counts_equal_the_sql_macro_and_numpy(shared):
    lk = shared.lake
    py = lk.analysis.aligned_counts(None, "trials.start_time", bins=(-1.0, 0.1, 25))
    sql = lk.sql("SELECT * FROM aligned_bins('units', 'trials.start_time', -1.0, 0.1, 25)")
    key = ("session_id", "unit_id", "event_index", "bin")
    assert _sorted(py, *key).equals(_sorted(sql, *key))
    for sid, path in shared.files.items():
        try:
            index, times = nwb_events(path, "trials.start_time")
        except KeyError:
            continue
        mine = py.filter(pl.col("session_id") == sid)
        for unit, spikes in list(sorted(nwb_spikes(path).items()))[:6]:
            counts = ref_counts(spikes, times, bins(-1.0, 0.1, 25))
            got = mine.filter(pl.col("unit_id") == unit).sort("event_index", "bin")
            assert got["n_spikes"].to_list() == counts.reshape(-1).tolist(), (sid, unit)
            assert got["event_index"].unique().sort().to_list() == sorted(index.tolist())


def test_psth_equals_the_sql_macro_bit_for_bit(shared):
    lk = shared.lake
    py = lk.analysis.psth(None, "licks", bins=(-0.5, 0.025, 40))
    sql = lk.sql(
        "WITH all_units AS (SELECT session_id, unit_id FROM units) "
        "SELECT * FROM psth('all_units', 'licks', -0.5, 0.025, 40)"
    )
    assert py.height > 0
    assert _sorted(py, "session_id", "unit_id", "bin").equals(
        _sorted(sql, "session_id", "unit_id", "bin")
    )


def test_psth_by_area_matches_sql_to_rounding(shared):
    lk = shared.lake
    py = lk.analysis.psth_by_area(None, "licks", bins=(-0.5, 0.1, 10))
    sql = lk.sql("SELECT * FROM psth_by_area('units', 'licks', -0.5, 0.1, 10)")
    sql = sql.sort("structure_acronym", "bin", nulls_last=True)
    assert py.schema == sql.schema and py.height == sql.height
    assert py.select("structure_acronym", "bin", "n_sessions", "n_units").equals(
        sql.select("structure_acronym", "bin", "n_sessions", "n_units")
    )
    assert np.allclose(py["rate_hz"], sql["rate_hz"], rtol=1e-12, atol=0)


def test_aligned_spikes_equal_the_sql_macro(shared):
    lk = shared.lake
    py = lk.analysis.aligned_spikes(None, "rewards", window=(-1.0, 1.0))
    sql = lk.sql("SELECT * FROM aligned_spikes('units', 'rewards', -1.0, 1.0)")
    key = ("session_id", "unit_id", "event_index", "time")
    assert py.height > 0
    assert _sorted(py, *key).equals(_sorted(sql, *key))


def test_events_and_unit_selections_are_the_rows_of_the_views(shared):
    lk = shared.lake
    names = lk.sql("SELECT DISTINCT event FROM events ORDER BY 1")["event"].to_list()
    assert len(names) > 10
    for name in names:
        if "." in name and not name.split(".", 1)[1].isidentifier():
            continue  # interval tables whose names are not plain identifiers
        view = lk.sql(
            f"SELECT session_id, event_index, time FROM events WHERE event = '{name}' "
            "ORDER BY session_id, event_index"
        )
        assert lk.analysis.events(name).equals(view), name
    scanned = lk.scan("units").filter(preset_expr("visual_behavior"))
    expected = scanned.select("session_id", "unit_id").sort("session_id", "unit_id").collect()
    assert lk.analysis.units("visual_behavior").equals(expected)
    with pytest.raises(ValueError, match="no such column"):
        lk.analysis.events("trials.nothing_time")


def test_presets_frames_and_custom_events_select_what_they_say(shared):
    lk = shared.lake
    sid = shared.synthetic[0]
    units = lk.sql(
        f"SELECT session_id, unit_id FROM units_quality WHERE allen_visual_coding "
        f"AND session_id = '{sid}'"
    )
    by_name = lk.analysis.aligned_counts("allen_visual_coding", "licks", window=(0.0, 0.1))
    by_frame = lk.analysis.aligned_counts(units, "licks", window=(0.0, 0.1))
    assert (
        by_name.filter(pl.col("session_id") == sid)
        .sort("unit_id", "event_index")
        .equals(by_frame.sort("unit_id", "event_index"))
    )
    spikes = nwb_spikes(shared.files[sid])
    unit = max(spikes, key=lambda u: len(spikes[u]))
    at_spikes = pl.DataFrame({"session_id": [sid] * 5, "time": spikes[unit][10:15]})
    one = pl.DataFrame({"session_id": [sid], "unit_id": [unit]})
    got = lk.analysis.aligned_counts(one, at_spikes, window=(0.0, 1e-3))
    assert got["event_index"].to_list() == [0, 1, 2, 3, 4]
    expected = ref_counts(spikes[unit], spikes[unit][10:15], np.array([0.0, 1e-3]))[:, 0]
    assert got["n_spikes"].to_list() == expected.tolist()


def test_unit_rates_and_rates_by_area_equal_the_views(shared):
    lk = shared.lake
    assert (
        lk.analysis.unit_rates()
        .sort("session_id", "unit_id")
        .equals(lk.sql("SELECT * FROM unit_rates").sort("session_id", "unit_id"))
    )
    py = lk.analysis.rates_by_area("visual_behavior")
    vb = "WITH vb AS (SELECT * FROM units_quality WHERE visual_behavior) "
    sql = lk.sql(f"{vb}SELECT * FROM rates_by_area('vb')").sort(
        "session_id", "structure_acronym", nulls_last=True
    )
    exact = ["session_id", "structure_acronym", "n_units", "n_spikes"]
    assert py.schema == sql.schema
    assert py.select(exact).equals(sql.select(exact))
    for col in ("mean_rate_hz", "mean_firing_rate"):
        assert np.allclose(py[col], sql[col], rtol=1e-12, atol=0, equal_nan=True)


def test_spike_times_are_the_files_spike_times(shared):
    for sid in (shared.synthetic[0], *shared.real):
        expected = nwb_spikes(shared.files[sid])
        got = shared.lake.analysis.spike_times(sid)
        assert got.keys() == expected.keys()
        for unit, times in expected.items():
            assert np.array_equal(got[unit], times), (sid, unit)
    some = shared.lake.analysis.spike_times(shared.synthetic[0], [min(expected), 12345])
    assert len(some[12345]) == 0


def test_bad_arguments_are_refused_with_a_reason(shared):
    an = shared.lake.analysis
    with pytest.raises(ValueError, match="exactly one of window"):
        an.aligned_counts(None, "licks")
    with pytest.raises(ValueError, match="start < stop"):
        an.aligned_counts(None, "licks", window=(0.5, 0.5))
    with pytest.raises(ValueError, match="width >="):
        an.psth(None, "licks", bins=(0.0, 0.0, 10))
    with pytest.raises(ValueError, match="finite width >="):
        an.psth(None, "licks", bins=(0.0, float("inf"), 10))
    with pytest.raises(ValueError, match="finite start < stop"):
        an.aligned_counts(None, "licks", window=(0.0, float("nan")))
    with pytest.raises(ValueError, match=r"trials\.<column>"):
        an.events("spikes")
    with pytest.raises(InvalidName):
        an.events("trials.x; DROP TABLE units")
    with pytest.raises(InvalidName):
        an.units("no_such_preset")
    with pytest.raises(UnknownSession):
        an.spike_times("nope")
