"""NWB files for the decoder tests: the real files, damaged copies, files built with h5py.

The Allen-style file has the layout of an Allen VBN NWB file (ndx-aibs-ecephys and friends).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import h5py
import numpy as np

from ingest.base import DecodeOptions
from ingest.nwb import NWBDecoder
from schemas import SessionBundle

JANELIA = "sub-anm369963_ses-20170228.nwb"
OGEN = "sub_anm00239123_ses_20170627T093549_ecephys_and_ogen.nwb"
HUMAN = "sub-4_ses-4_ecephys+image.nwb"
UTC = dt.timezone.utc


def nwb(realdata: Path, name: str) -> Path:
    return realdata / "nwb" / name


def decode_file(path: Path, **options) -> SessionBundle:
    return NWBDecoder().decode(path, DecodeOptions(**options))


def consume(bundle: SessionBundle) -> int:
    """Read every stream of the bundle to the end; return the number of spikes."""
    return sum(batch.num_rows for batch in bundle.batches("spikes"))


def copy(realdata: Path, tmp_path: Path, name: str = JANELIA) -> Path:
    target = tmp_path / name
    shutil.copyfile(nwb(realdata, name), target)
    target.chmod(0o644)
    return target


def replace(fh: h5py.File, name: str, data) -> None:
    del fh[name]
    fh[name] = data


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
