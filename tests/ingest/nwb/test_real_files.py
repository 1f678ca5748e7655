"""The NWB decoder on the real files of ../shared/realdata/nwb: counts, spikes, every table."""

from __future__ import annotations

import datetime as dt
import json
import math

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest.base import DecodeOptions
from ingest.nwb import NWBDecoder
from tests.ingest.nwb.files import HUMAN, JANELIA, OGEN, UTC, copy, decode_file, nwb

#: Numbers read from the files (realdata README); file -> (units, spikes, sum of spike times,
#: electrodes, trials, probes).
EXPECTED = {
    JANELIA: (1, 1_679, 1830408.7248250002, 64, 178, 1),
    OGEN: (4, 34_057, 87436293.55639184, 32, 412, 1),
    HUMAN: (35, 214_278, 302104732.80567324, 19, 0, 19),
}


# --- real files: counts, sums, spikes ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_file_counts_and_spike_time_sum(realdata, name):
    units, spikes, total, electrodes, trials, probes = EXPECTED[name]
    bundle = decode_file(nwb(realdata, name))
    assert bundle.num_rows("units") == units
    assert bundle.num_rows("spikes") == spikes
    assert bundle.num_rows("channels") == electrodes
    assert bundle.num_rows("trials") == trials
    assert bundle.num_rows("probes") == probes
    times = bundle.table("spikes").column("time").to_numpy()
    assert len(times) == spikes
    assert math.isclose(math.fsum(times), total, rel_tol=1e-12)
    counts = bundle.table("units").column("spike_count").to_numpy()
    assert counts.sum() == spikes


#: Steps where a unit's spike times go backwards in the file (the Janelia unit has 21: the
#: decoder sorts them).
OUT_OF_ORDER = {JANELIA: 21, OGEN: 0, HUMAN: 0}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spikes_per_unit_are_bit_identical_to_the_ragged_source(realdata, name):
    path = nwb(realdata, name)
    with h5py.File(path, "r") as fh:
        ids = fh["units/id"][()]
        ends = fh["units/spike_times_index"][()].astype(np.int64)
        pieces = np.split(fh["units/spike_times"][()], ends[:-1])
    source = dict(zip(ids.tolist(), pieces, strict=True))
    assert sum(int((np.diff(p) < 0).sum()) for p in pieces) == OUT_OF_ORDER[name]
    spikes = decode_file(path).table("spikes")
    unit = spikes.column("unit_id").to_numpy()
    time = spikes.column("time").to_numpy()
    assert np.all(np.diff(unit) >= 0)
    for uid, expected in source.items():
        got = time[unit == uid]
        want = np.sort(expected, kind="stable")
        assert np.array_equal(got.view(np.int64), want.view(np.int64)), uid


def test_small_chunks_give_the_same_spikes(realdata):
    path = nwb(realdata, HUMAN)
    whole = decode_file(path).table("spikes")
    small = NWBDecoder(chunk_spikes=5_000).decode(path, DecodeOptions())
    batches = list(small.batches("spikes"))
    assert len(batches) > 10
    assert max(b.num_rows for b in batches) < 5_000 + 25_000
    assert small.table("spikes").equals(whole)


# --- real files: metadata and tables ----------------------------------------------------------


def test_sessions_row_of_the_janelia_file(realdata):
    path = nwb(realdata, JANELIA)
    row = decode_file(path).table("sessions").to_pylist()[0]
    assert row["session_id"] == row["identifier"] == "anm369963_2017-02-28_2"
    assert row["session_start_time"] == dt.datetime(2017, 2, 28, 6, 0, tzinfo=UTC)
    assert row["experimenter"] == ["Mike Economo"]  # a scalar in the file
    assert row["institution"] == "Janelia Research Campus"
    assert row["subject_id"] == "anm369963"
    assert row["species"] == "Mus musculus"
    assert row["sex"] == "U"
    assert row["nwb_version"] == "2.0.2"
    assert (row["has_ephys"], row["has_task"], row["has_sync"]) == (True, True, False)
    assert row["source_kind"] == "nwb"
    assert row["source_uri"] == str(path.resolve())
    assert row["decoder_version"] == "3"
    assert json.loads(row["decoder_options"]) == {"pickles": [], "session_id": None}
    assert row["session_type"] is None
    assert row["nwb_session_id"] is None  # the file has no /general/session_id
    assert row["rig"] is None
    for column in ("source_hash", "ingest_id", "ingested_at", "n_spikes"):
        assert row[column] is None


def test_sessions_row_of_the_human_file(realdata):
    bundle = decode_file(nwb(realdata, HUMAN))
    row = bundle.table("sessions").to_pylist()[0]
    assert row["session_start_time"] == dt.datetime(1900, 1, 1, 8, 0, tzinfo=UTC)
    assert row["age"] == "P49Y"
    assert row["age_in_days"] == 49 * 365.25
    assert row["lab"] == "Rutishauser"
    assert row["session_id"] == row["identifier"] == "TWH103_CBID4"
    assert row["nwb_session_id"] == "4"  # /general/session_id, kept beside the lake's id
    assert row["experimenter"] is None
    assert row["has_task"] is True  # interval tables only
    assert row["notes"] == "; ".join(bundle.notes)
    assert any("group_name disagrees" in n for n in bundle.notes)


def test_session_id_override(realdata):
    bundle = decode_file(nwb(realdata, OGEN), session_id="ogen-1")
    assert bundle.session_id == "ogen-1"
    row = bundle.table("sessions").to_pylist()[0]
    assert row["identifier"] == "anm00239123_2017-06-27_09-35-49"
    assert json.loads(row["decoder_options"])["session_id"] == "ogen-1"
    assert set(bundle.table("units").column("session_id").to_pylist()) == {"ogen-1"}


def test_channels_and_probes_keep_group_names_with_spaces_and_colons(realdata):
    bundle = decode_file(nwb(realdata, JANELIA))
    probes = bundle.table("probes").to_pylist()
    assert [(p["probe"], p["device"]) for p in probes] == [("H-129: 64", "H-129")]
    channels = bundle.table("channels")
    assert set(channels.column("probe").to_pylist()) == {"H-129: 64"}
    assert channels.column("channel").to_pylist() == list(range(64))
    assert channels.column("channel_id").to_pylist() == list(range(1, 65))
    assert set(channels.column("filtering").to_pylist()) == {"Bandpass filtered 300-6K Hz"}
    assert "group" not in channels.column_names
    assert "group_name" not in channels.column_names
    assert channels.column("imp").to_pylist()[0] == -1.0
    meta = channels.schema.field("imp").metadata
    assert meta[b"description"] == b"the impedance of the channel"


def test_units_peak_channel_from_the_electrodes_region(realdata):
    units = decode_file(nwb(realdata, JANELIA)).table("units").to_pylist()
    assert len(units) == 1
    unit = units[0]
    # Region value 48 is a row index; that electrode's id is 49.
    assert (unit["unit_id"], unit["peak_channel_id"], unit["peak_channel"]) == (1001, 49, 48)
    assert unit["probe"] == "H-129: 64"
    assert (unit["quality"], unit["cell_type"], unit["depth"]) == ("Excellent", "PTlower", 780.0)
    assert "electrodes" not in unit  # one electrode per unit: no list column


def test_human_file_probes_come_from_group_references(realdata):
    bundle = decode_file(nwb(realdata, HUMAN))
    channels = bundle.table("channels")
    assert len(set(channels.column("probe").to_pylist())) == 19
    assert set(channels.column("group_name").to_pylist()) == {"micros"}
    assert channels.column("channel").to_pylist() == [0] * 19
    units = bundle.table("units")
    with h5py.File(nwb(realdata, HUMAN), "r") as fh:
        region = fh["units/electrodes"][()]
        names = [
            fh[r].name.rsplit("/", 1)[-1]
            for r in fh["general/extracellular_ephys/electrodes/group"][()]
        ]
    assert units.column("peak_channel_id").to_pylist() == region.tolist()  # ids == rows here
    assert units.column("probe").to_pylist() == [names[i] for i in region]


def test_janelia_licks_keep_their_series(realdata):
    path = nwb(realdata, JANELIA)
    licks = decode_file(path).table("licks")
    counts = licks.group_by("source").aggregate([("time", "count")]).to_pylist()
    assert {c["source"]: c["time_count"] for c in counts} == {
        "lick_left_times": 782,
        "lick_right_times": 1_016,
    }
    with h5py.File(path, "r") as fh:
        left = fh["acquisition/lick_times/lick_left_times/timestamps"][()]
    got = licks.filter(pc.equal(licks.column("source"), "lick_left_times")).column("time")
    assert np.array_equal(got.to_numpy(), np.sort(left))


def test_janelia_trials(realdata):
    trials = decode_file(nwb(realdata, JANELIA)).table("trials")
    assert trials.num_rows == 178
    for column in ("pole_in_time", "pole_out_time", "cue_start_time", "response", "type"):
        assert column in trials.column_names
    assert trials.column("trial_index").to_pylist()[:3] == [1, 2, 3]
    assert trials.schema.field("type").type == pa.string()


def test_trial_time_quirks_are_noted_and_values_kept(realdata):
    bundle = decode_file(nwb(realdata, JANELIA))
    assert bundle.notes == [
        "trials: stop_time is NaN on all 178 trials; kept as NaN (trials_annotated ends each "
        "trial at the next trial's start_time)",
        "trials: cue_start_time, pole_in_time, pole_out_time look relative to the trial start "
        "(every value is below its trial's start_time); kept as stored: align to start_time + "
        "value (view trial_relative_events)",
    ]
    with h5py.File(nwb(realdata, JANELIA), "r") as fh:
        stored = fh["intervals/trials/pole_in_time"][:]
    assert bundle.table("trials").column("pole_in_time").to_numpy().tobytes() == stored.tobytes()
    assert decode_file(nwb(realdata, OGEN)).notes == []  # session times: nothing to say


def test_integer_time_columns_are_not_taken_for_relative_times(realdata, tmp_path):
    # camstim keeps parameters such as trial_params_change_time (a frame count: 1 < every start)
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        n = len(fh["intervals/trials/id"])
        column = fh["intervals/trials"].create_dataset("params_change_time", data=np.full(n, 1))
        column.attrs.update(
            {"namespace": "hdmf-common", "neurodata_type": "VectorData", "description": "x"}
        )
    bundle = decode_file(path)
    assert bundle.table("trials").column("params_change_time").to_pylist() == [1] * n
    assert bundle.notes == []


def test_ogen_trials_have_all_17_columns(realdata):
    path = nwb(realdata, OGEN)
    trials = decode_file(path).table("trials")
    with h5py.File(path, "r") as fh:
        source = [c.decode() for c in fh["intervals/trials"].attrs["colnames"]]
    assert len(source) == 16
    lake = [c for c in trials.column_names if c != "session_id"]
    assert len(lake) == 17  # 16 columns + id (as trial_index)
    assert set(lake) == {*source, "trial_index"}
    assert "photo_stim_power" in lake


def test_ogen_waveforms(realdata):
    path = nwb(realdata, OGEN)
    bundle = decode_file(path)
    waveforms = bundle.table("waveforms")
    assert waveforms.num_rows == 4
    assert waveforms.column("n_samples").to_pylist() == [29] * 4
    assert waveforms.column("n_channels").to_pylist() == [1] * 4
    assert waveforms.column("sampling_rate").to_pylist() == [25_000.0] * 4
    with h5py.File(path, "r") as fh:
        mean = fh["units/waveform_mean"][()]
        sd = fh["units/waveform_sd"][()]
    got = np.array(waveforms.column("waveform_mean").to_pylist(), dtype=np.float32)
    assert np.array_equal(got, mean)
    assert np.array_equal(np.array(waveforms.column("waveform_sd").to_pylist(), np.float32), sd)
    units = bundle.table("units")
    for column in ("unit_x", "unit_y", "unit_z", "cell_type", "sampling_rate"):
        assert column in units.column_names
    assert "waveform_mean" not in units.column_names


def test_human_interval_tables(realdata):
    bundle = decode_file(nwb(realdata, HUMAN))
    intervals = bundle.table("intervals")
    counts = intervals.group_by("name").aggregate([("row", "count")]).to_pylist()
    assert {c["name"]: c["row_count"] for c in counts} == {
        "encoding_table": 90,
        "recognition_table": 180,
        "timediscrimination_table": 180,
    }
    recognition = intervals.filter(pc.equal(intervals.column("name"), "recognition_table"))
    # response_time is absent from colnames in the file, and must not be lost.
    assert recognition.column("response_time").null_count == 0
    assert recognition.column("frameName").to_pylist()[0] == "SB_5_frameB_foil.png"
    encoding = intervals.filter(pc.equal(intervals.column("name"), "encoding_table"))
    assert encoding.column("Clip_name").null_count == 0
    assert encoding.column("frameName").null_count == 90
    # uint8 in one table, float64 in another: widened to float, with a note.
    assert intervals.schema.field("accuracy").type == pa.float64()
    assert any("'accuracy'" in note for note in bundle.notes)
    assert bundle.num_rows("trials") == 0
