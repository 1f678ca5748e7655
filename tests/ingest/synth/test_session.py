"""Synthetic sessions: determinism, model invariants, edge cases, and the NWB file read back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pynwb import NWBHDF5IO, validate

from ingest.synth import (
    GENOTYPES,
    SizeSpec,
    SyntheticSession,
    corpus_sessions,
    generate_session,
    truth_tables,
    write_corpus,
    write_nwb,
)
from ingest.synth._task import SYNC_RATE_HZ
from ingest.synth._units import METRIC_NAMES
from ingest.synth.truth import presentations_name
from schemas import SessionBundle

SID = "1064644573"


@pytest.fixture(scope="module")
def session() -> SyntheticSession:
    return generate_session(SID, seed=7, size="tiny")


@pytest.fixture(scope="module")
def truth(session: SyntheticSession) -> dict[str, pa.Table]:
    return truth_tables(session)


@pytest.fixture(scope="module")
def nwb_path(session: SyntheticSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nwb(session, tmp_path_factory.mktemp("nwb") / "plain.nwb")


@pytest.fixture(scope="module")
def gzip_path(session: SyntheticSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nwb(session, tmp_path_factory.mktemp("nwb") / "gzip.nwb", compression="gzip")


def _arrays(obj, prefix: str = "") -> dict[str, object]:
    """Every array and scalar leaf of a (nested) dataclass, by dotted path."""
    out: dict[str, object] = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        name = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            out.update(_arrays(value, name + "."))
        elif isinstance(value, dict):
            out.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            out[name] = value
    return out


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_arrays(session: SyntheticSession) -> None:
    again = generate_session(SID, seed=7, size="tiny")
    left, right = _arrays(session), _arrays(again)
    assert left.keys() == right.keys()
    assert len(left) > 60
    for name, value in left.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == right[name].dtype, name
            np.testing.assert_array_equal(value, right[name], err_msg=name)
        else:
            assert value == right[name], name


def test_different_seed_gives_different_session(session: SyntheticSession) -> None:
    other = generate_session(SID, seed=8, size="tiny")
    assert other.units.unit_id[0] != session.units.unit_id[0]
    assert len(other.spikes.times) != len(session.spikes.times)
    assert not np.array_equal(other.task.lick_times, session.task.lick_times)
    assert other.summary()["spike_time_sum"] != session.summary()["spike_time_sum"]


# --------------------------------------------------------------------------- model invariants


def test_tiny_preset_sizes(session: SyntheticSession) -> None:
    s = session.summary()
    assert s["n_probes"] == 2
    assert s["n_channels"] == 64
    assert s["n_units"] == 20
    assert 10_000 <= s["n_spikes"] <= 30_000
    assert s["n_trials"] == 20
    assert s["duration_s"] == 60.0
    assert session.probes.name.tolist() == ["probeA", "probeB"]
    assert session.subject.species == "Mus musculus"
    assert session.subject.genotype in GENOTYPES
    assert session.session_start_time.tzinfo is not None
    assert re.fullmatch(r"EPHYS_1_images_[GH]_[35]uL_reward", session.session_type)


def test_spikes_sorted_within_units_and_inside_session(session: SyntheticSession) -> None:
    sp = session.spikes
    assert sp.times.dtype == np.float64
    assert sp.amplitudes.dtype == np.float64
    assert sp.ends[-1] == len(sp.times) == len(sp.amplitudes)
    unit = np.repeat(np.arange(len(session.units)), sp.counts)
    same_unit = unit[1:] == unit[:-1]
    assert np.all(np.diff(sp.times)[same_unit] > 0)
    assert sp.times.min() >= 0.0
    assert sp.times.max() < session.duration_s


def test_spikes_lie_on_the_probe_sample_grid(session: SyntheticSession) -> None:
    sp = session.spikes
    rate = session.probes.sampling_rate[np.repeat(session.units.probe_index, sp.counts)]
    samples = np.round(sp.times * rate)
    np.testing.assert_array_equal(samples / rate, sp.times)


def test_behaviour_times_lie_on_the_sync_grid(session: SyntheticSession) -> None:
    task = session.task
    for name, t in {
        "frames": task.frame_times,
        "licks": task.lick_times,
        "rewards": task.reward_times,
        "trial starts": task.trials.start_time,
        "changes": task.change_times,
    }.items():
        counts = np.round(t * SYNC_RATE_HZ)
        np.testing.assert_array_equal(counts / SYNC_RATE_HZ, t, err_msg=name)
    assert np.all(np.diff(task.frame_times) > 0.016)
    assert np.all(np.diff(task.frame_times) < 0.0172)


def test_unit_ids_increase_and_cluster_ids_unique_per_probe(session: SyntheticSession) -> None:
    u = session.units
    assert np.all(np.diff(u.unit_id) > 0)
    assert u.unit_id[0] >= 1_157_000_000
    for p in range(len(session.probes)):
        ids = u.cluster_id[u.probe_index == p]
        assert len(np.unique(ids)) == len(ids)
    assert set(u.quality.tolist()) <= {"good", "noise"}
    assert np.all(session.channels.valid[u.peak_row])
    np.testing.assert_array_equal(session.channels.local_index[u.peak_row], u.peak_channel)
    np.testing.assert_array_equal(session.channels.probe_index[u.peak_row], u.probe_index)


def test_channel_geometry_is_a_neuropixels_checkerboard(session: SyntheticSession) -> None:
    c = session.channels
    first = slice(0, 4)
    assert c.horizontal[first].tolist() == [43.0, 11.0, 59.0, 27.0]
    assert c.vertical[first].tolist() == [20.0, 20.0, 40.0, 40.0]
    assert c.vertical[31] == 320.0
    assert np.all(np.diff(c.channel_id) > 0)
    assert (~c.valid).sum() >= 2  # at least one bad channel per probe


def test_each_probe_goes_cortex_then_hippocampus_then_deep(session: SyntheticSession) -> None:
    c = session.channels
    for p in range(len(session.probes)):
        s = c.structure[c.probe_index == p]  # tip first
        depth_rank = {"VIS": 2, "CA1": 1, "CA3": 1, "DG": 1}
        ranks = [depth_rank.get(x[:3] if x.startswith("VIS") else x, 0) for x in s if x != "root"]
        assert ranks == sorted(ranks), s
        assert s[-1] == "root"
        assert any(x.startswith("VIS") for x in s)


def test_firing_rate_is_spike_count_over_duration(session: SyntheticSession, truth) -> None:
    units = truth["units"]
    count = _column(units, "spike_count")
    np.testing.assert_array_equal(
        _column(units, "firing_rate"), count / np.float64(session.duration_s)
    )
    np.testing.assert_array_equal(count, session.spikes.counts)


def test_change_aligned_response_of_responsive_units(session: SyntheticSession) -> None:
    rows = np.flatnonzero(session.units.change_gain > 0)
    changes = session.task.change_times
    assert len(rows) >= 1 and len(changes) >= 3
    spikes = np.concatenate([session.spikes.of_unit(int(i)) for i in rows])
    rel = spikes[:, None] - changes[None, :]
    after = int(np.sum((rel >= 0.03) & (rel < 0.28)))
    before = int(np.sum((rel >= -0.25) & (rel < 0.0)))
    assert after > 1.5 * before


def test_metrics_have_allen_names_and_nan_hazards(session: SyntheticSession) -> None:
    m = session.units.metrics
    assert tuple(m) == METRIC_NAMES
    assert np.nanmax(m["amplitude_cutoff"]) <= 0.5
    assert np.all((m["presence_ratio"] >= 0) & (m["presence_ratio"] <= 1))
    assert np.isnan(m["velocity_below"]).any()
    zero = session.spikes.counts == 0
    for name in ("isi_violations", "amplitude_cutoff", "d_prime", "silhouette_score"):
        assert np.isnan(m[name][zero]).all(), name
    assert np.all(m["firing_rate"][zero] == 0.0)
    assert np.all(m["presence_ratio"][zero] == 0.0)
    assert session.units.waveform_mean.shape == (20, 82)
    assert session.units.waveform_mean.dtype == np.float32
    trough = session.units.waveform_mean.argmin(axis=1)
    assert np.all(trough == 20)


def test_trial_outcomes_follow_the_licks(session: SyntheticSession) -> None:
    t = session.task.trials
    n = len(t)
    kinds = np.stack([t.go, t.catch, t.aborted, t.auto_rewarded]).sum(axis=0)
    np.testing.assert_array_equal(kinds, np.ones(n))
    np.testing.assert_array_equal(t.hit | t.miss, t.go)
    np.testing.assert_array_equal(t.false_alarm | t.correct_reject, t.catch)
    np.testing.assert_array_equal(np.isnan(t.change_time), t.catch | t.aborted)
    np.testing.assert_array_equal(t.is_change, t.go | t.auto_rewarded)
    np.testing.assert_array_equal(t.stop_time[:-1], t.start_time[1:])
    for i in range(n):
        licks = t.licks_of(i)
        assert np.all((licks >= t.start_time[i]) & (licks < t.stop_time[i]))
        if t.hit[i]:
            assert t.reward_time[i] == t.response_time[i] == licks[0]
            assert 0.15 <= t.response_time[i] - t.change_time[i] < 0.75
        if t.miss[i] or t.correct_reject[i]:
            assert len(licks) == 0
        if t.aborted[i]:
            assert len(licks) >= 1 and math.isnan(t.response_time[i])
        if t.auto_rewarded[i]:
            assert t.reward_time[i] == t.change_time[i]
    rewarded = ~np.isnan(t.reward_time)
    np.testing.assert_array_equal(session.task.reward_times, t.reward_time[rewarded])
    assert np.isin(t.lick_times, session.task.lick_times).all()


def test_presentations_alternate_image_and_gray(session: SyntheticSession) -> None:
    p = session.task.presentations
    np.testing.assert_allclose(np.diff(p.start_time), 0.75, atol=2e-4)
    np.testing.assert_allclose(p.stop_time - p.start_time, 0.25, atol=2e-4)
    changes = np.flatnonzero(p.is_change)
    assert np.all(p.flashes_since_change[changes] == 0)
    np.testing.assert_array_equal(p.start_time[changes], session.task.change_times)
    assert not p.omitted[changes].any()
    np.testing.assert_array_equal(p.image_name == "omitted", p.omitted)


def test_edge_cases_are_present(session: SyntheticSession, truth) -> None:
    edge = session.edge_cases
    units = truth["units"]
    ids = _column(units, "unit_id")
    count = dict(zip(ids.tolist(), _column(units, "spike_count").tolist(), strict=True))
    assert len(edge.zero_spike_units) >= 1
    assert all(count[u] == 0 for u in edge.zero_spike_units)
    first = session.spikes.of_unit(int(np.flatnonzero(ids == edge.spike_at_start_unit)[0]))
    assert first[0] == 0.0
    last_row = int(np.flatnonzero(ids == edge.spike_at_end_unit)[0])
    rate = session.probes.sampling_rate[session.units.probe_index[last_row]]
    last_sample = math.floor(session.duration_s * rate) - 1
    assert session.spikes.of_unit(last_row)[-1] == last_sample / rate
    nan_row = int(np.flatnonzero(ids == edge.nan_metric_unit)[0])
    assert session.units.quality[nan_row] == "good"
    assert count[edge.nan_metric_unit] > 0
    assert math.isnan(session.units.metrics["isi_violations"][nan_row])
    assert math.isnan(session.units.metrics["amplitude_cutoff"][nan_row])
    trials = session.task.trials
    assert len(edge.nan_change_trials) >= 2
    assert np.isnan(trials.change_time[list(edge.nan_change_trials)]).all()
    assert trials.catch[list(edge.nan_change_trials)].any()
    assert trials.aborted[list(edge.nan_change_trials)].any()
    assert len(edge.lickless_trials) >= 1
    assert edge.edge_licks == (session.task.frame_times[0], session.task.frame_times[-1])
    assert session.task.lick_times[0] == session.task.frame_times[0]
    assert session.task.lick_times[-1] == session.task.frame_times[-1]
    assert session.task.presentations.omitted.any()
    assert len(session.invalid_times) == 1


# --------------------------------------------------------------------------- ground truth


def test_truth_tables_form_a_valid_bundle(session: SyntheticSession, truth) -> None:
    bundle = SessionBundle(session.session_id, dict(truth)).validate()
    assert bundle.num_rows("spikes") == session.summary()["n_spikes"]
    assert set(truth) == {
        "sessions",
        "probes",
        "channels",
        "units",
        "spikes",
        "waveforms",
        "trials",
        "licks",
        "rewards",
        "running_speed",
        "intervals",
        "stimulus_presentations",
    }


def test_summary_matches_truth_tables(session: SyntheticSession, truth) -> None:
    s = session.summary()
    assert s["n_units"] == truth["units"].num_rows
    assert (
        s["n_spikes"]
        == truth["spikes"].num_rows
        == int(_column(truth["units"], "spike_count").sum())
    )
    assert s["spike_time_sum"] == math.fsum(_column(truth["spikes"], "time"))
    assert s["spike_amplitude_sum"] == math.fsum(_column(truth["spikes"], "amplitude"))
    assert s["n_units_without_spikes"] == int((_column(truth["units"], "spike_count") == 0).sum())
    assert s["n_trials"] == truth["trials"].num_rows
    assert s["n_trials_nan_change_time"] == int(
        np.isnan(_column(truth["trials"], "change_time")).sum()
    )
    assert s["n_trial_licks"] == len(
        truth["trials"].column("lick_times").combine_chunks().flatten()
    )
    assert s["n_licks"] == truth["licks"].num_rows
    assert s["lick_time_sum"] == math.fsum(_column(truth["licks"], "time"))
    assert s["n_rewards"] == truth["rewards"].num_rows
    assert s["n_running"] == truth["running_speed"].num_rows
    assert s["n_intervals"] == truth["intervals"].num_rows
    assert s["n_stimulus_presentations"] == truth["stimulus_presentations"].num_rows
    assert s["n_channels"] == truth["channels"].num_rows
    assert s["first_spike_time"] == 0.0


def test_truth_spikes_sorted_by_unit_then_time(truth) -> None:
    spikes = truth["spikes"]
    unit = _column(spikes, "unit_id")
    time = _column(spikes, "time")
    assert np.all(np.diff(unit) >= 0)
    assert np.all(np.diff(time)[np.diff(unit) == 0] > 0)


# --------------------------------------------------------------------------- NWB file


def test_nwb_files_validate(nwb_path: Path, gzip_path: Path) -> None:
    assert validate(path=str(nwb_path)) == []
    assert validate(path=str(gzip_path)) == []


def test_nwb_metadata_reads_back(session: SyntheticSession, truth, nwb_path: Path) -> None:
    row = truth["sessions"].to_pylist()[0]
    with NWBHDF5IO(str(nwb_path), "r") as io:
        f = io.read()
        assert f.identifier == f.session_id == SID
        assert f.session_start_time == session.session_start_time
        assert f.stimulus_notes == row["session_type"]
        assert f.data_collection == row["rig"] == "NP.1"
        assert list(f.experimenter) == row["experimenter"]
        assert f.institution == row["institution"]
        subj = f.subject
        assert (subj.subject_id, subj.species, subj.sex, subj.genotype, subj.strain) == (
            row["subject_id"],
            row["species"],
            row["sex"],
            row["genotype"],
            row["strain"],
        )
        assert subj.age == row["age"] == f"P{int(row['age_in_days'])}D"
        assert subj.date_of_birth == row["date_of_birth"]
        probes = truth["probes"].to_pylist()
        assert sorted(f.electrode_groups) == [p["probe"] for p in probes]
        for p in probes:
            group = f.electrode_groups[p["probe"]]
            assert group.description == p["description"] == f.devices[p["probe"]].description
            assert group.location == p["location"]
            assert f.devices[p["probe"]].model.manufacturer == p["manufacturer"]
            rate = float(re.search(r"(?<!lfp_)sampling_rate=([0-9.]+)", group.description)[1])
            lfp = float(re.search(r"lfp_sampling_rate=([0-9.]+)", group.description)[1])
            assert (rate, lfp) == (p["sampling_rate"], p["lfp_sampling_rate"])
            assert 29_999.0 < rate < 30_001.0 and lfp == round(rate / 12, 6)


def test_nwb_electrodes_read_back(truth, nwb_path: Path) -> None:
    channels = truth["channels"]
    with NWBHDF5IO(str(nwb_path), "r") as io:
        e = io.read().electrodes
        assert len(e) == channels.num_rows == 64
        np.testing.assert_array_equal(e.id[:], _column(channels, "channel_id"))
        assert list(e["location"][:]) == channels.column("structure_acronym").to_pylist()
        assert list(e["group_name"][:]) == channels.column("probe").to_pylist()
        for nwb_name, lake_name in {
            "x": "ccf_ap",
            "y": "ccf_dv",
            "z": "ccf_ml",
            "probe_vertical_position": "probe_vertical_position",
            "probe_horizontal_position": "probe_horizontal_position",
            "rel_x": "probe_horizontal_position",
            "rel_y": "probe_vertical_position",
            "local_index": "channel",
            "valid_data": "valid",
        }.items():
            np.testing.assert_array_equal(e[nwb_name][:], _column(channels, lake_name), nwb_name)


def test_nwb_units_and_spikes_read_back_bit_identical(
    session: SyntheticSession, truth, nwb_path: Path
) -> None:
    units, spikes = truth["units"], truth["spikes"]
    spike_unit = _column(spikes, "unit_id")
    spike_time = _column(spikes, "time")
    spike_amp = _column(spikes, "amplitude")
    with NWBHDF5IO(str(nwb_path), "r") as io:
        u = io.read().units
        assert len(u) == units.num_rows == 20
        np.testing.assert_array_equal(u.id[:], _column(units, "unit_id"))
        for i, unit_id in enumerate(_column(units, "unit_id")):
            mine = spike_unit == unit_id
            got = np.asarray(u["spike_times"][i])
            assert got.dtype == np.float64
            assert got.tobytes() == spike_time[mine].tobytes()
            assert np.asarray(u["spike_amplitudes"][i]).tobytes() == spike_amp[mine].tobytes()
        region = np.asarray(u["electrodes"].target.data[:])  # the region behind its index
        np.testing.assert_array_equal(region, session.units.peak_row)
        electrode_ids = np.asarray(u["electrodes"].target.table.id[:])[region]
        np.testing.assert_array_equal(electrode_ids, _column(units, "peak_channel_id"))
        np.testing.assert_array_equal(u["peak_channel_id"][:], _column(units, "peak_channel_id"))
        groups = [g.name for g in u["electrode_group"][:]]
        assert groups == units.column("probe").to_pylist()
        np.testing.assert_array_equal(u["cluster_id"][:], _column(units, "cluster_id"))
        assert list(u["quality"][:]) == units.column("quality").to_pylist()
        for name in METRIC_NAMES:
            np.testing.assert_array_equal(u[name][:], _column(units, name), name)
        assert np.isnan(u["isi_violations"][:]).any()
        np.testing.assert_array_equal(u["waveform_mean"][:], session.units.waveform_mean)
        np.testing.assert_array_equal(u["waveform_sd"][:], session.units.waveform_sd)
        assert u.waveform_rate == 30_000.0


def test_nwb_spike_index_flattens_to_truth(truth, nwb_path: Path) -> None:
    with h5py.File(nwb_path, "r") as f:
        times = f["units/spike_times"][:]
        ends = f["units/spike_times_index"][:].astype(np.int64)
        ids = f["units/id"][:]
    unit_id = np.repeat(ids, np.diff(ends, prepend=0))
    np.testing.assert_array_equal(unit_id, _column(truth["spikes"], "unit_id"))
    assert times.tobytes() == _column(truth["spikes"], "time").tobytes()
    counts = np.diff(ends, prepend=0)
    assert (counts == 0).any()  # the zero-spike unit: equal consecutive offsets


def test_nwb_trials_read_back(session: SyntheticSession, truth, nwb_path: Path) -> None:
    trials = truth["trials"]
    with NWBHDF5IO(str(nwb_path), "r") as io:
        t = io.read().trials
        assert len(t) == trials.num_rows == 20
        np.testing.assert_array_equal(t.id[:], _column(trials, "trial_index"))
        for name in trials.column_names:
            if name in ("session_id", "trial_index", "lick_times"):
                continue
            got = np.asarray(t[name][:])
            want = _column(trials, name)
            if want.dtype == object:
                assert list(got) == list(want), name
            else:
                np.testing.assert_array_equal(got, want, name)
        change = np.asarray(t["change_time"][:])
        assert np.isnan(change).sum() == len(session.edge_cases.nan_change_trials)
        lick_lists = trials.column("lick_times").to_pylist()
        for i in range(len(t)):
            assert list(t["lick_times"][i]) == lick_lists[i]
        assert any(len(x) == 0 for x in lick_lists)


def test_nwb_behaviour_series_read_back(truth, nwb_path: Path) -> None:
    with NWBHDF5IO(str(nwb_path), "r") as io:
        f = io.read()
        licks = f.processing["licking"]["licks"]
        np.testing.assert_array_equal(licks.timestamps[:], _column(truth["licks"], "time"))
        auto = f.processing["rewards"]["autorewarded"]
        volume = f.processing["rewards"]["volume"]
        np.testing.assert_array_equal(auto.timestamps[:], _column(truth["rewards"], "time"))
        np.testing.assert_array_equal(volume.timestamps[:], _column(truth["rewards"], "time"))
        np.testing.assert_array_equal(auto.data[:], _column(truth["rewards"], "auto_rewarded"))
        np.testing.assert_array_equal(volume.data[:], _column(truth["rewards"], "volume"))
        speed = f.processing["running"]["speed"]
        np.testing.assert_array_equal(speed.timestamps[:], _column(truth["running_speed"], "time"))
        np.testing.assert_array_equal(speed.data[:], _column(truth["running_speed"], "speed"))
        assert speed.unit == "cm/s"


def test_nwb_interval_tables_read_back(session: SyntheticSession, truth, nwb_path: Path) -> None:
    intervals = pa.concat_tables(
        [truth["intervals"], truth["stimulus_presentations"]], promote_options="permissive"
    )
    opto = intervals.filter(pc.equal(intervals.column("module"), "optotagging"))
    intervals = intervals.filter(pc.is_null(intervals.column("module")))
    names = _column(intervals, "name")
    with NWBHDF5IO(str(nwb_path), "r") as io:
        f = io.read()
        tables = {
            "epochs": f.epochs,
            "invalid_times": f.invalid_times,
            presentations_name(session): f.intervals[presentations_name(session)],
        }
        assert set(np.unique(names)) == set(tables)
        for name, table in tables.items():
            rows = intervals.filter(pc.equal(intervals.column("name"), name))
            np.testing.assert_array_equal(table.id[:], _column(rows, "row"))
            np.testing.assert_array_equal(table["start_time"][:], _column(rows, "start_time"))
            np.testing.assert_array_equal(table["stop_time"][:], _column(rows, "stop_time"))
            if "tags" in table.colnames:
                want = rows.column("tags").to_pylist()
                assert [list(table["tags"][i]) for i in range(len(table))] == want
        pulses = f.processing["optotagging"]["optogenetic_stimulation"]
        assert len(pulses) == opto.num_rows >= 6
        np.testing.assert_array_equal(pulses["start_time"][:], _column(opto, "start_time"))
        np.testing.assert_array_equal(pulses["level"][:], _column(opto, "level"))
        assert list(pulses["condition"][:]) == opto.column("condition").to_pylist()
        p = tables[presentations_name(session)]
        rows = intervals.filter(pc.equal(intervals.column("name"), presentations_name(session)))
        for col in ("image_name", "stimulus_name"):
            assert list(p[col][:]) == rows.column(col).to_pylist()
        for col in ("is_change", "omitted", "flashes_since_change", "start_frame"):
            np.testing.assert_array_equal(p[col][:], _column(rows, col), col)
    epochs = intervals.filter(pc.equal(intervals.column("name"), "epochs"))
    assert epochs.column("tags").to_pylist() == [
        ["spontaneous"],
        ["change_detection_behavior"],
        ["spontaneous"],
    ]


def test_gzip_file_holds_identical_values(nwb_path: Path, gzip_path: Path) -> None:
    def datasets(path: Path) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with h5py.File(path, "r") as f:

            def visit(name: str, obj) -> None:
                if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "biuf":
                    out[name] = obj[()]
                if isinstance(obj, h5py.Dataset) and name == "units/spike_times":
                    out["__compression__"] = np.array([obj.compression or ""])

            f.visititems(visit)
        return out

    plain, packed = datasets(nwb_path), datasets(gzip_path)
    assert plain.pop("__compression__").tolist() == [""]
    assert packed.pop("__compression__").tolist() == ["gzip"]
    assert plain.keys() == packed.keys()
    assert "units/spike_amplitudes" in plain
    for name in plain:
        assert plain[name].dtype == packed[name].dtype, name
        assert plain[name].tobytes() == packed[name].tobytes(), name


# --------------------------------------------------------------------------- sizes and corpus


def test_custom_size_spec() -> None:
    spec = SizeSpec(
        n_probes=1,
        units_per_probe=5,
        channels_per_probe=16,
        duration_s=30.0,
        mean_rate_hz=5.0,
        n_trials=6,
    )
    s = generate_session("custom-1", seed=1, size=spec)
    assert len(s.units) == 5
    assert len(s.channels) == 16
    assert len(s.task.trials) == 6
    assert s.spikes.times.max() < 30.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": "huge"}, "unknown size 'huge'"),
        ({"session_start_time": dt.datetime(2020, 1, 1)}, "has no time zone"),
        (
            {"size": SizeSpec(1, 5, 16, 30.0, 5.0, 40)},
            "40 trials need at least 120 flashes",
        ),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_session("1", seed=1, **kwargs)


def test_size_spec_rejects_impossible_sizes() -> None:
    with pytest.raises(ValueError, match=r"invalid SizeSpec: n_probes=0 \(1\.\.26\)"):
        SizeSpec(0, 10, 32, 60.0, 5.0, 10)


def test_invalid_session_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="is not valid"):
        generate_session("bad id", seed=1)


def test_write_corpus(tmp_path: Path) -> None:
    paths = write_corpus(tmp_path / "corpus", 3, seed=11, size="tiny")
    assert [p.exists() for p in paths] == [True, True, True]
    sessions = list(corpus_sessions(3, seed=11, size="tiny"))
    ids = [s.session_id for s in sessions]
    assert len(set(ids)) == 3
    assert [p.name for p in paths] == [
        f"sub-{s.subject.subject_id}_ses-{s.session_id}_ecephys.nwb" for s in sessions
    ]
    subjects = [s.subject.subject_id for s in sessions]
    assert subjects[0] == subjects[1] != subjects[2]
    assert [s.subject.genotype for s in sessions] == [GENOTYPES[0], GENOTYPES[0], GENOTYPES[1]]
    assert [s.image_set for s in sessions] == ["G", "H", "G"]
    assert sessions[1].session_start_time - sessions[0].session_start_time > dt.timedelta(hours=12)
    with h5py.File(paths[2], "r") as f:
        assert f["general/session_id"][()].decode() == ids[2]
        assert len(f["units/id"]) == len(sessions[2].units)


def test_truth_tables_are_in_the_lake_sort_order(truth) -> None:
    from schemas import TABLES

    for name, table in truth.items():
        keys = list(TABLES[name].sort_by)
        if not keys:
            continue
        order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys])
        np.testing.assert_array_equal(order.to_numpy(), np.arange(table.num_rows), name)
