"""The NWB decoder on the real files of ../shared/realdata/nwb, an Allen-style file built with
h5py, and damaged copies of the real files."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest import decode
from ingest.base import DecodeOptions
from ingest.nwb import NWBDecoder, age_in_days
from ingest.registry import DECODERS
from schemas import DecodeError, NplakeError, SessionBundle

JANELIA = "sub-anm369963_ses-20170228.nwb"
OGEN = "sub_anm00239123_ses_20170627T093549_ecephys_and_ogen.nwb"
HUMAN = "sub-4_ses-4_ecephys+image.nwb"
UTC = dt.timezone.utc

#: Numbers read from the files (realdata README); file -> (units, spikes, sum of spike times,
#: electrodes, trials, probes).
EXPECTED = {
    JANELIA: (1, 1_679, 1830408.7248250002, 64, 178, 1),
    OGEN: (4, 34_057, 87436293.55639184, 32, 412, 1),
    HUMAN: (35, 214_278, 302104732.80567324, 19, 0, 19),
}


def nwb(realdata: Path, name: str) -> Path:
    return realdata / "nwb" / name


def decode_file(path: Path, **options) -> SessionBundle:
    return NWBDecoder().decode(path, DecodeOptions(**options))


def consume(bundle: SessionBundle) -> int:
    """Read every stream of the bundle to the end; return the number of spikes."""
    return sum(batch.num_rows for batch in bundle.batches("spikes"))


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
    assert row["decoder_version"] == "2"
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


# --- an Allen-style file built with h5py ------------------------------------------------------

TEXT = h5py.string_dtype()


def text(group: h5py.Group, name: str, values) -> h5py.Dataset:
    return group.create_dataset(name, data=np.asarray(values, dtype=object), dtype=TEXT)


def column(group: h5py.Group, name: str, values, description: str = "", **kwargs) -> h5py.Dataset:
    ds = (
        text(group, name, values)
        if isinstance(values[0], str)
        else group.create_dataset(name, data=values, **kwargs)
    )
    ds.attrs["neurodata_type"] = "VectorData"
    ds.attrs["description"] = description
    return ds


def index(group: h5py.Group, name: str, ends, dtype=np.uint8) -> None:
    ds = group.create_dataset(name, data=np.asarray(ends, dtype=dtype))
    ds.attrs["neurodata_type"] = "VectorIndex"


def table(group: h5py.Group, ids, colnames, kind="DynamicTable") -> None:
    group.create_dataset("id", data=np.asarray(ids, dtype=np.int32)).attrs["neurodata_type"] = (
        "ElementIdentifiers"
    )
    group.attrs["colnames"] = np.array([c.encode() for c in colnames])  # bytes, as old files
    group.attrs["neurodata_type"] = kind


def series(group: h5py.Group, name: str, timestamps, data, unit="") -> None:
    ts = group.create_group(name)
    ts.attrs["neurodata_type"] = "TimeSeries"
    ts.create_dataset("timestamps", data=np.asarray(timestamps, dtype=np.float64))
    ts.create_dataset("data", data=data).attrs["unit"] = unit


def write_allen_like(path: Path, *, allen_peaks: bool = True, compress: bool = False) -> Path:
    """A small file with the layout of an Allen VBN NWB file (ndx-aibs-ecephys and friends)."""
    with h5py.File(path, "w") as fh:
        fh.attrs["nwb_version"] = "2.5.0"
        text(fh, "identifier", "1044385384")
        text(fh, "session_start_time", "2020-08-19T14:47:08.574000")  # naive: UTC
        text(fh, "session_description", "Allen-style test file")
        general = fh.create_group("general")
        text(general, "experimenter", ["Ann", "Bo"])
        text(general, "institution", "Allen Institute")
        meta = general.create_group("metadata")
        meta.attrs["neurodata_type"] = "EcephysBehaviorMetadata"
        meta.attrs["session_type"] = "EPHYS_1_images_G_5uL_reward"
        meta.attrs["equipment_name"] = "NP.1"
        subject = general.create_group("subject")
        for key, value in {
            "age": "P151D",
            "date_of_birth": "2020-03-21T00:00:00-07:00",
            "genotype": "wt/wt",
            "sex": "F",
            "species": "Mus musculus",
            "strain": "C57BL/6J",
            "subject_id": "524761",
        }.items():
            text(subject, key, value)
        ecephys = general.create_group("extracellular_ephys")
        groups = {}
        for i, probe in enumerate(("probeA", "probeB")):
            device = general.create_group(f"devices/{probe}")
            device.attrs.update(
                neurodata_type="EcephysProbe",
                description="Neuropixels 1.0 Probe",
                manufacturer="imec",
                sampling_rate=30000.0 + i,
                probe_id=1000 + i,
            )
            group = ecephys.create_group(probe)
            group.attrs.update(
                neurodata_type="EcephysElectrodeGroup",
                description="an electrode group",
                location="See electrode locations",
                has_lfp_data=True,
                lfp_sampling_rate=2500.0 + i,
                probe_id=1000 + i,
                phase="1.0",
            )
            group["device"] = h5py.SoftLink(f"/general/devices/{probe}")
            groups[probe] = group
        elec = ecephys.create_group("electrodes")
        names = ["probeA", "probeA", "probeB", "probeB"]
        cols = [
            "location",
            "group",
            "group_name",
            "probe_vertical_position",
            "probe_horizontal_position",
            "probe_id",
            "local_index",
            "valid_data",
            "x",
            "y",
            "z",
            "filtering",
            "impedance",
        ]
        table(elec, [501, 502, 601, 602], cols)
        column(elec, "location", ["CA1", "DG", "VISp", "LP"], "CCF acronym")
        refs = elec.create_dataset("group", (4,), dtype=h5py.ref_dtype)
        refs[...] = [groups[n].ref for n in names]
        refs.attrs["neurodata_type"] = "VectorData"
        column(elec, "group_name", names)
        column(elec, "probe_vertical_position", [20, 40, 20, 40], "µm", dtype=np.int64)
        column(elec, "probe_horizontal_position", [43.0, 11.0, 43.0, 11.0], "µm")
        column(elec, "probe_id", [1000, 1000, 1001, 1001])
        column(elec, "local_index", [10, 11, 10, 12])
        column(elec, "valid_data", [True, False, True, True])
        column(elec, "x", [8445.0, 8443.0, 7000.0, 7001.0])
        column(elec, "y", [4013.0, 4005.0, 3000.0, 3001.0])
        column(elec, "z", [6753.0, 6755.0, 5000.0, 5001.0])
        column(elec, "filtering", ["AP band", "AP band", "AP band", "AP band"])
        column(elec, "impedance", [np.nan] * 4)
        units = fh.create_group("units")
        unit_cols = [
            "spike_times",
            "spike_amplitudes",
            "cluster_id",
            "quality",
            "firing_rate",
            "snr",
            "obs_intervals",
            "waveform_mean",
            "waveform_sd",
        ]
        unit_cols.append("peak_channel_id" if allen_peaks else "electrodes")
        table(units, [30, 10, 20], unit_cols, kind="Units")
        # unit 30: times out of order; unit 10: no spikes; unit 20: two spikes.
        times = np.array([5.0, 1.0, 3.0, 2.5, 0.5])
        opts = {"chunks": (2,), "compression": "gzip"} if compress else {}
        column(units, "spike_times", times, "spike times (s)", **opts)
        index(units, "spike_times_index", [3, 3, 5])
        column(units, "spike_amplitudes", times * 100)
        index(units, "spike_amplitudes_index", [3, 3, 5])
        column(units, "cluster_id", [3, 1, 2])
        column(units, "quality", ["good", "noise", "good"])
        column(units, "firing_rate", [1.5, 0.0, 2.0], "Hz")
        column(units, "snr", np.array([2.0, 1.0, 3.0], dtype=np.float32), "signal to noise")
        column(units, "obs_intervals", np.array([[0, 10], [20, 30], [0, 5]], dtype=np.float64))
        index(units, "obs_intervals_index", [2, 2, 3])
        if allen_peaks:
            column(units, "peak_channel_id", [602, 501, 999])  # 999 is not an electrode
        else:
            column(units, "electrodes", [3, 2, 0, 1], dtype=np.int64).attrs["neurodata_type"] = (
                "DynamicTableRegion"
            )
            index(units, "electrodes_index", [2, 3, 4])
        waves = np.arange(3 * 5 * 2, dtype=np.float32).reshape(3, 5, 2)
        column(units, "waveform_mean", waves).attrs["sampling_rate"] = 30000.0
        column(units, "waveform_sd", waves / 10)
        intervals = fh.create_group("intervals")
        epochs = intervals.create_group("epochs")
        table(
            epochs,
            [0, 1],
            ["start_time", "stop_time", "tags", "timeseries", "stimulus_name"],
            kind="TimeIntervals",
        )
        column(epochs, "start_time", [0.0, 100.0])
        column(epochs, "stop_time", [100.0, 200.0])
        column(epochs, "tags", ["spontaneous", "active", "stimulus"])
        index(epochs, "tags_index", [1, 3])
        record = np.dtype([("idx_start", "i4"), ("count", "i4"), ("timeseries", h5py.ref_dtype)])
        ts = epochs.create_dataset("timeseries", (2,), dtype=record)
        ts.attrs["neurodata_type"] = "TimeSeriesReferenceVectorData"
        column(epochs, "stimulus_name", ["spontaneous", "images"])
        flashes = intervals.create_group("flash_presentations")
        table(
            flashes,
            [0, 1, 2],
            ["start_time", "stop_time", "stimulus_name", "frame"],
            kind="TimeIntervals",
        )
        column(flashes, "start_time", [1.0, 2.0, 3.0])
        column(flashes, "stop_time", [1.25, 2.25, 3.25])
        column(flashes, "stimulus_name", [1, 2, 3])  # int here, text in epochs
        column(flashes, "frame", np.array([10, 20, 30], dtype=np.uint16))
        trials = intervals.create_group("trials")
        table(trials, [0, 1], ["start_time", "stop_time", "go", "lick_times"], kind="TimeIntervals")
        column(trials, "start_time", [0.0, 10.0])
        column(trials, "stop_time", [9.0, 19.0])
        column(trials, "go", [True, False])
        column(trials, "lick_times", [1.0, 2.0, 3.0])
        index(trials, "lick_times_index", [1, 3])
        processing = fh.create_group("processing")
        series(processing.create_group("licking"), "licks", [3.0, 1.0, 2.0], [0, 0, 0])
        rewards = processing.create_group("rewards")
        series(rewards, "volume", [1.5, 4.0], [0.005, 0.003], "mL")
        series(rewards, "autorewarded", [1.5, 4.0], [True, False])
        running = processing.create_group("running")
        series(running, "speed", [0.0, 0.1, 0.2], [1.0, 2.0, 3.0], "cm/s")
        series(running, "speed_unfiltered", [0.0, 0.1, 0.2], [9.0, 9.0, 9.0], "cm/s")
        events = fh.create_group("events/lick_events")
        table(events, [0, 1], ["timestamp"], kind="EventsTable")
        column(events, "timestamp", [7.0, 8.0])
    return path


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
    flashes = [r for r in intervals if r["name"] == "flash_presentations"]
    assert [r["frame"] for r in flashes] == [10, 20, 30]
    # text in one table, integer in another: stored as text
    assert [r["stimulus_name"] for r in flashes] == ["1", "2", "3"]
    assert epochs[0]["stimulus_name"] == "spontaneous"
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


def test_age_in_days():
    assert age_in_days("P205D", None, None) == 205.0
    assert age_in_days("P2W", None, None) == 14.0
    assert age_in_days("P1Y6M", None, None) == 365.25 * 1.5
    assert age_in_days("PT36H", None, None) == 1.5
    assert age_in_days("P90D/P120D", None, None) is None
    assert age_in_days("unknown", None, None) is None
    start = dt.datetime(2020, 1, 11, tzinfo=UTC)
    assert age_in_days(None, dt.datetime(2020, 1, 1, tzinfo=UTC), start) == 10.0


# --- decoder interface ------------------------------------------------------------------------


def test_sniff_and_inputs(tmp_path, realdata):
    decoder = NWBDecoder()
    upper = tmp_path / "X.NWB"
    upper.write_bytes(b"")
    assert decoder.sniff(upper)
    assert decoder.sniff(nwb(realdata, OGEN))
    assert not decoder.sniff(tmp_path / "missing.nwb")
    (tmp_path / "folder.nwb").mkdir()
    assert not decoder.sniff(tmp_path / "folder.nwb")
    other = tmp_path / "x.h5"
    other.write_bytes(b"")
    assert not decoder.sniff(other)
    assert decoder.inputs(upper, DecodeOptions()) == [upper]
    assert (decoder.name, decoder.version) == ("nwb", "2")


def test_registered_and_reachable_through_ingest_decode(realdata):
    assert any(isinstance(d, NWBDecoder) for d in DECODERS)
    bundle = decode(nwb(realdata, JANELIA))
    assert bundle.num_rows("spikes") == 1_679


# --- bad input --------------------------------------------------------------------------------


def copy(realdata: Path, tmp_path: Path, name: str = JANELIA) -> Path:
    target = tmp_path / name
    shutil.copyfile(nwb(realdata, name), target)
    target.chmod(0o644)
    return target


def replace(fh: h5py.File, name: str, data) -> None:
    del fh[name]
    fh[name] = data


def expect_error(path: Path, field: str | None, *fragments: str, **options) -> DecodeError:
    """Decode (and stream) `path`; the DecodeError must name the file, the field, the words."""
    with pytest.raises(DecodeError) as info:
        consume(decode_file(path, **options))
    error = info.value
    message = str(error)
    assert "\n" not in message
    assert error.file == str(path)
    assert path.name in message
    if field is not None:
        assert error.field == field
        assert field in message
    for fragment in fragments:
        assert fragment in message
    return error


def test_missing_path(tmp_path):
    expect_error(tmp_path / "nothing.nwb", None, "no such file")


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.nwb"
    path.write_text("hello, not HDF5")
    expect_error(path, None, "not an HDF5 file")


def test_a_units_table_with_zero_rows_is_a_session_without_units(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        for name, column in list(fh["units"].items()):
            attrs, empty = dict(column.attrs), np.empty((0, *column.shape[1:]), column.dtype)
            replace(fh, f"units/{name}", empty)
            fh[f"units/{name}"].attrs.update(attrs)
    bundle = decode_file(path)
    assert (bundle.table("units").num_rows, consume(bundle)) == (0, 0)
    assert bundle.table("sessions")["has_ephys"].to_pylist() == [False]
    assert bundle.table("channels").num_rows == 32  # the probe is still described


def test_a_missing_session_start_time_is_null_and_noted(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        del fh["session_start_time"]
    bundle = decode_file(path)
    assert bundle.table("sessions")["session_start_time"].to_pylist() == [None]
    assert bundle.notes == ["no /session_start_time (required by NWB): session_start_time is null"]


def test_unit_ids_must_be_whole_numbers(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        replace(fh, "units/id", np.array([1.0, 2.0, 3.0, 4.0]))  # whole: read as 1..4
    assert decode_file(path).table("units").column("unit_id").to_pylist() == [1, 2, 3, 4]
    with h5py.File(path, "r+") as fh:
        replace(fh, "units/id", np.array([1.5, 2.0, 3.0, 4.0]))
    expect_error(path, "units/id", "ids must be whole numbers")


def test_hdf5_that_is_not_nwb(tmp_path):
    path = tmp_path / "plain.nwb"
    with h5py.File(path, "w") as fh:
        fh["data"] = np.arange(3)
    expect_error(path, "nwb_version", "an HDF5 file but not NWB")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_truncated_file(realdata, tmp_path, fraction):
    path = copy(realdata, tmp_path, OGEN)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(size * fraction))
    expect_error(path, None, "truncated")


def test_no_units_table(realdata, tmp_path):
    path = copy(realdata, tmp_path)
    with h5py.File(path, "r+") as fh:
        del fh["units"]
    expect_error(path, "units", "no units table")


@pytest.mark.parametrize(
    ("index", "fragment"),
    [
        (np.array([1000], dtype=np.int32), "last offset 1000"),
        (np.array([5000], dtype=np.int32), "last offset 5000"),
        (np.array([10, 1679], dtype=np.int32), "2 index entries for 1 rows"),
    ],
)
def test_spike_index_disagrees_with_spike_times(realdata, tmp_path, index, fragment):
    path = copy(realdata, tmp_path)
    with h5py.File(path, "r+") as fh:
        replace(fh, "units/spike_times_index", index)
    expect_error(path, "units/spike_times_index", fragment)


def test_spike_index_with_decreasing_offsets(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        replace(fh, "units/spike_times_index", np.array([12992, 10000, 19164, 34057]))
    expect_error(path, "units/spike_times_index", "offsets decrease")


@pytest.mark.parametrize(
    ("name", "make", "fragment"),
    [
        ("units/spike_times", lambda t: np.stack([t, t], axis=1), "a 1-D dataset is expected"),
        ("units/spike_times", lambda t: t.astype("S12"), "numbers are expected"),
        ("units/spike_times_index", lambda i: i.astype(np.float64) + 0.5, "integers are expected"),
        ("units/spike_times_index", None, "is a group, not a dataset"),
    ],
)
def test_malformed_spike_datasets_are_refused_before_streaming(
    realdata, tmp_path, name, make, fragment
):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        if make is None:
            del fh[name]
            fh.create_group(name)
        else:
            replace(fh, name, make(fh[name][()]))
    with pytest.raises(DecodeError, match=fragment) as info:
        decode_file(path)  # the bundle is refused before a spike is streamed
    assert info.value.field == name and path.name in str(info.value)


def test_text_spike_amplitudes_are_refused(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        fh["units/spike_amplitudes"] = np.zeros(len(fh["units/spike_times"]), dtype="S8")
    with pytest.raises(DecodeError, match="numbers are expected") as info:
        decode_file(path)
    assert info.value.field == "units/spike_amplitudes"


@pytest.mark.parametrize("identifier", ["bad id!", "", "../x", "-lead"])
def test_identifier_that_is_not_a_session_id(realdata, tmp_path, identifier):
    path = copy(realdata, tmp_path)
    with h5py.File(path, "r+") as fh:
        replace(fh, "identifier", identifier)
    expect_error(path, "identifier", repr(identifier), "pass a session id")
    assert decode_file(path, session_id="fixed").session_id == "fixed"


def test_bad_session_id_option(realdata):
    path = nwb(realdata, JANELIA)
    expect_error(path, "session_id", "'a b'", session_id="a b")


def test_amplitudes_whose_index_differs(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        fh["units/spike_amplitudes"] = np.ones(34_057)
        fh["units/spike_amplitudes_index"] = np.array([12992, 16451, 19164, 34057])
    expect_error(path, "units/spike_amplitudes_index", "differs from spike_times_index")


def test_amplitudes_with_an_equal_index_are_used(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        fh["units/spike_amplitudes"] = np.arange(34_057, dtype=np.float32)
        fh["units/spike_amplitudes_index"] = np.array([12992, 16450, 19164, 34057], np.uint16)
    spikes = decode_file(path).table("spikes")
    assert spikes.column("amplitude").null_count == 0
    assert spikes.column("amplitude").to_numpy().sum() == np.arange(34_057).sum()


def test_damage_found_only_while_streaming_is_a_decode_error(tmp_path):
    path = write_allen_like(tmp_path / "damaged.nwb", compress=True)
    with h5py.File(path, "r") as fh:
        chunk = fh["units/spike_times"].id.get_chunk_info(1)
    with open(path, "r+b") as fh:
        fh.seek(chunk.byte_offset)
        fh.write(b"\xff" * chunk.size)
    bundle = decode_file(path)  # metadata is intact
    with pytest.raises(DecodeError) as info:
        consume(bundle)
    assert info.value.field == "units/spike_times"
    assert info.value.file == str(path)
    assert "\n" not in str(info.value)


def test_file_cut_after_decoding_fails_cleanly_when_streamed(realdata, tmp_path):
    path = copy(realdata, tmp_path, HUMAN)
    bundle = decode_file(path)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    with pytest.raises(DecodeError, match="truncated") as info:
        consume(bundle)
    assert info.value.file == str(path)


# --- tolerated oddities -----------------------------------------------------------------------


def test_minimal_file_decodes(tmp_path):
    path = tmp_path / "minimal.nwb"
    with h5py.File(path, "w") as fh:
        text(fh, "identifier", "minimal-1")
        fh.create_dataset("units/id", data=np.array([2, 1], dtype=np.int32))
        fh.create_dataset("units/spike_times", data=np.array([0.3, 0.1, 0.2]))
        fh.create_dataset("units/spike_times_index", data=np.array([1, 3], dtype=np.uint8))
    bundle = decode_file(path)
    assert set(bundle.tables) == {"sessions", "units", "spikes"}
    spikes = bundle.table("spikes")
    assert spikes.column("unit_id").to_pylist() == [1, 1, 2]
    assert spikes.column("time").to_pylist() == [0.1, 0.2, 0.3]
    row = bundle.table("sessions").to_pylist()[0]
    assert (row["session_start_time"], row["nwb_version"], row["has_task"]) == (None, None, False)


def write_minimal_with_behavior(path: Path, add_series) -> Path:
    with h5py.File(path, "w") as fh:
        text(fh, "identifier", "minimal-2")
        fh.create_dataset("units/id", data=np.array([1], dtype=np.int32))
        fh.create_dataset("units/spike_times", data=np.array([0.5]))
        fh.create_dataset("units/spike_times_index", data=np.array([1], dtype=np.uint8))
        add_series(fh.create_group("acquisition"))
    return path


def test_non_allen_wheel_velocity_is_running_speed_and_wheel_position_is_not(tmp_path):
    def add(acquisition):
        behavior = acquisition.create_group("behavior")
        behavior.attrs["neurodata_type"] = "BehavioralTimeSeries"
        series(behavior, "wheel_position", [0.0, 0.1], [0.0, 3.0], "radians")
        series(behavior, "running_wheel", [0.0, 0.1, 0.2], [0.01, 0.02, 0.04], "m/s")

    bundle = decode_file(write_minimal_with_behavior(tmp_path / "wheel.nwb", add))
    speed = bundle.table("running_speed")
    assert speed.column("time").to_pylist() == [0.0, 0.1, 0.2]
    assert speed.column("speed").to_pylist() == [1.0, 2.0, 4.0]  # m/s -> cm/s


def test_a_wheel_position_alone_gives_no_running_speed(tmp_path):
    def add(acquisition):
        series(acquisition, "wheel_position", [0.0, 0.1], [0.0, 3.0], "radians")

    bundle = decode_file(write_minimal_with_behavior(tmp_path / "position.nwb", add))
    assert "running_speed" not in bundle.tables


def test_units_without_spike_times(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        del fh["units/spike_times"]
        del fh["units/spike_times_index"]
    bundle = decode_file(path)
    assert "spikes" not in bundle.tables
    assert bundle.table("units").column("spike_count").to_pylist() == [0, 0, 0, 0]
    assert any("no spike_times" in note for note in bundle.notes)


def test_file_without_task_data(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        del fh["intervals"]
    row = decode_file(path).table("sessions").to_pylist()[0]
    assert (row["has_ephys"], row["has_task"]) == (True, False)


def test_unusable_electrodes_region_is_a_note(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        replace(fh, "units/electrodes_index", np.array([1, 2, 3, 9], dtype=np.int32))
    bundle = decode_file(path)
    assert bundle.table("units").column("peak_channel").null_count == 4
    assert any("region unusable" in note for note in bundle.notes)


def test_non_numeric_probe_attribute_is_kept_as_text(tmp_path):
    path = write_allen_like(tmp_path / "odd.nwb")
    with h5py.File(path, "r+") as fh:
        fh["general/extracellular_ephys/probeA"].attrs["probe_id"] = "A-1"
    bundle = decode_file(path)
    probe = bundle.table("probes").to_pylist()[0]
    assert (probe["probe_id"], probe["probe_id_source"]) == (None, "A-1")
    assert any("probe_id 'A-1' is not a number" in note for note in bundle.notes)


def test_random_byte_damage_never_escapes_as_a_traceback(realdata, tmp_path):
    """Corrupt random bytes of a real file: decoding either works or raises NplakeError."""
    data = nwb(realdata, JANELIA).read_bytes()
    rng = np.random.default_rng(20)
    path = tmp_path / JANELIA
    for _ in range(25):
        damaged = bytearray(data)
        offset, size = int(rng.integers(0, len(data) - 64)), int(rng.integers(1, 64))
        damaged[offset : offset + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(damaged))
        with contextlib.suppress(NplakeError):
            consume(decode_file(path))
