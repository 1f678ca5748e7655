"""The rig session decoder: synthetic rig folders against their truth, quirks, the real Kilosort
folder and camstim pickle assembled into sessions, bad input, and the lake end to end."""

from __future__ import annotations

import builtins
import gzip
import json
import os
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

import lake
from ingest import decode, discover
from ingest.base import DecodeOptions
from ingest.rig.session import RigDecoder
from ingest.synth import RigQuirks, SizeSpec, generate_session, write_nwb, write_rig_session
from ingest.synth.rig import rig_folder_name
from lake.cli import app
from schemas import DecodeError
from tests.helpers import assert_bundles_equal
from tests.ingest.rig.fakes import rows_from_edges, write_sync

SIZE = SizeSpec(n_probes=3, units_per_probe=8, channels_per_probe=32, duration_s=300.0,
                mean_rate_hz=3.0, n_trials=20)  # fmt: skip
TINY = SizeSpec(n_probes=2, units_per_probe=4, channels_per_probe=16, duration_s=60.0,
                mean_rate_hz=2.0, n_trials=4)  # fmt: skip
QUIRKS = RigQuirks(
    truncated_last_barcode=True,
    dropped_barcode=True,
    glitch=True,
    counter_bits=22,
    probe_without_ttl=2,
)
SYNC_SAMPLE = 1e-5
SORTED = "sorting/725254892_388523_20180726_probeA_sorted"
CONTINUOUS = f"{SORTED}/continuous/Neuropix-3a-100.0"
PICKLE = "behavior/camstim_change_detection_example.pkl.gz"


def _write(session, root: Path, **kwargs):
    return write_rig_session(
        session, root / rig_folder_name(session), barcode_interval_s=3.0, **kwargs
    )


def _spikes(bundle) -> tuple[np.ndarray, np.ndarray]:
    batches = list(bundle.batches("spikes"))
    unit = np.concatenate([b.column("unit_id").to_numpy() for b in batches])
    time = np.concatenate([b.column("time").to_numpy() for b in batches])
    return unit, time


def _row(table, probe: str) -> dict:
    return table.filter(pc.equal(table["probe"], probe)).to_pylist()[0]


@pytest.fixture(scope="module")
def session():
    return generate_session("rig-1", seed=5, size=SIZE)


@pytest.fixture(scope="module")
def clean(session, tmp_path_factory):
    truth = _write(session, tmp_path_factory.mktemp("clean"))
    return truth, RigDecoder().decode(truth.folder, DecodeOptions())


@pytest.fixture(scope="module")
def quirky(session, tmp_path_factory):
    truth = _write(session, tmp_path_factory.mktemp("quirky"), quirks=QUIRKS)
    return truth, RigDecoder().decode(truth.folder, DecodeOptions())


@pytest.fixture(scope="module")
def no_sync(session, tmp_path_factory):
    truth = _write(session, tmp_path_factory.mktemp("nosync"), quirks=RigQuirks(no_sync=True))
    return truth, RigDecoder().decode(truth.folder, DecodeOptions())


# --- a clean synthetic session ----------------------------------------------------------------


def test_aligned_spikes_within_one_sync_sample_of_truth(clean):
    truth, bundle = clean
    unit, time = _spikes(bundle)
    true_unit, true_time = truth.expected_spikes()
    np.testing.assert_array_equal(unit, true_unit)
    assert np.max(np.abs(time - true_time)) < SYNC_SAMPLE
    assert len(unit) == bundle.num_rows("spikes") == int(truth.session.spikes.counts.sum())


def test_fitted_rates_within_a_tenth_of_a_ppm(clean):
    truth, bundle = clean
    probes = bundle.table("probes")
    for p in truth.probes:
        row = _row(probes, p.name)
        assert row["clock_status"] == "aligned"
        assert abs((row["clock_slope"] - 1) * 1e6 - p.drift_ppm) < 0.1
        assert abs(row["clock_offset"] - p.offset) < SYNC_SAMPLE
        assert row["aligned_sampling_rate"] == pytest.approx(30000 / p.slope, abs=30000 * 1e-7)
        assert row["clock_n_barcodes"] == p.expected_matches == len(truth.sync_barcodes)
        assert row["clock_max_residual"] < SYNC_SAMPLE + 1 / 30000
        assert row["sampling_rate"] == 30000.0
        assert row["ttl_layout"] == p.layout
        assert row["probe_id"] == int(truth.session.probes.probe_id[p.index])


def test_units_have_session_unique_ids_and_keep_probe_and_cluster(clean):
    truth, bundle = clean
    s = truth.session
    units = bundle.table("units")
    order = np.argsort(truth.unit_ids())
    np.testing.assert_array_equal(units["unit_id"].to_numpy(), truth.unit_ids()[order])
    np.testing.assert_array_equal(units["cluster_id"].to_numpy(), s.units.cluster_id[order])
    assert units["probe"].to_pylist() == s.unit_probe_names()[order].tolist()
    np.testing.assert_array_equal(units["spike_count"].to_numpy(), s.spikes.counts[order])
    assert units["quality"].to_pylist() == s.units.quality[order].tolist()
    np.testing.assert_array_equal(units["peak_channel"].to_numpy(), s.units.peak_channel[order])
    snr = units["snr"].to_numpy(zero_copy_only=False)
    np.testing.assert_allclose(snr, s.units.metrics["snr"][order], rtol=1e-12)


def test_channels_per_probe(clean):
    truth, bundle = clean
    channels = bundle.table("channels")
    assert channels.num_rows == len(truth.session.channels)
    assert channels["channel"].to_pylist() == truth.session.channels.local_index.tolist()
    np.testing.assert_array_equal(
        channels["probe_vertical_position"].to_numpy(), truth.session.channels.vertical
    )
    assert channels["structure_acronym"].to_pylist() == truth.session.channels.structure.tolist()


def test_audit_has_a_row_per_probe_barcode(clean):
    truth, bundle = clean
    audit = bundle.table("clock_alignment")
    for p in truth.probes:
        rows = audit.filter(pc.equal(audit["probe"], p.name))
        assert rows["barcode"].to_pylist() == p.barcodes.tolist()
        used = rows["used_in_fit"].to_numpy(zero_copy_only=False)
        assert int(used.sum()) == p.expected_matches
        assert rows["sync_time"].null_count == len(p.barcodes) - p.expected_matches
        residual = rows["residual"].to_numpy(zero_copy_only=False)
        assert np.nanmax(np.abs(residual)) < SYNC_SAMPLE + 1 / 30000


def test_sync_edges_and_behaviour_on_the_sync_clock(clean):
    truth, bundle = clean
    edges = bundle.table("sync_edges")
    assert edges.num_rows == sum(truth.sync_edges.values())
    labels = edges["label"].to_pylist()
    assert {k: labels.count(k) for k in truth.sync_edges} == truth.sync_edges
    trials = bundle.table("trials")
    starts, stops = truth.trial_frames
    np.testing.assert_array_equal(trials["start_time"].to_numpy(), truth.frame_times[starts])
    np.testing.assert_array_equal(
        trials["start_time"].to_numpy(), truth.session.task.trials.start_time
    )
    np.testing.assert_array_equal(trials["stop_time"].to_numpy(), truth.frame_times[stops])
    licks = bundle.table("licks")
    np.testing.assert_array_equal(licks["time"].to_numpy(), truth.lick_times)
    assert set(licks["source"].to_pylist()) == {truth.lick_source} == {"sync:lick_sensor"}
    rewards = bundle.table("rewards")
    expected = np.sort(truth.frame_times[truth.reward_frames])
    np.testing.assert_array_equal(rewards["time"].to_numpy(), expected)
    running = bundle.table("running_speed")
    assert running.num_rows == len(truth.frame_times) - 1
    speed = running["speed"].to_numpy()
    true_speed = truth.session.task.running_speed[1:]
    assert np.corrcoef(speed, true_speed)[0, 1] > 0.95


def test_sessions_row(clean):
    truth, bundle = clean
    s = truth.session
    row = bundle.table("sessions").to_pylist()[0]
    assert row["session_id"] == "rig-1"
    assert row["session_start_time"] == s.session_start_time
    assert (row["subject_id"], row["genotype"], row["sex"]) == (
        s.subject.subject_id,
        s.subject.genotype,
        s.subject.sex,
    )
    assert row["age_in_days"] == s.subject.age_days(s.session_start_time)
    assert (row["has_ephys"], row["has_task"], row["has_sync"]) == (True, True, True)
    assert (row["source_kind"], row["decoder_version"]) == ("rig", "2")
    assert row["identifier"] == truth.folder.name
    assert row["rig"] == s.rig


def test_spikes_stream_in_small_batches_gives_the_same_bundle(clean):
    truth, bundle = clean
    small = RigDecoder(batch_spikes=997).decode(truth.folder, DecodeOptions())
    assert_bundles_equal(bundle, small)
    assert len(list(small.batches("spikes"))) > 20


# --- quirks, each handled as documented --------------------------------------------------------


def test_quirky_spikes_still_within_one_sync_sample(quirky):
    truth, bundle = quirky
    unit, time = _spikes(bundle)
    true_unit, true_time = truth.expected_spikes()
    np.testing.assert_array_equal(unit, true_unit)
    assert np.max(np.abs(time - true_time)) < SYNC_SAMPLE


def test_dropped_truncated_barcodes_skipped_glitch_ignored(quirky):
    truth, bundle = quirky
    probes = bundle.table("probes")
    audit = bundle.table("clock_alignment")
    n_sync = len(truth.sync_barcodes)
    cut = truth.barcode_times[n_sync]  # the barcode the sync stopped in
    assert cut < truth.sync_duration < cut + 0.968
    a, b = (_row(probes, name) for name in ("probeA", "probeB"))
    assert (a["clock_n_barcodes"], b["clock_n_barcodes"]) == (n_sync - 1, n_sync)  # A: dropped
    for p in truth.probes[:2]:
        row = _row(probes, p.name)
        assert row["clock_status"] == "aligned"
        assert abs((row["clock_slope"] - 1) * 1e6 - p.drift_ppm) < 0.1
        rows = audit.filter(pc.equal(audit["probe"], p.name))
        last = truth.barcode_values[n_sync]  # cut on the sync clock: unmatched on the probe's
        row = rows.filter(pc.equal(rows["barcode"], last)).to_pylist()[0]
        assert (row["sync_time"], row["used_in_fit"]) == (None, False)
    edges = bundle.table("sync_edges")
    assert edges.num_rows == sum(truth.sync_edges.values())  # glitch pulses stay in the audit


def test_rollover_unwrapped(quirky, clean):
    truth, bundle = quirky
    assert truth.quirks.counter_bits == 22
    times = bundle.table("trials")["start_time"].to_numpy()
    np.testing.assert_array_equal(times, clean[1].table("trials")["start_time"].to_numpy())
    edges = bundle.table("sync_edges")
    assert edges["sample"].to_numpy().max() > 1 << 22  # beyond the 22-bit counter


def test_probe_without_ttl_kept_on_its_own_clock_and_flagged(quirky):
    truth, bundle = quirky
    row = _row(bundle.table("probes"), "probeC")
    assert row["clock_status"] == "unaligned"
    assert row["clock_note"] == f"no TTL events in {truth.probes[2].folder.name}"
    assert (row["clock_slope"], row["clock_offset"], row["aligned_sampling_rate"]) == (None,) * 3
    assert any(n.startswith("probeC: clock UNALIGNED") for n in bundle.notes)
    assert "probeC: clock UNALIGNED" in bundle.table("sessions")["notes"][0].as_py()
    unit, time = _spikes(bundle)
    _, true_time = truth.expected_spikes()
    on_c = unit // 100_000 == 2
    np.testing.assert_array_equal(time[on_c], true_time[on_c])  # sample / 30 kHz, exactly


def test_no_sync_file_puts_behaviour_on_the_task_clock(no_sync):
    truth, bundle = no_sync
    assert "sync_edges" not in bundle.tables
    trials = bundle.table("trials")
    np.testing.assert_array_equal(
        trials["start_time"].to_numpy(), truth.frame_times[truth.trial_frames[0]]
    )
    assert truth.frame_times[0] == 0.0
    licks = bundle.table("licks")
    np.testing.assert_array_equal(licks["time"].to_numpy(), truth.lick_times)
    assert set(licks["source"].to_pylist()) == {"task_file"}
    statuses = bundle.table("probes")["clock_status"].to_pylist()
    assert statuses == ["unaligned"] * 3
    notes = bundle.table("sessions")["notes"][0].as_py()
    assert notes.startswith("no sync file")
    assert "own clock" in notes
    row = bundle.table("sessions").to_pylist()[0]
    assert (row["has_sync"], row["has_task"]) == (False, True)
    _, time = _spikes(bundle)
    np.testing.assert_array_equal(time, truth.expected_spikes()[1])


# --- sniffing, inputs, pickles -----------------------------------------------------------------


def test_sniff_looks_at_names_only(clean, monkeypatch):
    truth, _ = clean

    def refuse(*args, **kwargs):
        raise AssertionError("sniff opened a file")

    for target, name in ((builtins, "open"), (h5py, "File"), (np, "load"), (pickle, "load")):
        monkeypatch.setattr(target, name, refuse)
    decoder = RigDecoder()
    assert decoder.sniff(truth.folder)
    assert not decoder.sniff(truth.folder.parent)  # a folder of sessions is not a session
    assert not decoder.sniff(truth.sync_file)
    probe_a = truth.probes[0].folder  # a probe folder alone, or Open Ephys folders inside it
    assert not decoder.sniff(probe_a)
    assert not decoder.sniff(probe_a / "continuous")


def test_discover_finds_session_folders_below_a_folder(clean):
    truth, _ = clean
    sources, problems = discover([truth.folder.parent])
    assert [(s.path, s.decoder.name) for s in sources] == [(truth.folder, "rig")]
    assert not problems


def test_inputs_are_exactly_the_files_read(clean, tmp_path):
    truth, _ = clean
    folder = tmp_path / truth.folder.name
    shutil.copytree(truth.folder, folder)
    (folder / truth.probes[0].folder.name / "continuous.dat").write_bytes(b"\0" * 1000)
    inputs = RigDecoder().inputs(folder, DecodeOptions())
    names = {str(f.relative_to(folder)) for f in inputs}
    a, b = (p.folder.name for p in truth.probes[:2])
    stream_a = f"{a}/continuous/Neuropix-3a-100.0"
    assert {n for n in names if n.startswith(f"{a}/")} == {
        f"{stream_a}/{x}"
        for x in (
            "spike_times.npy", "spike_clusters.npy", "amplitudes.npy", "params.py",
            "metrics.csv", "cluster_group.tsv", "channel_map.npy", "channel_positions.npy",
            "ccf_regions.csv",
        )
    } | {
        f"{a}/probe_info.json",
        f"{a}/events/Neuropix-3a-100.0/TTL_1/event_timestamps.npy",
        f"{a}/events/Neuropix-3a-100.0/TTL_1/channel_states.npy",
    }  # fmt: skip
    assert f"{b}/sync_messages.txt" in names
    assert f"{b}/events/Neuropix-PXI-100.ProbeB-AP/TTL/sample_numbers.npy" in names
    assert f"{b}/events/Neuropix-PXI-100.ProbeB-AP/TTL/timestamps.npy" not in names
    top = {n for n in names if "/" not in n}
    assert top == {"session.json", truth.sync_file.name, truth.task_file.name}


class _Trap:
    """Unpickling this creates a folder: proof that a pickle was (not) loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture(scope="module")
def camstim_rig(session, tmp_path_factory):
    """A session whose behaviour is a camstim pickle only, plus a trap pickle next to it."""
    truth = _write(session, tmp_path_factory.mktemp("camstim"), task_file=False, camstim=True)
    marker = truth.folder.parent / "trap-was-loaded"
    (truth.folder / "trap.pkl").write_bytes(pickle.dumps(_Trap(marker), protocol=2))
    return truth, marker


def test_pickles_not_named_are_never_loaded(camstim_rig):
    truth, marker = camstim_rig
    decoder = RigDecoder()
    assert truth.pickle_file not in decoder.inputs(truth.folder, DecodeOptions())
    bundle = decoder.decode(truth.folder, DecodeOptions())
    assert not marker.exists()
    assert "trials" not in bundle.tables
    hint = f"--pickle {truth.pickle_file}"
    assert any(truth.pickle_file.name in n and hint in n for n in bundle.notes)
    assert bundle.table("licks")["source"].unique().to_pylist() == ["sync:lick_sensor"]
    assert bundle.table("sessions")["has_task"][0].as_py() is False


def test_a_named_camstim_pickle_is_the_behaviour(camstim_rig):
    truth, marker = camstim_rig
    options = DecodeOptions(pickles=(truth.pickle_file,))
    assert truth.pickle_file in RigDecoder().inputs(truth.folder, options)
    bundle = RigDecoder().decode(truth.folder, options)
    assert not marker.exists()
    trials = bundle.table("trials")
    np.testing.assert_array_equal(
        trials["start_time"].to_numpy(), truth.session.task.trials.start_time
    )
    np.testing.assert_array_equal(bundle.table("licks")["time"].to_numpy(), truth.lick_times)
    assert bundle.table("rewards").num_rows == len(truth.reward_frames)
    assert any("trap.pkl" in n and "NOT loaded" in n for n in bundle.notes)


def test_a_named_trap_pickle_runs_only_when_named(camstim_rig):
    truth, marker = camstim_rig
    trap = truth.folder / "trap.pkl"
    with pytest.raises(DecodeError, match="several behaviour pickles named"):
        RigDecoder().decode(truth.folder, DecodeOptions(pickles=(trap, truth.pickle_file)))
    assert not marker.exists()
    with pytest.raises(DecodeError, match=r"trap\.pkl"):
        RigDecoder().decode(truth.folder, DecodeOptions(pickles=(trap,)))
    assert marker.exists()  # named: loaded (and this one ran code) - hence the rule
    marker.rmdir()


def test_a_named_pickle_belongs_to_the_folder_it_sits_in(camstim_rig, tiny_template, tmp_path):
    truth, marker = camstim_rig
    other = _copy(tiny_template, tmp_path, "other")
    lk = lake.open(tmp_path / "lake")
    report = lk.ingest([truth.folder, other], pickles=[truth.pickle_file])
    assert report.ok, str(report)
    sessions = lk.sessions()
    named = {
        sid: json.loads(options)["pickles"]
        for sid, options in zip(sessions["session_id"], sessions["decoder_options"], strict=True)
    }
    assert named == {"other": [], "rig-1": [str(truth.pickle_file.resolve())]}
    assert lk.sql("SELECT count(*) FROM trials WHERE session_id = 'rig-1'").item() == len(
        truth.session.task.trials.start_time
    )
    assert not marker.exists()
    version = lk.version
    again = lk.ingest([other])  # the pickle was never part of this session's options
    assert [o.status for o in again.outcomes] == ["unchanged"]
    assert lk.version == version


def test_a_named_pickle_no_session_reads_is_an_error(tiny_template, tmp_path):
    other = _copy(tiny_template, tmp_path, "other")
    stray = tmp_path / "stray.pkl"
    stray.write_bytes(b"not read")
    lk = lake.open(tmp_path / "lake")
    with pytest.raises(DecodeError, match=r"stray\.pkl: pickles: .*not in the folder of any"):
        lk.ingest([other], pickles=[stray])
    with pytest.raises(DecodeError, match=r"missing\.pkl: pickles: no such file"):
        lk.ingest([other], pickles=[tmp_path / "missing.pkl"])
    with pytest.raises(DecodeError, match=r"stray\.pkl: pickles: "):
        decode(other, pickles=[stray])
    assert not (tmp_path / "lake").exists()


# --- real files assembled into rig sessions ---------------------------------------------------


def _writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    for root, dirs, _ in os.walk(dst):
        for d in dirs:
            os.chmod(Path(root) / d, 0o755)
    os.chmod(dst, 0o755)
    return dst


@pytest.fixture(scope="module")
def kilosort_session(realdata, tmp_path_factory):
    """The real probe folder next to a sync file rebuilt from its barcodes (as in test_align)."""
    folder = tmp_path_factory.mktemp("kilosort") / "388523_2018-07-26"
    folder.mkdir()
    _writable_copy(realdata / SORTED, folder / Path(SORTED).name)
    spikes = np.load(realdata / CONTINUOUS / "spike_times.npy").ravel().astype(np.int64)
    master = np.load(realdata / CONTINUOUS / "spike_times_master_clock.npy").ravel()
    xm, ym = spikes.mean(), master.mean()
    per_sample = np.dot(spikes - xm, master - ym) / np.dot(spikes - xm, spikes - xm)
    offset = ym - per_sample * xm
    ttl = np.load(realdata / SORTED / "events/Neuropix-3a-100.0/TTL_1/event_timestamps.npy")
    states = np.load(realdata / SORTED / "events/Neuropix-3a-100.0/TTL_1/channel_states.npy")
    on, off = ttl[states == 1] * per_sample + offset, ttl[states == -1] * per_sample + offset
    vsync = np.arange(1.0, 60.0, 1 / 60)
    rows = rows_from_edges({0: (on, off), 2: (vsync, vsync + 0.008)})
    write_sync(folder / "388523_20180726.sync", rows)
    return folder, master


def test_real_kilosort_folder_reproduces_the_published_master_clock(kilosort_session, realdata):
    folder, master = kilosort_session
    bundle = decode(folder)
    assert bundle.session_id == "388523_2018-07-26"
    assert bundle.num_rows("units") == 205
    units = bundle.table("units")
    assert pc.sum(pc.equal(units["quality"], "good")).as_py() == 189
    row = bundle.table("probes").to_pylist()[0]
    assert (row["probe"], row["clock_status"], row["clock_n_barcodes"]) == (
        "probeA",
        "aligned",
        298,
    )
    assert row["aligned_sampling_rate"] == pytest.approx(29999.9676, abs=1e-4)
    unit, time = _spikes(bundle)
    clusters = np.load(realdata / CONTINUOUS / "spike_clusters.npy").ravel()
    samples = np.load(realdata / CONTINUOUS / "spike_times.npy").ravel()
    order = np.lexsort((samples, clusters))
    np.testing.assert_array_equal(unit, clusters[order].astype(np.int64))  # probe 0: id = cluster
    assert np.max(np.abs(time - master[order])) < SYNC_SAMPLE
    sessions = bundle.table("sessions").to_pylist()[0]
    assert (sessions["subject_id"], sessions["has_sync"], sessions["has_task"]) == (
        "388523",
        True,
        False,
    )


@pytest.fixture(scope="module")
def camstim_session(realdata, tmp_path_factory):
    """The real camstim pickle in a rig folder whose sync file has one vsync per frame."""
    folder = tmp_path_factory.mktemp("camstim-real") / "camstim_rig"
    folder.mkdir()
    pkl = folder / "change_detection.behavior.pkl.gz"
    shutil.copyfile(realdata / PICKLE, pkl)
    with gzip.open(pkl) as f:
        intervals = pickle.load(f, encoding="latin1")["items"]["behavior"]["intervalsms"]
    frames = 1.0 + np.concatenate([[0.0], np.cumsum(intervals)]) / 1000.0
    write_sync(folder / "rig.sync", rows_from_edges({2: (frames - 0.004, frames)}))
    return folder, pkl, np.round(frames * 1e5) / 1e5


def test_real_camstim_pickle_ingested_as_part_of_a_rig_folder_when_named(camstim_session):
    folder, pkl, frames = camstim_session
    unnamed = decode(folder)
    assert "trials" not in unnamed.tables
    assert any("--pickle" in n for n in unnamed.notes)
    bundle = decode(folder, pickles=[pkl])
    counts = {t: bundle.num_rows(t) for t in ("trials", "licks", "rewards")}
    assert counts == {"trials": 953, "licks": 2908, "rewards": 86}
    trials = bundle.table("trials")
    start_frames = trials["start_frame"].to_numpy()
    np.testing.assert_array_equal(trials["start_time"].to_numpy(), frames[start_frames])
    assert bundle.table("licks")["source"].unique().to_pylist() == ["camstim:lick_sensor"]
    row = bundle.table("sessions").to_pylist()[0]
    assert (row["rig"], row["has_task"], row["has_sync"]) == ("BEH.D", True, True)


# --- bad input --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_template(tmp_path_factory):
    session = generate_session("tiny-rig", seed=2, size=TINY)
    return _write(session, tmp_path_factory.mktemp("template"))


def _copy(template, root: Path, session_id: str) -> Path:
    folder = root / f"{session_id}_rig"
    shutil.copytree(template.folder, folder)
    info = json.loads((folder / "session.json").read_text())
    (folder / "session.json").write_text(json.dumps({**info, "session_id": session_id}))
    return folder


def _damage(template, root: Path) -> dict[str, tuple[str, str]]:
    """Damaged copies of the template: session id -> (file name, field) the error must name."""
    expected = {}
    folder = _copy(template, root, "bad-meta")
    with h5py.File(folder / template.sync_file.name, "r+") as fh:
        del fh["meta"]
        fh["meta"] = np.bytes_("['not', 'a', 'dict']")
    expected["bad-meta"] = (template.sync_file.name, "meta")
    folder = _copy(template, root, "no-clusters")
    sorting_b = folder / template.probes[1].folder.name
    (sorting_b / "spike_clusters.npy").unlink()
    expected["no-clusters"] = (sorting_b.name, "spike_clusters.npy")
    folder = _copy(template, root, "short-amplitudes")
    amps = folder / template.probes[1].folder.name / "amplitudes.npy"
    np.save(amps, np.load(amps)[:-1])
    expected["short-amplitudes"] = ("amplitudes.npy", "length")
    folder = _copy(template, root, "frame-count")
    with h5py.File(folder / template.task_file.name, "r+") as fh:
        intervals = fh["frameIntervals"][()]
        del fh["frameIntervals"]
        fh["frameIntervals"] = intervals[:-1]
    expected["frame-count"] = (template.task_file.name, "frameIntervals")
    return expected


def test_bad_input_names_file_and_field(tiny_template, tmp_path):
    for session_id, (name, field) in _damage(tiny_template, tmp_path).items():
        with pytest.raises(DecodeError) as info:
            decode(tmp_path / f"{session_id}_rig")
        assert name in (info.value.file or ""), session_id
        assert info.value.field == field, session_id


def test_bad_sessions_fail_alone_through_the_lake(tiny_template, tmp_path):
    expected = _damage(tiny_template, tmp_path / "batch")
    _copy(tiny_template, tmp_path / "batch", "good")
    lk = lake.open(tmp_path / "lake")
    report = lk.ingest([tmp_path / "batch"])
    assert [o.session_id for o in report.landed] == ["good"]
    assert len(report.failed) == len(expected)
    for outcome in report.failed:
        session_id = Path(outcome.source).name.removesuffix("_rig")
        name, field = expected[session_id]
        assert name in outcome.reason and f": {field}: " in outcome.reason, outcome.reason
        assert outcome.traceback is None  # a DecodeError, not a bug
    assert lk.sessions()["session_id"].to_list() == ["good"]
    for table in ("spikes", "units", "sync_edges", "trials", "clock_alignment"):
        ids = lk.sql(f"SELECT DISTINCT session_id FROM {table}")["session_id"].to_list()
        assert ids == ["good"], table


def test_a_renamed_session_folder_is_decoded_again(tiny_template, tmp_path):
    # the folder name can carry the session id and subject, so it is part of the fingerprint
    folder = _copy(tiny_template, tmp_path / "a", "renamed")
    lk = lake.open(tmp_path / "lake")
    assert [o.status for o in lk.ingest([folder]).outcomes] == ["landed"]
    assert [o.status for o in lk.ingest([folder]).outcomes] == ["unchanged"]
    moved = folder.rename(tmp_path / "a" / "renamed_rig_moved")
    (again,) = lk.ingest([moved]).outcomes
    assert (again.status, again.replaced) == ("landed", True)
    assert lk.sessions()["source_uri"].to_list() == [str(moved.resolve())]


def test_rig_and_nwb_sessions_share_a_lake_in_either_order(tiny_template, tmp_path):
    # metrics.csv writes spread as 20, 30, ...: read as float64, like the NWB files' spread
    nwb = write_nwb(generate_session("nwb-1", seed=3, size=TINY), tmp_path / "nwb-1.nwb")
    rig = _copy(tiny_template, tmp_path, "rig-2")
    for order in ([rig, nwb], [nwb, rig]):
        lk = lake.open(tmp_path / f"lake-{order[0].suffix or 'rig'}")
        for source in order:
            report = lk.ingest([source])
            assert report.ok, str(report)
        spread = lk.sql("SELECT typeof(spread) AS t, count(spread) AS n FROM units GROUP BY 1")
        assert spread.rows() == [("DOUBLE", lk.sql("SELECT count(*) FROM units").item())]


def test_invalid_session_json_names_the_field(tiny_template, tmp_path):
    folder = _copy(tiny_template, tmp_path, "typo")
    info = json.loads((folder / "session.json").read_text())
    (folder / "session.json").write_text(json.dumps({**info, "subjet_id": "x"}))
    with pytest.raises(DecodeError) as err:
        decode(folder)
    assert (Path(err.value.file).name, err.value.field) == ("session.json", "subjet_id")
    (folder / "session.json").write_text(json.dumps({**info, "timezone": "Mars/Olympus"}))
    with pytest.raises(DecodeError, match="unknown time zone"):
        decode(folder)


def test_two_sync_files_are_ambiguous(tiny_template, tmp_path):
    folder = _copy(tiny_template, tmp_path, "two-syncs")
    shutil.copyfile(folder / tiny_template.sync_file.name, folder / "other_sync.h5")
    with pytest.raises(DecodeError, match="several sync files") as err:
        decode(folder)
    assert err.value.field == "sync_file"


# --- the lake: rig folders and NWB files in one call --------------------------------------------


def test_cli_ingests_a_rig_folder_and_an_nwb_file_together(tiny_template, realdata, tmp_path):
    # (not a Janelia file: their trials 'response' is text, TaskControl's is bool, and a lake
    # keeps one type per extra column)
    nwb = realdata / "nwb" / "sub-4_ses-4_ecephys+image.nwb"
    where = str(tmp_path / "lake")
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(tiny_template.folder), str(nwb), "--lake", where])
    assert result.exit_code == 0, result.output
    sessions = lake.open(where).sessions().sort("source_kind")
    assert sessions["source_kind"].to_list() == ["nwb", "rig"]
    assert sessions["session_id"].to_list()[1] == "tiny-rig"
    rig = sessions.row(1, named=True)
    assert rig["n_spikes"] == int(tiny_template.session.spikes.counts.sum())
    assert rig["n_sync_edges"] == sum(tiny_template.sync_edges.values())
    lk = lake.open(where)
    version = lk.version
    report = lk.ingest([tiny_template.folder, nwb])  # unchanged: a no-op
    assert [o.status for o in report.outcomes] == ["unchanged", "unchanged"]
    assert lake.open(where).version == version
    spikes = lk.sql("SELECT count(*) AS n FROM spikes WHERE session_id = 'tiny-rig'")["n"][0]
    assert spikes == rig["n_spikes"]


def test_ingest_summary_surfaces_an_unaligned_probe(tmp_path):
    session = generate_session("unaligned-rig", seed=3, size=TINY)
    truth = _write(session, tmp_path / "src", quirks=RigQuirks(probe_without_ttl=1))
    probe = truth.probes[1].name
    # through the Python API: the report's summary lists the note under the landed session
    report = lake.open(tmp_path / "lake").ingest([truth.folder])
    assert [o.status for o in report.outcomes] == ["landed"]
    assert any(n.startswith(f"{probe}: clock UNALIGNED") for n in report.landed[0].notes)
    summary = str(report).splitlines()
    landed = next(i for i, x in enumerate(summary) if x.lstrip().startswith("landed"))
    notes = [x.strip() for x in summary[landed + 1 :] if x.strip().startswith("note:")]
    assert any(n.startswith(f"note: {probe}: clock UNALIGNED (") for n in notes), summary
    assert "on the probe's own clock" in str(report)
    # through the CLI: the same summary is printed
    result = CliRunner().invoke(app, ["ingest", str(truth.folder), "--lake", str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    assert f"note: {probe}: clock UNALIGNED (" in result.output
    # and the lake keeps it: the probe row says why, sessions.notes carries the note
    lk = lake.open(tmp_path / "k")
    row = lk.sql(f"SELECT clock_status, clock_note FROM probes WHERE probe = '{probe}'").row(0)
    assert row[0] == "unaligned" and row[1]
    assert f"{probe}: clock UNALIGNED" in lk.sessions()["notes"][0]
