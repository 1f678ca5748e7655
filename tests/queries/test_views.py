"""The views of queries/views (events, trials_annotated, unit_rates, area_rates) against numpy
over the source NWB files."""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pytest

from tests.queries.lakes import nwb_events, nwb_spikes, shared_lake


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
    lk = shared.lake
    got = lk.sql("SELECT * FROM trials_annotated")
    for sid, path in shared.files.items():
        with h5py.File(path, "r") as f:
            if "intervals/trials" not in f:
                assert got.filter(pl.col("session_id") == sid).height == 0
                continue
            start = f["intervals/trials/start_time"][:]
            stop = f["intervals/trials/stop_time"][:]
        _, licks = nwb_events(path, "licks")
        _, rewards = nwb_events(path, "rewards")
        # a lick belongs to the latest trial starting at or before it, if before its stop
        expected_licks = np.zeros(len(start), dtype=np.int64)
        owner = np.searchsorted(start, licks, side="right") - 1
        inside = (owner >= 0) & (licks < stop[np.clip(owner, 0, None)])
        inside &= np.isfinite(stop[np.clip(owner, 0, None)])
        np.add.at(expected_licks, owner[inside], 1)
        expected_rewards = np.zeros(len(start), dtype=np.int64)
        owner = np.searchsorted(start, rewards, side="right") - 1
        inside = (owner >= 0) & (rewards < stop[np.clip(owner, 0, None)])
        np.add.at(expected_rewards, owner[inside], 1)
        mine = got.filter(pl.col("session_id") == sid).sort("trial_index")
        assert mine["n_licks"].to_list() == expected_licks.tolist(), sid
        assert mine["n_rewards"].to_list() == expected_rewards.tolist(), sid
        assert (mine["duration"].to_numpy() == (stop - start))[np.isfinite(stop)].all()
    change = got.filter(pl.col("session_id").is_in(shared.synthetic))
    assert change["has_change"].to_list() == change["change_time"].is_not_nan().to_list()
    assert not got.filter(pl.col("session_id").is_in(shared.real))["has_change"].any()
    assert got["genotype"].null_count() < got.height  # subject columns joined


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
    lk.sql("CREATE OR REPLACE TEMP VIEW vb AS SELECT * FROM units_quality WHERE visual_behavior")
    chosen = lk.sql("SELECT sum(n_units), sum(n_spikes) FROM rates_by_area('vb')").row(0)
    direct = lk.sql(
        "SELECT count(*), sum(spike_count) FROM units JOIN vb USING (session_id, unit_id)"
    ).row(0)
    assert chosen == direct
