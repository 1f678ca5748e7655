"""The views of queries/views (events, trials_annotated, trial_relative_events, unit_rates,
area_rates) against numpy over the source NWB files."""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import lake
from lake.storage import Store, commit_bundle
from schemas import SessionBundle
from tests.conftest import REALDATA
from tests.lake.builders import make_bundle
from tests.queries.lakes import (
    effective_stops,
    nwb_events,
    nwb_session_columns,
    nwb_spikes,
    nwb_trials,
    nwb_unit_anatomy,
    per_trial_counts,
    ref_counts,
    shared_lake,
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


@pytest.mark.parametrize(
    "event", ["trials.change_time", "trials.stop_time", "licks", "rewards", "intervals.epochs"]
)
def test_events_view_lists_the_finite_event_times_of_each_file(shared, event):
    got = shared.lake.sql(f"SELECT * FROM events WHERE event = '{event}'")
    for sid, path in shared.files.items():
        mine = got.filter(pl.col("session_id") == sid).sort("event_index")
        try:
            index, times = nwb_events(path, event)
        except KeyError:
            assert mine.height == 0
            continue
        assert mine["event_index"].to_list() == index.tolist(), (sid, event)
        assert np.array_equal(mine["time"].to_numpy(), times), (sid, event)


def test_events_view_has_every_time_column_of_trials(shared):
    names = set(shared.lake.sql("SELECT DISTINCT event FROM events")["event"])
    assert {"trials.start_time", "trials.change_time", "trials.pole_in_time", "licks"} <= names
    assert "trials.lick_times" not in names  # a list column is no event time


def test_trials_annotated_counts_licks_and_rewards_within_each_trial(shared):
    got = shared.lake.sql("SELECT * FROM trials_annotated")
    for sid, path in shared.files.items():
        trials = nwb_trials(path)
        mine = got.filter(pl.col("session_id") == sid).sort("trial_index")
        if trials is None:
            assert mine.height == 0
            continue
        ids, start, stop = trials["id"], trials["start_time"], trials["stop_time"]
        order = np.argsort(ids)
        end = effective_stops(ids, start, stop)
        _, licks = nwb_events(path, "licks")
        _, rewards = nwb_events(path, "rewards")
        assert mine["trial_index"].to_list() == ids[order].tolist()
        assert mine["n_licks"].to_list() == per_trial_counts(ids, start, end, licks)[order].tolist()
        n_rewards = per_trial_counts(ids, start, end, rewards)[order].tolist()
        assert mine["n_rewards"].to_list() == n_rewards, sid
        assert np.array_equal(mine["effective_stop_time"].to_numpy(), end[order], equal_nan=True)
        assert np.array_equal(mine["duration"].to_numpy(), (stop - start)[order], equal_nan=True)
        assert np.array_equal(mine["stop_time"].to_numpy(), stop[order], equal_nan=True)  # kept
    change = got.filter(pl.col("session_id").is_in(shared.synthetic))
    assert change["has_change"].to_list() == change["change_time"].is_not_nan().to_list()
    assert not got.filter(pl.col("session_id").is_in(shared.real))["has_change"].any()
    assert got["genotype"].null_count() < got.height  # subject columns joined


def test_trials_without_a_stop_time_end_at_the_next_trial_start(shared):
    # The Janelia ALM file (DANDI 000006): stop_time is NaN on all 178 trials, 1,798 licks.
    path = REALDATA / "nwb" / "sub-anm369963_ses-20170228.nwb"
    sid = shared.session_of(path)
    trials = nwb_trials(path)
    start, stop = trials["start_time"], trials["stop_time"]
    assert len(start) == 178 and np.isnan(stop).all() and np.all(np.diff(start) > 0)
    with h5py.File(path, "r") as f:
        group = f["acquisition/lick_times"]
        licks = np.sort(np.concatenate([group[k]["timestamps"][:] for k in group]))
    assert len(licks) == 1798
    # independent: trial i holds the licks in [start[i], start[i + 1]); the last trial has no end
    expected = np.diff(np.searchsorted(licks, start, side="left"))
    mine = shared.lake.sql(
        f"SELECT * FROM trials_annotated WHERE session_id = '{sid}' ORDER BY start_time"
    )
    assert mine["n_licks"].to_list() == [*expected.tolist(), 0]
    assert mine["n_licks"].sum() == 1796 == (licks < start[-1]).sum()  # 2 after the last start
    assert mine["effective_stop_time"].to_list()[:-1] == start[1:].tolist()
    assert mine["effective_stop_time"][-1] is None
    first = [licks[a] if b > a else None for a, b in zip(*_bounds(licks, start), strict=True)]
    assert mine["first_lick_time"].to_list() == [*first, None]
    assert mine["duration"].is_nan().all()  # the source's stop_time, unchanged
    # the caveat the docs state: the response period mostly begins after the next trial's start
    onset = start + trials["cue_start_time"]
    assert (onset[:-1] >= start[1:]).sum() == 145


def _bounds(times: np.ndarray, start: np.ndarray) -> tuple[list[int], list[int]]:
    edges = np.searchsorted(times, start, side="left")
    return edges[:-1].tolist(), edges[1:].tolist()


def _trials_lake(tmp_path, trials: dict, licks: list[float], rewards: list[float]) -> lake.Lake:
    """A one-session lake with these trials, licks and rewards (0.005 ml each)."""
    bundle = make_bundle("order1")
    tables = {
        **bundle.tables,
        "trials": pa.table(trials),
        "licks": pa.table({"time": licks, "source": ["spout"] * len(licks)}),
        "rewards": pa.table({"time": rewards, "volume": [0.005] * len(rewards)}),
    }
    store = Store.at(tmp_path / "lake")
    bundle = SessionBundle("order1", tables).validate()
    commit_bundle(store, bundle, source_hash="h", pipeline_version="t")
    return lake.open(store.root)


def test_stop_time_fallback_follows_start_order_not_trial_index(tmp_path):
    nan = float("nan")
    trials = {
        "trial_index": np.array([3, 1, 2, 0]),
        "start_time": [0.0, 10.0, 20.0, 30.0],
        "stop_time": [9.0, nan, nan, nan],
    }
    lk = _trials_lake(tmp_path, trials, [1.0, 9.5, 12.0, 25.0, 31.0, 100.0], [12.5, 35.0])
    got = lk.sql("SELECT * FROM trials_annotated ORDER BY start_time")
    assert got["trial_index"].to_list() == [3, 1, 2, 0]
    assert got["effective_stop_time"].to_list() == [9.0, 20.0, 30.0, None]
    assert got["n_licks"].to_list() == [1, 1, 1, 0]  # 9.5 is after stop 9; 31, 100 no end
    assert got["first_lick_time"].to_list() == [1.0, 12.0, 25.0, None]
    assert got["n_rewards"].to_list() == [0, 1, 0, 0]
    assert got["reward_volume_ml"].to_list() == [None, 0.005, None, None]


def test_events_go_to_the_last_of_trials_starting_together(tmp_path):
    # trial 1 ends where it starts (stop NaN, trial 2 starts with it): the licks are trial 2's
    nan = float("nan")
    trials = {"trial_index": [0, 1, 2], "start_time": [1.0, 2.0, 2.0], "stop_time": [1.9, nan, 4.0]}
    lk = _trials_lake(tmp_path, trials, [2.0, 2.5, 3.0], [2.1])
    got = lk.sql("SELECT * FROM trials_annotated ORDER BY trial_index")
    assert got["effective_stop_time"].to_list() == [1.9, 2.0, 4.0]
    assert got["n_licks"].to_list() == [0, 0, 3]
    assert got["n_rewards"].to_list() == [0, 0, 1]
    assert got["first_lick_time"].to_list() == [None, None, 2.0]


def test_a_trial_without_a_finite_start_holds_nothing_and_bounds_nothing(tmp_path):
    # NaN sorts after every number: it must not become the previous trial's end
    nan = float("nan")
    trials = {"trial_index": [0, 1, 2], "start_time": [1.0, nan, 8.0], "stop_time": [2.0, 7.0, nan]}
    lk = _trials_lake(tmp_path, trials, [1.5, 9.0, 15.0, 19.0], [8.5])
    got = lk.sql("SELECT * FROM trials_annotated ORDER BY trial_index")
    assert got["effective_stop_time"].to_list() == [2.0, 7.0, None]
    assert got["n_licks"].to_list() == [1, 0, 0]
    assert got["n_rewards"].to_list() == [0, 0, 0]


def test_trial_relative_events_are_offsets_from_the_trial_start(shared):
    # DANDI 000006 stores pole_in_time etc. as seconds from the trial start.
    path = REALDATA / "nwb" / "sub-anm369963_ses-20170228.nwb"
    sid = shared.session_of(path)
    trials = nwb_trials(path)
    lk = shared.lake
    got = lk.sql(
        f"SELECT * FROM trial_relative_events WHERE session_id = '{sid}' "
        "ORDER BY event, event_index"
    )
    for column in ("pole_in_time", "pole_out_time", "cue_start_time"):
        mine = got.filter(pl.col("event") == f"trials.{column}")
        absolute = trials["start_time"] + trials[column]
        keep = np.isfinite(absolute)
        assert mine["event_index"].to_list() == trials["id"][keep].tolist()
        assert np.array_equal(mine["time"].to_numpy(), absolute[keep])
    assert not got.filter(pl.col("event") == "trials.stop_time").height  # NaN: no event
    stored = lk.sql(f"SELECT pole_in_time FROM trials WHERE session_id = '{sid}' ORDER BY 1")
    assert stored["pole_in_time"].to_list() == np.sort(trials["pole_in_time"]).tolist()
    # the macros align to them through event_table; numpy over the file gives the same counts
    counts = lk.sql(
        "SELECT * FROM aligned_counts('units', 'trials.pole_in_time', -0.5, 1.0, "
        f"event_table := 'trial_relative_events') WHERE session_id = '{sid}' "
        "ORDER BY unit_id, event_index"
    )
    spikes = nwb_spikes(path)
    (unit,) = spikes
    event_times = trials["start_time"] + trials["pole_in_time"]
    expected = ref_counts(spikes[unit], event_times, np.array([-0.5, 1.0]))[:, 0]
    assert counts["n_spikes"].to_list() == expected.tolist() and expected.sum() > 0
    frame = pl.DataFrame({"session_id": sid, "event_index": trials["id"], "time": event_times})
    polars = lk.analysis.aligned_counts(None, frame, window=(-0.5, 1.0))
    assert polars.sort("unit_id", "event_index").equals(counts)


def test_unit_rates_and_session_spans_equal_the_files(shared):
    rates = shared.lake.sql("SELECT * FROM unit_rates")
    for sid, path in shared.files.items():
        spikes = nwb_spikes(path)
        everything = np.concatenate(list(spikes.values()))
        span = everything.max() - everything.min()
        mine = rates.filter(pl.col("session_id") == sid).sort("unit_id")
        ids = sorted(spikes)
        assert mine["unit_id"].to_list() == ids
        n = np.array([len(spikes[u]) for u in ids])
        assert mine["n_spikes"].to_list() == n.tolist()
        assert (mine["duration_s"] == span).all()
        assert np.array_equal(mine["mean_rate_hz"].to_numpy(), n / span)


def test_area_rates_group_units_by_the_area_of_their_peak_channel(shared):
    lk = shared.lake
    got = lk.sql("SELECT * FROM area_rates")
    for sid in shared.synthetic:
        path = shared.files[sid]
        with h5py.File(path, "r") as f:
            ids = f["units/id"][:]
            region = f["units/electrodes"][:]
            location = f["general/extracellular_ephys/electrodes/location"][:].astype(str)
        spikes = nwb_spikes(path)
        areas = location[region]
        mine = got.filter(pl.col("session_id") == sid).sort("structure_acronym")
        expected = (
            pl.DataFrame({"area": areas, "n": [len(spikes[int(u)]) for u in ids]})
            .group_by("area")
            .agg(pl.len().alias("units"), pl.col("n").sum())
            .sort("area")
        )
        assert mine["structure_acronym"].to_list() == expected["area"].to_list()
        assert mine["n_units"].to_list() == expected["units"].to_list()
        assert mine["n_spikes"].to_list() == expected["n"].to_list()
    totals = got.group_by("session_id").agg(pl.col("n_spikes").sum())
    for sid, n in totals.rows():
        assert n == sum(len(t) for t in nwb_spikes(shared.files[sid]).values())


def test_rates_by_area_takes_any_unit_selection(shared):
    lk = shared.lake
    vb = "WITH vb AS (SELECT * FROM units_quality WHERE visual_behavior) "
    chosen = lk.sql(f"{vb}SELECT sum(n_units), sum(n_spikes) FROM rates_by_area('vb')").row(0)
    direct = lk.sql(
        f"{vb}SELECT count(*), sum(spike_count) FROM units JOIN vb USING (session_id, unit_id)"
    ).row(0)
    assert chosen == direct


def test_units_annotated_equals_an_h5py_read_of_each_file(shared):
    got = shared.lake.sql("SELECT * FROM units_annotated ORDER BY session_id, unit_id")
    for sid, path in shared.files.items():
        mine = got.filter(pl.col("session_id") == sid)
        expected = nwb_unit_anatomy(path)
        assert mine["unit_id"].to_list() == expected["unit_id"].tolist(), sid
        for column in ("probe", "peak_channel", "peak_channel_electrode_id", "structure_acronym"):
            assert mine[column].to_list() == expected[column].tolist(), (sid, column)
        for column in (
            "ccf_ap",
            "ccf_dv",
            "ccf_ml",
            "probe_vertical_position",
            "probe_horizontal_position",
        ):
            values = mine[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
            assert np.array_equal(values, expected[column], equal_nan=True), (sid, column)
        session = nwb_session_columns(path)
        for column, value in session.items():
            assert mine[column].unique().to_list() == [value], (sid, column)
    # depth along the probe is NULL where a file has no electrode positions (every real file)
    real = got.filter(pl.col("session_id").is_in(shared.real))
    assert real["probe_vertical_position"].null_count() == real.height > 0
    synthetic = got.filter(pl.col("session_id").is_in(shared.synthetic))
    assert synthetic["probe_vertical_position"].null_count() == 0
    assert synthetic["session_type"].null_count() == 0 and synthetic["genotype"].n_unique() >= 1
