"""Ground truth of a synthetic session as lake rows: what a decoder of its files must produce.

Tables carry `session_id` and the lake's column names (schemas/tables.py), so
`SessionBundle(session.session_id, truth_tables(session)).validate()` accepts them. Values are
exactly what `nwb.write_nwb` puts in the file; the conventions that are not plain NWB:

- probes: `sampling_rate` and `lfp_sampling_rate` are written as `key=value` pairs in the
  description of the probe's Device and ElectrodeGroup (see `nwb.probe_description`);
- sessions: `session_type` is `/general/stimulus` (NWBFile.stimulus_notes), `rig` is
  `/general/data_collection`;
- channels: `channel` is the electrodes column `local_index`, `channel_id` the electrodes id;
  the NWB columns rel_x/rel_y (= horizontal/vertical position) are kept as extra columns;
- units: `peak_channel`/`peak_channel_id` follow the units `electrodes` region (one row each);
  `firing_rate` = spike_count / duration_s (duration of the recording, not of the task);
- licks: `source` is the name of the NWB series, "licks"; rewards and running speed carry no
  source (left to the decoder);
- intervals: `/intervals/epochs`, `/intervals/invalid_times` and the optotagging pulses
  (`module` optotagging); `tags` is null where a table has none; stimulus_presentations: the
  `*_presentations` table.

Every table is in the lake's sort order (`TableSpec.sort_by`), e.g. intervals by (name, row).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ingest.synth._units import METRIC_NAMES, WAVEFORM_RATE_HZ, WAVEFORM_SAMPLES
from ingest.synth.tracking import make_tracking

if TYPE_CHECKING:
    from ingest.synth.model import SyntheticSession

#: Stimulus name of the natural-image presentations; the interval table is named NAME + suffix.
STIMULUS_NAME = "Natural_Images_Lum_Matched_set_ophys_{image_set}_2019"
PRESENTATIONS_SUFFIX = "_presentations"
#: Trial columns after start/stop time, in the order they are written.
TRIAL_COLUMNS: tuple[str, ...] = (
    "initial_image_name",
    "change_image_name",
    "is_change",
    "change_time",
    "go",
    "catch",
    "hit",
    "miss",
    "false_alarm",
    "correct_reject",
    "aborted",
    "auto_rewarded",
    "response_time",
    "reward_time",
    "reward_volume",
    "trial_length",
)
#: Presentation columns after start/stop time, in the order they are written.
PRESENTATION_COLUMNS: tuple[str, ...] = (
    "stimulus_name",
    "image_name",
    "is_change",
    "flashes_since_change",
    "omitted",
    "start_frame",
)
MANUFACTURER = "imec"
PROBE_MODEL = "Neuropixels 1.0"
LICK_SOURCE = "licks"


def presentations_name(session: SyntheticSession) -> str:
    """Name of the session's stimulus presentations interval table."""
    return stimulus_name(session) + PRESENTATIONS_SUFFIX


def stimulus_name(session: SyntheticSession) -> str:
    """The natural-image stimulus name of the session's image set."""
    return STIMULUS_NAME.format(image_set=session.image_set)


def truth_tables(session: SyntheticSession) -> dict[str, pa.Table]:
    """Every lake table of the session, as expected from a faithful decoder of its NWB file."""
    return {
        "sessions": sessions_table(session),
        "probes": probes_table(session),
        "channels": channels_table(session),
        "units": units_table(session),
        "spikes": spikes_table(session),
        "waveforms": waveforms_table(session),
        "trials": trials_table(session),
        "licks": licks_table(session),
        "rewards": rewards_table(session),
        "running_speed": running_speed_table(session),
        "intervals": intervals_table(session),
        "stimulus_presentations": stimulus_presentations_table(session),
    }


def _sid(session: SyntheticSession, n: int) -> pa.Array:
    return pa.array([session.session_id] * n, pa.string())


def _utc(t) -> pa.Array:
    return pa.array([t], pa.timestamp("us", tz="UTC"))


def sessions_table(session: SyntheticSession) -> pa.Table:
    """One row: metadata and subject."""
    s, subj = session, session.subject
    return pa.table(
        {
            "session_id": _sid(s, 1),
            "identifier": [s.session_id],
            "session_start_time": _utc(s.session_start_time),
            "session_description": [s.session_description],
            "session_type": [s.session_type],
            "rig": [s.rig],
            "experimenter": pa.array([list(s.experimenter)], pa.list_(pa.string())),
            "institution": [s.institution],
            "lab": [s.lab],
            "subject_id": [subj.subject_id],
            "species": [subj.species],
            "sex": [subj.sex],
            "genotype": [subj.genotype],
            "strain": [subj.strain],
            "date_of_birth": _utc(subj.date_of_birth),
            "age": [subj.age(s.session_start_time)],
            "age_in_days": pa.array([float(subj.age_days(s.session_start_time))], pa.float64()),
        }
    )


def probe_description(session: SyntheticSession, i: int) -> str:
    """Description of probe `i` as written on its Device and ElectrodeGroup (rates as key=value)."""
    p = session.probes
    return (
        f"Neuropixels 1.0 probe {p.name[i]} targeting {p.target[i]}; "
        f"probe_id={int(p.probe_id[i])}; sampling_rate={float(p.sampling_rate[i])!r}; "
        f"lfp_sampling_rate={float(p.lfp_sampling_rate[i])!r}; has_lfp_data=False"
    )


def probes_table(session: SyntheticSession) -> pa.Table:
    """One row per probe (= NWB electrode group and device of the same name)."""
    p = session.probes
    n = len(p)
    return pa.table(
        {
            "session_id": _sid(session, n),
            "probe": pa.array(p.name.tolist(), pa.string()),
            "device": pa.array(p.name.tolist(), pa.string()),
            "description": [probe_description(session, i) for i in range(n)],
            "location": pa.array(p.target.tolist(), pa.string()),
            "manufacturer": [MANUFACTURER] * n,
            "model": [PROBE_MODEL] * n,
            "sampling_rate": pa.array(p.sampling_rate, pa.float64()),
            "lfp_sampling_rate": pa.array(p.lfp_sampling_rate, pa.float64()),
        }
    )


def channels_table(session: SyntheticSession) -> pa.Table:
    """One row per NWB electrode."""
    c = session.channels
    return pa.table(
        {
            "session_id": _sid(session, len(c)),
            "probe": pa.array(session.probes.name[c.probe_index].tolist(), pa.string()),
            "channel": pa.array(c.local_index, pa.int64()),
            "channel_id": pa.array(c.channel_id, pa.int64()),
            "probe_horizontal_position": pa.array(c.horizontal, pa.float64()),
            "probe_vertical_position": pa.array(c.vertical, pa.float64()),
            "ccf_ap": pa.array(c.ccf_ap, pa.float64()),
            "ccf_dv": pa.array(c.ccf_dv, pa.float64()),
            "ccf_ml": pa.array(c.ccf_ml, pa.float64()),
            "structure_acronym": pa.array(c.structure.tolist(), pa.string()),
            "valid": pa.array(c.valid, pa.bool_()),
            "rel_x": pa.array(c.horizontal, pa.float64()),
            "rel_y": pa.array(c.vertical, pa.float64()),
        }
    )


def units_table(session: SyntheticSession) -> pa.Table:
    """One row per unit: ids, placement, quality, spike count and every Allen metric."""
    u = session.units
    n = len(u)
    cols: dict[str, pa.Array] = {
        "session_id": _sid(session, n),
        "unit_id": pa.array(u.unit_id, pa.int64()),
        "probe": pa.array(session.unit_probe_names().tolist(), pa.string()),
        "cluster_id": pa.array(u.cluster_id, pa.int64()),
        "peak_channel": pa.array(u.peak_channel, pa.int64()),
        "peak_channel_id": pa.array(session.channels.channel_id[u.peak_row], pa.int64()),
        "quality": pa.array(u.quality.tolist(), pa.string()),
        "spike_count": pa.array(session.spikes.counts, pa.int64()),
        "firing_rate": pa.array(u.metrics["firing_rate"], pa.float64()),
    }
    for name in METRIC_NAMES:
        if name != "firing_rate":
            cols[name] = pa.array(u.metrics[name], pa.float64())
    return pa.table(cols)


def spikes_table(session: SyntheticSession) -> pa.Table:
    """One row per spike, sorted by (unit_id, time) (= file order)."""
    sp = session.spikes
    unit_id = np.repeat(session.units.unit_id, sp.counts)
    return pa.table(
        {
            "session_id": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(len(unit_id), dtype=np.int32)), pa.array([session.session_id])
            ),
            "unit_id": pa.array(unit_id, pa.int64()),
            "time": pa.array(sp.times, pa.float64()),
            "amplitude": pa.array(sp.amplitudes, pa.float64()),
        }
    )


def waveforms_table(session: SyntheticSession) -> pa.Table:
    """One row per unit: single-channel mean and sd waveforms (82 samples, float32, volts)."""
    u = session.units
    n = len(u)
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * WAVEFORM_SAMPLES)

    def lists(a: np.ndarray) -> pa.Array:
        return pa.ListArray.from_arrays(offsets, pa.array(a.reshape(-1), pa.float32()))

    return pa.table(
        {
            "session_id": _sid(session, n),
            "unit_id": pa.array(u.unit_id, pa.int64()),
            "waveform_mean": lists(u.waveform_mean),
            "waveform_sd": lists(u.waveform_sd),
            "n_samples": pa.array(np.full(n, WAVEFORM_SAMPLES), pa.int64()),
            "n_channels": pa.array(np.ones(n, dtype=np.int64), pa.int64()),
            "sampling_rate": pa.array(np.full(n, WAVEFORM_RATE_HZ), pa.float64()),
        }
    )


def trials_table(session: SyntheticSession) -> pa.Table:
    """One row per trial with every task column; lick_times is a list column."""
    t = session.task.trials
    n = len(t)
    cols: dict[str, pa.Array] = {
        "session_id": _sid(session, n),
        "trial_index": pa.array(np.arange(n), pa.int64()),
        "start_time": pa.array(t.start_time, pa.float64()),
        "stop_time": pa.array(t.stop_time, pa.float64()),
    }
    for name in TRIAL_COLUMNS:
        values = getattr(t, name)
        cols[name] = pa.array(values.tolist() if values.dtype.kind == "U" else values)
    offsets = pa.array(np.concatenate([[0], t.lick_ends]).astype(np.int32))
    cols["lick_times"] = pa.ListArray.from_arrays(offsets, pa.array(t.lick_times, pa.float64()))
    return pa.table(cols)


def licks_table(session: SyntheticSession) -> pa.Table:
    """One row per lick of `/processing/licking/licks`."""
    times = session.task.lick_times
    return pa.table(
        {
            "session_id": _sid(session, len(times)),
            "time": pa.array(times, pa.float64()),
            "source": [LICK_SOURCE] * len(times),
        }
    )


def rewards_table(session: SyntheticSession) -> pa.Table:
    """One row per reward of `/processing/rewards`."""
    task = session.task
    return pa.table(
        {
            "session_id": _sid(session, len(task.reward_times)),
            "time": pa.array(task.reward_times, pa.float64()),
            "volume": pa.array(task.reward_volume, pa.float64()),
            "auto_rewarded": pa.array(task.reward_auto, pa.bool_()),
        }
    )


def running_speed_table(session: SyntheticSession) -> pa.Table:
    """One row per sample of `/processing/running/speed`."""
    task = session.task
    return pa.table(
        {
            "session_id": _sid(session, len(task.running_times)),
            "time": pa.array(task.running_times, pa.float64()),
            "speed": pa.array(task.running_speed, pa.float64()),
        }
    )


def intervals_table(session: SyntheticSession) -> pa.Table:
    """Rows of epochs and invalid_times, their columns side by side."""
    parts = [
        _tagged("epochs", session.task.epochs),
        _tagged("invalid_times", session.invalid_times),
        _optotagging(session),
    ]
    table = pa.concat_tables(parts, promote_options="permissive")
    table = table.sort_by([("name", "ascending"), ("row", "ascending")])  # the lake's order
    return table.add_column(0, "session_id", _sid(session, table.num_rows))


def _optotagging(session: SyntheticSession) -> pa.Table:
    """The laser pulses of `/processing/optotagging/optogenetic_stimulation`."""
    t = make_tracking(session)
    n = len(t.opto_start)
    return pa.table(
        {
            "name": ["optogenetic_stimulation"] * n,
            "row": pa.array(np.arange(n), pa.int64()),
            "start_time": pa.array(t.opto_start, pa.float64()),
            "stop_time": pa.array(t.opto_stop, pa.float64()),
            "module": ["optotagging"] * n,
            "condition": pa.array(t.opto_condition.tolist(), pa.string()),
            "level": pa.array(t.opto_level, pa.float64()),
            "duration": pa.array(t.opto_stop - t.opto_start, pa.float64()),
        }
    )


def stimulus_presentations_table(session: SyntheticSession) -> pa.Table:
    """Rows of the natural-image presentations table, typed as written."""
    table = _presentations(session)
    return table.add_column(0, "session_id", _sid(session, table.num_rows))


def _tagged(name: str, iv) -> pa.Table:
    n = len(iv)
    return pa.table(
        {
            "name": [name] * n,
            "row": pa.array(np.arange(n), pa.int64()),
            "start_time": pa.array(iv.start_time, pa.float64()),
            "stop_time": pa.array(iv.stop_time, pa.float64()),
            "tags": pa.array([list(t) for t in iv.tags], pa.list_(pa.string())),
        }
    )


def _presentations(session: SyntheticSession) -> pa.Table:
    p = session.task.presentations
    n = len(p)
    return pa.table(
        {
            "name": [presentations_name(session)] * n,
            "row": pa.array(np.arange(n), pa.int64()),
            "start_time": pa.array(p.start_time, pa.float64()),
            "stop_time": pa.array(p.stop_time, pa.float64()),
            "stimulus_name": [stimulus_name(session)] * n,
            "image_name": pa.array(p.image_name.tolist(), pa.string()),
            "is_change": pa.array(p.is_change, pa.bool_()),
            "flashes_since_change": pa.array(p.flashes_since_change, pa.int64()),
            "omitted": pa.array(p.omitted, pa.bool_()),
            "start_frame": pa.array(p.start_frame, pa.int64()),
        }
    )
