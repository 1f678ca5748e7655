"""The aligned-count and PSTH macros, checked against numpy over the source NWB files.

Every count is compared exactly (integers), every rate bit for bit, on two synthetic sessions
and the three real NWB files, for trial columns with NaN times, licks and rewards at the
session edges, interval starts, units without spikes and empty windows.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from tests.queries.lakes import bins, nwb_events, nwb_spikes, ref_counts, shared_lake

#: (event, sessions it exists in: 'synthetic', a real file's stem, ...)
EVENTS = (
    "trials.change_time",
    "trials.start_time",
    "trials.stop_time",
    "trials.pole_in_time",
    "trials.cue_start_time",
    "licks",
    "rewards",
    "intervals.epochs",
    "intervals.encoding_table",
    "intervals.recognition_table",
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


def reference(shared, event: str, offsets: np.ndarray) -> pl.DataFrame:
    """Dense expected counts: every unit x every finite event x every bin, per session."""
    frames = []
    for sid, path in shared.files.items():
        try:
            index, times = nwb_events(path, event)
        except KeyError:  # the file has no such event
            continue
        if len(times) == 0:
            continue
        for unit, spikes in sorted(nwb_spikes(path).items()):
            counts = ref_counts(spikes, times, offsets)  # (events, bins)
            n_e, n_b = counts.shape
            frames.append(
                pl.DataFrame(
                    {
                        "session_id": [sid] * (n_e * n_b),
                        "unit_id": np.full(n_e * n_b, unit, dtype=np.int64),
                        "event_index": np.repeat(index, n_b),
                        "event_time": np.repeat(times, n_b),
                        "bin": np.tile(np.arange(n_b, dtype=np.int64), n_e),
                        "n_spikes": counts.reshape(-1).astype(np.int64),
                    }
                )
            )
    return pl.concat(frames)


KEY = ["session_id", "unit_id", "event_index", "bin"]


@pytest.mark.parametrize("event", EVENTS)
def test_window_counts_equal_numpy_over_the_nwb_files(shared, event):
    got = shared.lake.sql(f"SELECT * FROM aligned_counts('units', '{event}', -0.5, 0.75)")
    expected = reference(shared, event, np.array([-0.5, 0.75]))
    assert got.height == expected.height > 0
    got = got.with_columns(pl.lit(0, pl.Int64).alias("bin")).select(expected.columns)
    assert got.sort(KEY).equals(expected.sort(KEY))


@pytest.mark.parametrize("event", ["trials.change_time", "licks", "intervals.encoding_table"])
def test_binned_counts_equal_numpy_over_the_nwb_files(shared, event):
    got = shared.lake.sql(f"SELECT * FROM aligned_bins('units', '{event}', -0.3, 0.05, 13)")
    expected = reference(shared, event, bins(-0.3, 0.05, 13))
    assert got.sort(KEY).select(expected.columns).equals(expected.sort(KEY))
    offsets = got.select("bin", "bin_start").unique().sort("bin")
    assert offsets["bin_start"].to_list() == bins(-0.3, 0.05, 13)[:-1].tolist()


def test_psth_rates_are_bit_identical_to_numpy(shared):
    width, n = 0.02, 50
    got = shared.lake.sql(f"SELECT * FROM psth('units', 'licks', -0.5, {width}, {n})")
    expected = (
        reference(shared, "licks", bins(-0.5, width, n))
        .group_by("session_id", "unit_id", "bin")
        .agg(pl.col("n_spikes").sum(), pl.col("event_index").n_unique().alias("n_events"))
    )
    joined = got.join(expected, on=["session_id", "unit_id", "bin"], suffix="_ref")
    assert joined.height == got.height == expected.height
    assert (joined["n_spikes"] == joined["n_spikes_ref"]).all()
    assert (joined["n_events"] == joined["n_events_ref"]).all()
    rate = joined["n_spikes_ref"].to_numpy().astype(np.float64) / (
        joined["n_events_ref"].to_numpy().astype(np.float64) * width
    )
    assert np.array_equal(joined["rate_hz"].to_numpy(), rate)  # bit for bit


def test_nan_event_times_are_dropped_and_empty_windows_count_zero(shared):
    lk = shared.lake
    sid = shared.synthetic[0]
    with_nan = lk.sql(
        f"SELECT count(*) FILTER (WHERE isnan(change_time)) AS nan, count(*) AS n "
        f"FROM trials WHERE session_id = '{sid}'"
    ).row(0)
    assert with_nan[0] > 0
    got = lk.sql(
        f"SELECT * FROM aligned_counts('units', 'trials.change_time', 0.0, 0.001) "
        f"WHERE session_id = '{sid}'"
    )
    n_units = lk.sql(f"SELECT count(*) FROM units WHERE session_id = '{sid}'").item()
    assert got.height == n_units * (with_nan[1] - with_nan[0])
    assert got["event_time"].is_finite().all()
    assert (got["n_spikes"] == 0).sum() > 0  # 1 ms windows: mostly empty, still listed


def test_units_without_spikes_get_rows_of_zeros(shared):
    lk = shared.lake
    silent = lk.sql(
        "SELECT session_id, unit_id FROM units WHERE spike_count = 0 "
        "AND session_id IN (SELECT session_id FROM events WHERE event = 'licks')"
    )
    assert silent.height >= 1
    got = lk.sql(
        "SELECT * FROM aligned_bins('units', 'licks', -1.0, 0.5, 4) "
        "SEMI JOIN (SELECT session_id, unit_id FROM units WHERE spike_count = 0) "
        "USING (session_id, unit_id)"
    )
    assert got.height > 0 and got["n_spikes"].sum() == 0
    assert set(got.select("session_id", "unit_id").unique().rows()) == set(silent.rows())


def test_licks_at_the_session_edges_are_events_with_unclipped_windows(shared):
    lk = shared.lake
    for sid in shared.synthetic:
        first, last = lk.sql(
            f"SELECT min(time), max(time) FROM licks WHERE session_id = '{sid}'"
        ).row(0)
        got = lk.sql(
            f"SELECT event_time, sum(n_spikes) AS n FROM aligned_counts('units', 'licks', "
            f"-5.0, 5.0) WHERE session_id = '{sid}' GROUP BY 1"
        )
        assert {first, last} <= set(got["event_time"])
        edges = np.array([first, last])
        spikes = nwb_spikes(shared.files[sid]).values()
        expected = sum(ref_counts(t, edges, np.array([-5.0, 5.0]))[:, 0] for t in spikes)
        n = dict(zip(got["event_time"], got["n"], strict=True))
        assert [n[first], n[last]] == expected.tolist()


def test_spikes_exactly_on_an_edge_count_in_the_bin_that_starts_there(shared):
    lk = shared.lake
    sid = shared.synthetic[0]
    path = shared.files[sid]
    spikes = nwb_spikes(path)
    unit = max(spikes, key=lambda u: len(spikes[u]))
    events = spikes[unit][5:60:5]  # events exactly at spike times
    views = (
        "WITH edge_events AS ("
        f"SELECT '{sid}' AS session_id, 'edge' AS event, range AS event_index, "
        f"(list_value({', '.join(repr(float(t)) for t in events)}))[range + 1] AS time "
        f"FROM range({len(events)})), "
        f"one_unit AS (SELECT '{sid}' AS session_id, CAST({unit} AS BIGINT) AS unit_id) "
    )
    for lo, hi in ((0.0, 0.004), (-0.004, 0.0)):
        got = lk.sql(
            f"{views}SELECT * FROM aligned_counts('one_unit', 'edge', {lo}, {hi}, "
            "event_table := 'edge_events') ORDER BY event_index"
        )
        expected = ref_counts(spikes[unit], events, np.array([lo, hi]))[:, 0]
        assert got["n_spikes"].to_list() == expected.tolist()
        if lo == 0.0:
            assert (got["n_spikes"] >= 1).all()  # the spike at t itself is in [t, t + w)


def test_events_sharing_an_event_index_are_counted_apart(shared):
    # a user's event table may repeat event_index (here 0 twice): each event gets its own count
    lk = shared.lake
    sid = shared.synthetic[0]
    spikes = nwb_spikes(shared.files[sid])
    unit = max(spikes, key=lambda u: len(spikes[u]))
    t = spikes[unit]
    events = np.array([t[len(t) // 3], t[2 * len(t) // 3]])
    views = (
        "WITH twin_events AS ("
        f"SELECT '{sid}' AS session_id, 'twin' AS event, 0 AS event_index, time "
        f"FROM (VALUES ({float(events[0])!r}), ({float(events[1])!r})) AS v(time)), "
        f"one_unit AS (SELECT '{sid}' AS session_id, CAST({unit} AS BIGINT) AS unit_id) "
    )
    expected = ref_counts(t, events, np.array([0.0, 1.0]))[:, 0]
    assert (expected > 0).all()  # the spike at each event counts: a summed answer would differ
    got = lk.sql(
        f"{views}SELECT event_time, n_spikes FROM aligned_counts('one_unit', 'twin', 0.0, 1.0, "
        "event_table := 'twin_events') ORDER BY event_time"
    )
    assert got["n_spikes"].to_list() == expected.tolist()
    binned = lk.sql(
        f"{views}SELECT event_time, sum(n_spikes) AS n FROM aligned_bins('one_unit', 'twin', "
        "0.0, 0.25, "
        "4, event_table := 'twin_events') GROUP BY 1 ORDER BY 1"
    )
    assert binned["n"].to_list() == expected.tolist()
    frame = pl.DataFrame({"session_id": [sid], "unit_id": [unit]})
    ev = pl.DataFrame({"session_id": [sid, sid], "event_index": [0, 0], "time": events})
    py = lk.analysis.aligned_counts(frame, ev, window=(0.0, 1.0)).sort("event_time")
    assert py["n_spikes"].to_list() == expected.tolist()


def test_psth_by_area_averages_the_unit_psths(shared):
    lk = shared.lake
    per_area = lk.sql("SELECT * FROM psth_by_area('units', 'licks', -0.2, 0.1, 4)")
    units = lk.sql(
        "SELECT p.*, u.structure_acronym FROM psth('units', 'licks', -0.2, 0.1, 4) AS p "
        "JOIN units_annotated AS u USING (session_id, unit_id)"
    )
    expected = units.group_by("structure_acronym", "bin").agg(
        pl.len().alias("n_units"), pl.col("rate_hz").mean().alias("mean")
    )
    joined = per_area.join(expected, on=["structure_acronym", "bin"], nulls_equal=True)
    assert joined.height == per_area.height == expected.height
    assert (joined["n_units"] == joined["n_units_right"]).all()
    assert np.allclose(joined["rate_hz"], joined["mean"], rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "call",
    [
        "aligned_counts('units', 'licks', 0.5, 0.5)",
        "aligned_bins('units', 'licks', 0.0, 0.0, 10)",
        "psth('units', 'licks', 0.0, 0.01, 0)",
        "aligned_counts('units', 'licks', 0.0, 'nan'::DOUBLE)",  # NaN > 0 in DuckDB
        "aligned_spikes('units', 'licks', 'nan'::DOUBLE, 0.5)",
        "aligned_bins('units', 'licks', 0.0, 'nan'::DOUBLE, 10)",
        "psth('units', 'licks', 0.0, 'inf'::DOUBLE, 10)",
    ],
)
def test_unusable_windows_and_bins_are_errors(shared, call):
    with pytest.raises(duckdb.InvalidInputException, match=r"win_stop|bin_width|n_bins"):
        shared.lake.sql(f"SELECT * FROM {call}")


def test_stimulus_presentations_are_events_in_sql_and_python(shared):
    lk = shared.lake
    names = lk.sql("SELECT DISTINCT name FROM stimulus_presentations ORDER BY 1")["name"]
    assert names.len() > 0
    event = f"intervals.{names[0]}"
    starts = lk.sql(
        f"SELECT count(*) FROM stimulus_presentations WHERE name = '{names[0]}' "
        "AND isfinite(start_time)"
    ).item()
    listed = lk.sql(f"SELECT count(*) FROM events WHERE event = '{event}'").item()
    assert listed == starts > 0
    key = ["session_id", "unit_id", "event_index"]
    sql = lk.sql(f"SELECT * FROM aligned_counts('units', '{event}', 0.0, 0.25)").sort(key)
    py = lk.analysis.aligned_counts(None, event, window=(0.0, 0.25)).sort(key)
    assert py.equals(sql) and sql["n_spikes"].sum() > 0
