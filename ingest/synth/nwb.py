"""Write a SyntheticSession as a standard NWB 2.x file with pynwb, every table built column-wise.

Layout (Allen VBN names where they exist; no extension, so everything validates as core NWB):

- `/general`: session_id, experimenter, institution, lab, `stimulus` (= session_type),
  `data_collection` (= rig), subject (id, species, sex, genotype, strain, age, date_of_birth)
- `/general/device_models/Neuropixels 1.0` (manufacturer imec), and per probe (probeA, ...) a
  Device `/general/devices/<probe>` of that model and an ElectrodeGroup
  `/general/extracellular_ephys/<probe>`; both descriptions carry
  `probe_id=…; sampling_rate=…; lfp_sampling_rate=…; has_lfp_data=False` (see
  `truth.probe_description`); the group's location is the cortical target
- `/general/extracellular_ephys/electrodes`: id = channel id; x, y, z (CCF AP, DV, ML µm),
  location (structure acronym), group, group_name, rel_x, rel_y (position on the probe) and the
  Allen extras probe_vertical_position, probe_horizontal_position, local_index, valid_data
- `/units`: id = unit id; spike_times and spike_amplitudes (ragged, volts), electrodes (a
  region onto the peak channel's electrode row), electrode_group, waveform_mean and
  waveform_sd (units × 82, float32, volts, 30 kHz), peak_channel_id, cluster_id, quality and
  the Allen metrics (`_units.METRIC_NAMES`)
- `/intervals/trials` (ragged lick_times), `/intervals/epochs` and `/intervals/invalid_times`
  (tags), `/intervals/<stimulus>_presentations`
- `/processing/licking/licks`, `/processing/rewards/{autorewarded,volume}`,
  `/processing/running/speed`: TimeSeries with explicit timestamps
- position, eye tracking, pupil and optotagging (`tracking.py`): `/acquisition/Position`,
  `/acquisition/EyeTracking`, `/acquisition/PupilTracking`,
  `/processing/optotagging/optogenetic_stimulation`, `/general/optogenetics`
- `/processing/nplake` (the nplake module, docs/export.md): the lake columns NWB has no place
  for — `sessions` (session_id, rig) and `probes` (probe, sampling_rate, lfp_sampling_rate) —
  so the file decodes to `truth_tables()`; manufacturer and model are in the DeviceModel

With `compression="gzip"`, every dataset of 10,000 or more elements is written through
`H5DataIO(compression="gzip", compression_opts=4, shuffle=True)` in chunks of about 4 MiB
along the first axis. Without compression, hdmf's defaults apply: table columns are chunked
(~4 MiB, hdmf makes them expandable), TimeSeries datasets are contiguous.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ingest.synth._units import METRIC_NAMES, WAVEFORM_RATE_HZ
from ingest.synth.tracking import add_tracking
from ingest.synth.truth import (
    LICK_SOURCE,
    MANUFACTURER,
    PRESENTATION_COLUMNS,
    PROBE_MODEL,
    TRIAL_COLUMNS,
    presentations_name,
    probe_description,
    stimulus_name,
)

if TYPE_CHECKING:
    from pynwb import NWBFile
    from pynwb.ecephys import ElectrodeGroup

    from ingest.synth.model import SyntheticSession

Compression = Literal[None, "gzip"]

#: Datasets at least this long are compressed (when compression is asked for).
COMPRESS_MIN_ELEMENTS = 10_000
#: Target bytes per chunk of compressed datasets (hdmf's default target for its own chunking).
CHUNK_BYTES = 4 * 1024 * 1024
GZIP_LEVEL = 4

_METRIC_DESCRIPTIONS = {
    "snr": "signal-to-noise ratio of the mean waveform",
    "isi_violations": "rate of refractory-period violations relative to chance",
    "amplitude_cutoff": "estimated fraction of spikes missed below the detection threshold",
    "presence_ratio": "fraction of 100 equal blocks of the session with at least one spike",
    "firing_rate": "spike count / recording duration (Hz)",
    "amplitude": "peak-to-trough amplitude of the mean waveform (µV)",
    "waveform_duration": "trough-to-peak time (ms)",
    "waveform_halfwidth": "width of the trough at half height (ms)",
    "PT_ratio": "peak-to-trough ratio",
}


def write_nwb(
    session: SyntheticSession, path: str | os.PathLike, *, compression: Compression = None
) -> Path:
    """Write `session` as an NWB file at `path` and return the path.

    Examples
    --------
    >>> from ingest.synth import generate_session
    >>> write_nwb(generate_session("1000000001", seed=1), "x.nwb")  # doctest: +SKIP
    PosixPath('x.nwb')
    """
    from pynwb import NWBHDF5IO

    if compression not in (None, "gzip"):
        msg = f"compression must be None or 'gzip', not {compression!r}"
        raise ValueError(msg)
    out = Path(path)
    nwbfile = build_nwbfile(session, compression=compression)
    with NWBHDF5IO(str(out), "w") as io:
        io.write(nwbfile)
    return out


def build_nwbfile(session: SyntheticSession, *, compression: Compression = None) -> NWBFile:
    """The in-memory pynwb NWBFile of `session` (arrays are referenced, not copied)."""
    from pynwb import NWBFile
    from pynwb.file import Subject

    pack = _Packer(compression)
    subj = session.subject
    nwbfile = NWBFile(
        session_description=session.session_description,
        identifier=session.session_id,
        session_start_time=session.session_start_time,
        session_id=session.session_id,
        experimenter=list(session.experimenter),
        institution=session.institution,
        lab=session.lab,
        stimulus_notes=session.session_type,
        data_collection=session.rig,
        keywords=["Neuropixels", "visual behavior", "change detection", "synthetic"],
        notes=f"synthetic session: nplake ingest.synth, seed={session.seed}, size={session.size}",
        subject=Subject(
            subject_id=subj.subject_id,
            species=subj.species,
            sex=subj.sex,
            genotype=subj.genotype,
            strain=subj.strain,
            age=subj.age(session.session_start_time),
            date_of_birth=subj.date_of_birth,
        ),
    )
    groups = _add_probes(nwbfile, session)
    nwbfile.electrodes = _electrodes(session, groups)
    nwbfile.units = _units(session, groups, nwbfile.electrodes, pack)
    nwbfile.trials = _trials(session, pack)
    nwbfile.epochs = _tagged_intervals("epochs", "Named epochs of the session", session.task.epochs)
    nwbfile.invalid_times = _tagged_intervals(
        "invalid_times", "Intervals to leave out of analyses", session.invalid_times
    )
    nwbfile.add_time_intervals(_presentations(session, pack))
    _add_behavior(nwbfile, session, pack)
    add_tracking(nwbfile, session)
    _add_nplake(nwbfile, session)
    return nwbfile


def _add_nplake(nwbfile: NWBFile, session: SyntheticSession) -> None:
    """The nplake module: the session's rig and the probes' nominal sampling rates."""
    import pyarrow as pa

    from ingest.nwb.write import add_nplake_module

    p = session.probes
    tables = {
        "sessions": pa.table({"session_id": [session.session_id], "rig": [session.rig]}),
        "probes": pa.table(
            {
                "probe": pa.array(p.name.tolist(), pa.string()),
                "sampling_rate": pa.array(p.sampling_rate, pa.float64()),
                "lfp_sampling_rate": pa.array(p.lfp_sampling_rate, pa.float64()),
            }
        ),
    }
    descriptions = {
        "sessions": {"session_id": "session id in the lake", "rig": "rig (equipment) name"},
        "probes": {
            "probe": "probe (electrode group) name",
            "sampling_rate": "nominal spike-band sampling rate of the probe clock (Hz)",
            "lfp_sampling_rate": "nominal LFP-band sampling rate (Hz)",
        },
    }
    add_nplake_module(nwbfile, tables, descriptions=descriptions)


class _Packer:
    """Wraps large arrays in H5DataIO when compressing; leaves them as they are otherwise."""

    def __init__(self, compression: Compression) -> None:
        self.compression = compression

    def __call__(self, data: np.ndarray) -> Any:
        data = np.asarray(data)
        if self.compression is None or data.size < COMPRESS_MIN_ELEMENTS:
            return data
        from hdmf.backends.hdf5 import H5DataIO

        bytes_per_row = data.itemsize * (data.size // data.shape[0])
        rows = max(1, min(data.shape[0], CHUNK_BYTES // bytes_per_row))
        return H5DataIO(
            data,
            compression=self.compression,
            compression_opts=GZIP_LEVEL,
            shuffle=True,
            chunks=(rows, *data.shape[1:]),
        )


def _add_probes(nwbfile: NWBFile, session: SyntheticSession) -> list[ElectrodeGroup]:
    """One Device and one ElectrodeGroup per probe, both named after the probe."""
    model = nwbfile.create_device_model(
        name=PROBE_MODEL,
        manufacturer=MANUFACTURER,
        description="Neuropixels 1.0: 384 recording channels, 30 kHz AP and 2.5 kHz LFP bands",
    )
    groups = []
    for i, name in enumerate(session.probes.name.tolist()):
        description = probe_description(session, i)
        device = nwbfile.create_device(name=name, description=description, model=model)
        groups.append(
            nwbfile.create_electrode_group(
                name=name,
                description=description,
                location=str(session.probes.target[i]),
                device=device,
            )
        )
    return groups


def _electrodes(session: SyntheticSession, groups: list[ElectrodeGroup]):
    """The electrodes table, column by column."""
    from hdmf.common import ElementIdentifiers, VectorData
    from pynwb.ecephys import ElectrodesTable

    c = session.channels
    names = session.probes.name[c.probe_index].tolist()

    def col(name: str, description: str, data: Any) -> VectorData:
        return VectorData(name=name, description=description, data=data)

    columns = [
        col("location", "CCF structure acronym of the channel", c.structure.tolist()),
        col("group", "electrode group (probe) of the channel", [groups[i] for i in c.probe_index]),
        col("group_name", "name of the electrode group", names),
        col("x", "CCF anterior-posterior coordinate (µm)", c.ccf_ap),
        col("y", "CCF dorsal-ventral coordinate (µm)", c.ccf_dv),
        col("z", "CCF medial-lateral coordinate (µm)", c.ccf_ml),
        col("rel_x", "horizontal position on the probe (µm)", c.horizontal),
        col("rel_y", "vertical position on the probe (µm)", c.vertical),
        col("probe_vertical_position", "vertical position on the probe (µm)", c.vertical),
        col("probe_horizontal_position", "horizontal position on the probe (µm)", c.horizontal),
        col("local_index", "channel index on its probe (0 = tip)", c.local_index),
        col("valid_data", "whether the channel's data are usable", c.valid),
    ]
    return ElectrodesTable(id=ElementIdentifiers(name="id", data=c.channel_id), columns=columns)


def _units(session: SyntheticSession, groups: list[ElectrodeGroup], electrodes, pack: _Packer):
    """The units table, column by column (never add_unit)."""
    from hdmf.common import DynamicTableRegion, ElementIdentifiers, VectorData, VectorIndex
    from pynwb.misc import Units

    u, sp = session.units, session.spikes
    n = len(u)
    spike_times = VectorData(
        name="spike_times", description="spike times (s) on the master clock", data=pack(sp.times)
    )
    amplitudes = VectorData(
        name="spike_amplitudes", description="amplitude of each spike (V)", data=pack(sp.amplitudes)
    )
    region = DynamicTableRegion(
        name="electrodes",
        description="the peak channel of the unit",
        data=u.peak_row,
        table=electrodes,
    )
    columns: list[Any] = [
        spike_times,
        VectorIndex(name="spike_times_index", data=pack(sp.ends), target=spike_times),
        amplitudes,
        VectorIndex(name="spike_amplitudes_index", data=pack(sp.ends), target=amplitudes),
        region,
        VectorIndex(name="electrodes_index", data=np.arange(1, n + 1), target=region),
        VectorData(
            name="electrode_group",
            description="the probe of the unit",
            data=[groups[i] for i in u.probe_index],
        ),
        VectorData(name="waveform_mean", description="mean waveform", data=pack(u.waveform_mean)),
        VectorData(
            name="waveform_sd", description="waveform standard deviation", data=pack(u.waveform_sd)
        ),
        VectorData(
            name="peak_channel_id",
            description="electrode id of the peak channel",
            data=session.channels.channel_id[u.peak_row],
        ),
        VectorData(name="cluster_id", description="Kilosort cluster id", data=u.cluster_id),
        VectorData(name="quality", description="curation label", data=u.quality.tolist()),
    ]
    for name in METRIC_NAMES:
        description = _METRIC_DESCRIPTIONS.get(name, f"Allen quality metric {name}")
        columns.append(VectorData(name=name, description=description, data=u.metrics[name]))
    return Units(
        name="units",
        id=ElementIdentifiers(name="id", data=u.unit_id),
        columns=columns,
        description="sorted units (synthetic), ids increasing in file order",
        electrode_table=electrodes,
        waveform_rate=WAVEFORM_RATE_HZ,
        waveform_unit="volts",
    )


def _interval_columns(start: np.ndarray, stop: np.ndarray, pack: _Packer) -> list[Any]:
    from hdmf.common import VectorData

    return [
        VectorData(name="start_time", description="start time (s)", data=pack(start)),
        VectorData(name="stop_time", description="stop time (s)", data=pack(stop)),
    ]


def _trials(session: SyntheticSession, pack: _Packer):
    """The trials table with every task column and the ragged lick_times."""
    from hdmf.common import ElementIdentifiers, VectorData, VectorIndex
    from pynwb.epoch import TimeIntervals

    t = session.task.trials
    columns = _interval_columns(t.start_time, t.stop_time, pack)
    for name in TRIAL_COLUMNS:
        values = getattr(t, name)
        data = values.tolist() if values.dtype.kind == "U" else values
        columns.append(VectorData(name=name, description=f"trial {name}", data=data))
    licks = VectorData(name="lick_times", description="licks in the trial (s)", data=t.lick_times)
    columns += [licks, VectorIndex(name="lick_times_index", data=t.lick_ends, target=licks)]
    return TimeIntervals(
        name="trials",
        description="change-detection trials",
        id=ElementIdentifiers(name="id", data=np.arange(len(t))),
        columns=columns,
    )


def _tagged_intervals(name: str, description: str, iv):
    """A TimeIntervals table with start, stop and ragged tags."""
    from hdmf.common import ElementIdentifiers, VectorData, VectorIndex
    from pynwb.epoch import TimeIntervals

    columns = _interval_columns(iv.start_time, iv.stop_time, _Packer(None))
    flat = [tag for row in iv.tags for tag in row]
    ends = np.cumsum([len(row) for row in iv.tags])
    tags = VectorData(name="tags", description="user-defined tags", data=flat)
    columns += [tags, VectorIndex(name="tags_index", data=ends, target=tags)]
    return TimeIntervals(
        name=name,
        description=description,
        id=ElementIdentifiers(name="id", data=np.arange(len(iv))),
        columns=columns,
    )


def _presentations(session: SyntheticSession, pack: _Packer):
    """The natural-image presentations table (one row per flash)."""
    from hdmf.common import ElementIdentifiers, VectorData
    from pynwb.epoch import TimeIntervals

    p = session.task.presentations
    values = {
        "stimulus_name": [stimulus_name(session)] * len(p),
        "image_name": p.image_name.tolist(),
        "is_change": p.is_change,
        "flashes_since_change": p.flashes_since_change,
        "omitted": p.omitted,
        "start_frame": p.start_frame,
    }
    columns = _interval_columns(p.start_time, p.stop_time, pack)
    for name in PRESENTATION_COLUMNS:
        columns.append(VectorData(name=name, description=name, data=values[name]))
    return TimeIntervals(
        name=presentations_name(session),
        description="natural image flashes of the change-detection task",
        id=ElementIdentifiers(name="id", data=np.arange(len(p))),
        columns=columns,
    )


def _add_behavior(nwbfile: NWBFile, session: SyntheticSession, pack: _Packer) -> None:
    """Licks, rewards and running speed as Allen-named processing modules."""
    from pynwb import TimeSeries

    task = session.task
    licking = nwbfile.create_processing_module("licking", "lick detection")
    licking.add(
        TimeSeries(
            name=LICK_SOURCE,
            data=pack(task.lick_frames),
            timestamps=pack(task.lick_times),
            unit="frame",
            description="licks; data = index of the display frame at each lick",
        )
    )
    rewards = nwbfile.create_processing_module("rewards", "water rewards")
    rewards.add(
        TimeSeries(
            name="autorewarded",
            data=task.reward_auto,
            timestamps=task.reward_times,
            unit="bool",
            description="whether the reward was given automatically",
        )
    )
    rewards.add(
        TimeSeries(
            name="volume",
            data=task.reward_volume,
            timestamps=task.reward_times,
            unit="mL",
            description="reward volume",
        )
    )
    running = nwbfile.create_processing_module("running", "running on the wheel")
    running.add(
        TimeSeries(
            name="speed",
            data=pack(task.running_speed),
            timestamps=pack(task.running_times),
            unit="cm/s",
            description="running speed at each display frame",
        )
    )
