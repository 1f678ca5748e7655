"""The NWB decoder on an Allen-style file built with h5py (ndx-aibs-ecephys layout)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from schemas import SessionBundle
from tests.ingest.nwb.files import UTC, decode_file, write_allen_like


@pytest.fixture
def allen(tmp_path) -> SessionBundle:
    return decode_file(write_allen_like(tmp_path / "allen.nwb"))


def test_allen_sessions_row(allen):
    row = allen.table("sessions").to_pylist()[0]
    assert allen.session_id == "1044385384"
    assert row["session_start_time"] == dt.datetime(2020, 8, 19, 14, 47, 8, 574000, tzinfo=UTC)
    assert row["date_of_birth"] == dt.datetime(2020, 3, 21, 7, 0, tzinfo=UTC)
    assert (row["age"], row["age_in_days"]) == ("P151D", 151.0)
    assert (row["session_type"], row["rig"]) == ("EPHYS_1_images_G_5uL_reward", "NP.1")
    assert row["experimenter"] == ["Ann", "Bo"]
    assert (row["strain"], row["genotype"]) == ("C57BL/6J", "wt/wt")
    assert (row["has_ephys"], row["has_task"]) == (True, True)


def test_allen_probes(allen):
    probes = allen.table("probes").to_pylist()
    a, b = probes
    assert (a["probe"], a["device"], a["manufacturer"]) == ("probeA", "probeA", "imec")
    assert (a["probe_id"], b["probe_id"]) == (1000, 1001)
    assert (a["sampling_rate"], b["sampling_rate"]) == (30000.0, 30001.0)  # from the device
    assert (a["lfp_sampling_rate"], a["has_lfp_data"]) == (2500.0, True)
    assert a["device_description"] == "Neuropixels 1.0 Probe"
    assert a["phase"] == "1.0"  # unknown scalar attributes are kept


def test_allen_channels(allen):
    channels = allen.table("channels").to_pylist()
    first = channels[0]
    assert (first["probe"], first["channel"], first["channel_id"]) == ("probeA", 10, 501)
    assert (first["probe_vertical_position"], first["probe_horizontal_position"]) == (20.0, 43.0)
    assert (first["ccf_ap"], first["ccf_dv"], first["ccf_ml"]) == (8445.0, 4013.0, 6753.0)
    assert (first["structure_acronym"], first["valid"]) == ("CA1", True)
    assert first["probe_id"] == 1000
    assert [c["valid"] for c in channels] == [True, False, True, True]
    assert "local_index" not in first and "x" not in first and "location" not in first


def test_allen_units(allen):
    units = allen.table("units")
    rows = units.to_pylist()
    assert [u["unit_id"] for u in rows] == [10, 20, 30]
    by_id = {u["unit_id"]: u for u in rows}
    assert (by_id[30]["probe"], by_id[30]["peak_channel"], by_id[30]["peak_channel_id"]) == (
        "probeB",
        12,
        602,
    )
    assert (by_id[10]["probe"], by_id[10]["peak_channel"]) == ("probeA", 10)
    # An unknown peak_channel_id keeps its value but gets no probe/channel.
    assert (by_id[20]["peak_channel_id"], by_id[20]["probe"], by_id[20]["peak_channel"]) == (
        999,
        None,
        None,
    )
    assert [by_id[i]["spike_count"] for i in (10, 20, 30)] == [0, 2, 3]
    assert by_id[30]["obs_intervals"] == [[0.0, 10.0], [20.0, 30.0]]
    assert by_id[20]["obs_intervals"] == [[0.0, 5.0]]
    assert by_id[10]["obs_intervals"] == []
    assert units.schema.field("snr").metadata[b"description"] == b"signal to noise"
    assert (by_id[30]["quality"], by_id[30]["cluster_id"], by_id[30]["firing_rate"]) == (
        "good",
        3,
        1.5,
    )


def test_allen_spikes_sorted_with_amplitudes(allen):
    spikes = allen.table("spikes").to_pylist()
    got = [(s["unit_id"], s["time"], s["amplitude"]) for s in spikes]
    assert got == [
        (20, 0.5, 50.0),
        (20, 2.5, 250.0),
        (30, 1.0, 100.0),
        (30, 3.0, 300.0),
        (30, 5.0, 500.0),
    ]


def test_allen_waveforms_flatten_sample_major(allen):
    waveforms = allen.table("waveforms").to_pylist()
    assert [w["unit_id"] for w in waveforms] == [10, 20, 30]
    w10 = waveforms[0]  # unit 10 is the second row in the file
    assert (w10["n_samples"], w10["n_channels"], w10["sampling_rate"]) == (5, 2, 30000.0)
    assert w10["waveform_mean"] == list(np.arange(10, 20, dtype=np.float32))
    assert w10["waveform_sd"] == pytest.approx(list(np.arange(10, 20) / 10))


def test_allen_intervals_and_trials(allen):
    intervals = allen.table("intervals").to_pylist()
    epochs = [r for r in intervals if r["name"] == "epochs"]
    assert [r["tags"] for r in epochs] == [["spontaneous"], ["active", "stimulus"]]
    assert "timeseries" not in intervals[0]
    assert any("'timeseries'" in n and "dropped" in n for n in allen.notes)
    assert {r["name"] for r in intervals} == {"epochs"}
    # presentations have their own table: their integer stimulus_name stays an integer while
    # the epochs' is text
    flashes = allen.table("stimulus_presentations").to_pylist()
    assert [r["name"] for r in flashes] == ["flash_presentations"] * 3
    assert [r["frame"] for r in flashes] == [10, 20, 30]
    assert [r["stimulus_name"] for r in flashes] == [1, 2, 3]
    assert epochs[0]["stimulus_name"] == "spontaneous"
    assert not any("stored as text" in n for n in allen.notes)
    # the TimeSeriesReferenceVectorData column the lake cannot hold is in the inventory
    inventory = allen.table("inventory").to_pylist()
    assert [(r["path"], r["neurodata_type"]) for r in inventory] == [
        ("/intervals/epochs/timeseries", "TimeSeriesReferenceVectorData")
    ]
    trials = allen.table("trials").to_pylist()
    assert [t["lick_times"] for t in trials] == [[1.0], [2.0, 3.0]]
    assert [t["go"] for t in trials] == [True, False]


def test_allen_behaviour(allen):
    licks = allen.table("licks").to_pylist()
    assert [(r["source"], r["time"]) for r in licks] == [
        ("lick_events", 7.0),
        ("lick_events", 8.0),
        ("licks", 1.0),
        ("licks", 2.0),
        ("licks", 3.0),
    ]
    rewards = allen.table("rewards").to_pylist()
    assert [(r["time"], r["volume"], r["auto_rewarded"]) for r in rewards] == [
        (1.5, 0.005, True),
        (4.0, 0.003, False),
    ]
    speed = allen.table("running_speed")
    assert speed.column("speed").to_pylist() == [1.0, 2.0, 3.0]  # not speed_unfiltered


def test_units_with_several_electrodes_keep_them_all(tmp_path):
    bundle = decode_file(write_allen_like(tmp_path / "regions.nwb", allen_peaks=False))
    by_id = {u["unit_id"]: u for u in bundle.table("units").to_pylist()}
    # unit 30 has electrode rows [3, 2] -> ids [602, 601]; its peak is the first.
    assert by_id[30]["electrodes"] == [602, 601]
    assert (by_id[30]["peak_channel_id"], by_id[30]["probe"], by_id[30]["peak_channel"]) == (
        602,
        "probeB",
        12,
    )
    assert by_id[10]["electrodes"] == [501]
    assert by_id[20]["electrodes"] == [502]
