"""The synthetic rig writer: the folder it writes, read back with the low-level rig readers."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from ingest.rig.barcodes import decode_barcodes
from ingest.rig.openephys import read_ttl_events
from ingest.rig.sorting import read_sorting
from ingest.rig.sync import decode_edges, line_edges, read_sync
from ingest.synth import RigQuirks, SizeSpec, generate_session, write_rig_session
from ingest.synth._rig_files import EDGE_JITTER_S, barcode_edges
from ingest.synth._rig_probes import probe_spike_samples

SIZE = SizeSpec(n_probes=3, units_per_probe=6, channels_per_probe=24, duration_s=240.0,
                mean_rate_hz=3.0, n_trials=12)  # fmt: skip
QUIRKS = RigQuirks(
    truncated_last_barcode=True,
    dropped_barcode=True,
    glitch=True,
    counter_bits=22,
    probe_without_ttl=2,
)


@pytest.fixture(scope="module")
def session():
    return generate_session("rig-synth-1", seed=11, size=SIZE)


@pytest.fixture(scope="module")
def clean(session, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean") / "s"
    return write_rig_session(session, folder, barcode_interval_s=3.0)


@pytest.fixture(scope="module")
def quirky(session, tmp_path_factory):
    folder = tmp_path_factory.mktemp("quirky") / "s"
    return write_rig_session(session, folder, barcode_interval_s=3.0, quirks=QUIRKS, camstim=True)


def _sync_rows(truth) -> np.ndarray:
    with h5py.File(truth.sync_file) as fh:
        return fh["data"][()]


def test_layout_per_probe(clean):
    a, b, _ = clean.probes
    assert (a.layout, b.layout) == ("0.4", ">=0.6")
    sorting_a = a.folder / "continuous" / "Neuropix-3a-100.0"
    assert np.load(sorting_a / "spike_times.npy").shape[1:] == (1,)  # Allen's (N, 1)
    assert (a.folder / "events" / "Neuropix-3a-100.0" / "TTL_1" / "channel_states.npy").is_file()
    assert (a.folder / "probe_info.json").is_file()
    assert np.load(b.folder / "spike_times.npy").ndim == 1
    ttl = b.folder / "events" / "Neuropix-PXI-100.ProbeB-AP" / "TTL"
    assert np.load(ttl / "sample_numbers.npy")[0] >= b.start_sample  # absolute sample numbers
    assert f": {b.start_sample}" in (b.folder / "sync_messages.txt").read_text()
    info = json.loads((clean.folder / "session.json").read_text())
    assert info["session_id"] == "rig-synth-1"
    assert info["probes"]["probeB"] == {"probe_id": int(clean.session.probes.probe_id[1])}


def test_spikes_are_in_kilosort_order_with_clusters_interleaved(clean):
    probe = read_sorting(clean.probes[0].folder)
    assert np.all(np.diff(probe.spike_samples) >= 0)
    assert np.any(np.diff(probe.spike_clusters) < 0)
    assert len(probe.spike_samples) == int(
        clean.session.spikes.counts[clean.session.unit_rows_of_probe("probeA")].sum()
    )


def test_spike_truth_is_the_session_on_each_probe_clock(clean):
    s = clean.session
    for p in clean.probes:
        samples, rows = probe_spike_samples(s, p)
        master = p.slope * samples / p.nominal_rate + p.offset
        lo = int(s.spikes.ends[rows[0] - 1]) if rows[0] else 0
        session_times = s.spikes.times[lo : lo + len(samples)]
        assert np.max(np.abs(master - session_times)) <= 0.5 / p.nominal_rate * p.slope + 1e-9
        assert 1 <= abs(p.drift_ppm) <= 5 and -5 <= p.offset <= -0.5


def test_sync_lines_carry_the_session(clean):
    sync = read_sync(clean.sync_file)
    assert sync.counter_output_freq == 100_000.0
    assert sync.counter_bits == 32
    edges = decode_edges(sync)
    labels = edges.column("label").to_pylist()
    assert {k: labels.count(k) for k in clean.sync_edges} == clean.sync_edges
    frames = line_edges(edges, "vsync_stim", rising=False)
    np.testing.assert_array_equal(frames, clean.session.task.frame_times)  # exactly
    np.testing.assert_array_equal(line_edges(edges, "lick_sensor", rising=True), clean.lick_times)
    assert np.isin(clean.lick_times, clean.session.task.lick_times).all()


def test_barcodes_decode_on_both_clocks(clean):
    edges = decode_edges(clean.sync_file)
    on, off = (line_edges(edges, "barcode_ephys", rising=r) for r in (True, False))
    sync_bc = decode_barcodes(on, off, end_time=clean.sync_duration)
    np.testing.assert_array_equal(sync_bc.values, clean.sync_barcodes)
    n = len(clean.sync_barcodes)  # the probes record on after the sync stops: more barcodes
    np.testing.assert_array_equal(clean.sync_barcodes, clean.barcode_values[:n])
    assert clean.barcode_times[n] + 0.968 > clean.sync_duration > clean.barcode_times[n - 1] + 1
    for p in clean.probes:
        ttl = read_ttl_events(p.folder, sample_rate=p.nominal_rate)
        bc = decode_barcodes(*ttl.edges(line=1))
        np.testing.assert_array_equal(bc.values, p.barcodes)
        master = p.slope * bc.times + p.offset  # the probe clock, mapped with the true clock
        mine = np.isin(clean.barcode_values, p.barcodes)
        # the generator's start edge: the barcode's start plus that edge's fixed jitter
        rise, _ = barcode_edges(clean.barcode_values[mine], clean.barcode_times[mine])
        truth = rise[np.searchsorted(rise, clean.barcode_times[mine] - 1e-3)]
        assert 0 < np.max(np.abs(truth - clean.barcode_times[mine])) <= EDGE_JITTER_S
        assert np.max(np.abs(master - truth)) <= 0.5 / p.nominal_rate + 1e-9
        assert p.expected_matches == n


def test_quirks_are_in_the_raw_files(quirky, clean):
    rows = _sync_rows(quirky)
    assert np.any(np.diff(rows[:, 0].astype(np.int64)) < 0)  # the 22-bit counter rolls over
    assert rows[:, 0].max() < 1 << 22
    sync = read_sync(quirky.sync_file)
    last = quirky.barcode_times[len(quirky.sync_barcodes)]
    assert last < sync.duration < last + 0.968  # the sync stops inside the next barcode
    assert len(quirky.sync_barcodes) == len(quirky.barcode_values) - 1
    assert not any((quirky.probes[2].folder).rglob("TTL*"))  # probe C: no TTL events
    assert len(quirky.probes[0].barcodes) == len(quirky.barcode_values) - 1  # one dropped
    assert [p.expected_status for p in quirky.probes] == ["aligned", "aligned", "unaligned"]
    assert [p.expected_matches for p in quirky.probes] == [
        len(quirky.sync_barcodes) - 1,
        len(quirky.sync_barcodes),
        0,
    ]
    assert set(quirky.expectations) == {
        "truncated_last_barcode",
        "dropped_barcode",
        "glitch",
        "counter_bits",
        "probe_without_ttl",
    }


def test_rollover_and_glitch_leave_decoded_edge_times_unchanged(quirky, clean):
    q, c = decode_edges(quirky.sync_file), decode_edges(clean.sync_file)
    end = quirky.sync_duration - 0.2  # the truncated sync stops earlier

    def before_end(t):
        return t[t < end]

    for label in ("vsync_stim", "lick_sensor", "beh_cam_exposing", "barcode_ephys"):
        ours, theirs = (before_end(line_edges(x, label, None)) for x in (q, c))
        if label == "barcode_ephys":  # two 1-sample pulses more, nothing else
            assert len(ours) == len(theirs) + 4
            ours = np.setdiff1d(ours, theirs)
            assert np.round(np.diff(ours) * 1e5)[[0, 2]].tolist() == [1, 1]  # 1 sample long
        else:
            np.testing.assert_array_equal(ours, theirs)


def test_no_sync_writes_no_sync_file_and_own_clock_truth(session, tmp_path):
    truth = write_rig_session(
        session, tmp_path / "s", barcode_interval_s=3.0, quirks=RigQuirks(no_sync=True)
    )
    assert truth.sync_file is None and not list(truth.folder.glob("*.sync"))
    assert truth.frame_times[0] == 0.0
    np.testing.assert_allclose(
        truth.frame_times, session.task.frame_times - session.task.frame_times[0], atol=1e-9
    )
    assert truth.lick_source == "task_file"
    assert all(p.expected_status == "unaligned" for p in truth.probes)


def test_a_glitch_fits_a_session_with_few_barcodes(tmp_path):
    # "tiny" (60 s) has 3 barcodes at the default interval: the pulse goes after the second
    session = generate_session("rig-tiny", seed=12, size="tiny")
    truth = write_rig_session(session, tmp_path / "s", quirks=RigQuirks(glitch=True), seed=2)
    assert len(truth.barcode_values) == 3
    probe = truth.probes[0]
    ttl = read_ttl_events(probe.folder, sample_rate=probe.nominal_rate)
    rise, fall = ttl.edges(line=1)
    assert np.sum(np.round((fall - rise) * probe.nominal_rate) == 1) == 1  # the 1-sample pulse
    np.testing.assert_array_equal(decode_barcodes(rise, fall).values, probe.barcodes)


def test_task_file_frames_point_at_the_session(clean):
    s = clean.session
    with h5py.File(clean.task_file) as h5:
        assert len(h5["frameIntervals"]) + 1 == len(s.task.frame_times)
        starts = h5["trialStartFrame"][()]
        assert h5["rotaryEncoder"][()] == b"digital"
    np.testing.assert_array_equal(s.task.frame_times[starts], s.task.trials.start_time)
    assert clean.task_file.name.startswith(f"ChangeDetection_{s.subject.subject_id}_")


def test_writing_is_deterministic(session, clean, tmp_path):
    again = write_rig_session(session, tmp_path / "s", barcode_interval_s=3.0)
    for p, q in zip(clean.probes, again.probes, strict=True):
        assert (p.drift_ppm, p.offset, p.start_sample) == (q.drift_ppm, q.offset, q.start_sample)
    a = clean.probes[1].folder / "spike_times.npy"
    b = again.probes[1].folder / "spike_times.npy"
    assert a.read_bytes() == b.read_bytes()
    np.testing.assert_array_equal(_sync_rows(clean), _sync_rows(again))


def test_given_clocks_are_used(session, tmp_path):
    truth = write_rig_session(
        session, tmp_path / "s", drift_ppm=[2.0, -3.0, 4.5], start_offset_s=1.25
    )
    assert [p.drift_ppm for p in truth.probes] == [2.0, -3.0, 4.5]
    assert [p.offset for p in truth.probes] == [-1.25] * 3
    assert truth.probes[1].slope == 1 - 3e-6
