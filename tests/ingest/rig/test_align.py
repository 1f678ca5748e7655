"""Clock alignment: published Allen alignments reproduced; the policies on synthetic clocks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ingest.base import DecodeOptions
from ingest.rig.align import apply, fit_clock
from ingest.rig.barcodes import BarcodeEdges, decode_barcodes
from ingest.rig.openephys import edges_from_states, read_ttl_events
from ingest.rig.session import RigDecoder
from ingest.rig.sync import decode_edges, line_edges, read_sync
from ingest.synth import RigQuirks, SizeSpec, generate_session, write_rig_session
from ingest.synth.rig import rig_folder_name
from schemas import TABLES, DecodeError
from schemas.conform import conform_table
from tests.ingest.rig.fakes import (
    barcode_train,
    rows_from_edges,
    write_openephys_recording,
    write_sync,
)

SORTED = "sorting/725254892_388523_20180726_probeA_sorted"
CONTINUOUS = f"{SORTED}/continuous/Neuropix-3a-100.0"
SYNC_PERIOD = 1e-5
PROBE_SAMPLE = 1 / 30000


def _linear(x, y):
    """Least-squares (slope, offset) of y = slope * x + offset, centred."""
    xm, ym = x.mean(), y.mean()
    slope = np.dot(x - xm, y - ym) / np.dot(x - xm, x - xm)
    return slope, ym - slope * xm


# --- the real Kilosort folder against a rebuilt sync file ------------------------------------


def test_kilosort_probe_reproduces_published_master_clock(realdata, tmp_path):
    spikes = np.load(realdata / CONTINUOUS / "spike_times.npy").ravel().astype(np.int64)
    master = np.load(realdata / CONTINUOUS / "spike_times_master_clock.npy").ravel()
    per_sample, offset = _linear(spikes.astype(float), master)
    assert per_sample == pytest.approx(3.33333693e-05, rel=1e-8)
    assert offset == pytest.approx(0.617480, abs=1e-6)
    assert np.max(np.abs(per_sample * spikes + offset - master)) < 1e-9  # exactly linear

    # the sync file the session had: its barcode line carries the probe's barcode edges at
    # master(sample), quantised to the 100 kHz sync clock, next to a busy vsync line
    ttl = read_ttl_events(realdata / SORTED)
    on, off = ttl.edges(line=1)
    to_master = per_sample * 30000.0
    vsync = np.arange(1.0, 120.0, 1 / 60)
    rows = rows_from_edges(
        {0: (on * to_master + offset, off * to_master + offset), 2: (vsync, vsync + 0.008)}
    )
    sync_file = write_sync(tmp_path / "session.sync", rows)
    sync = read_sync(sync_file)
    edges = decode_edges(sync)
    sync_bc = decode_barcodes(
        line_edges(edges, "barcode_ephys", True), line_edges(edges, "barcode_ephys", False)
    )
    probe_bc = decode_barcodes(on, off)
    assert len(sync_bc.values) == len(probe_bc.values) == 298

    fit = fit_clock(
        probe_bc.times,
        probe_bc.values,
        sync_bc.times,
        sync_bc.values,
        sync_sample_period=sync.sample_period,
        nominal_rate=30000.0,
        probe="probeA",
    )
    assert fit.status == "aligned", fit.note
    assert (fit.n_matched, fit.n_used) == (298, 298)
    # only the sync clock's rounding is left: uniform over one sample, RMS 10 µs / sqrt(12)
    assert fit.max_residual < 0.6 * SYNC_PERIOD
    assert fit.rms_residual == pytest.approx(SYNC_PERIOD / 12**0.5, rel=0.1)
    assert fit.effective_rate == pytest.approx(29999.9676, abs=1e-4)
    aligned = apply(fit, np.load(realdata / CONTINUOUS / "spike_times.npy"), 30000.0)
    assert aligned.shape == (10_000,)
    assert np.max(np.abs(aligned - master)) < SYNC_PERIOD


# --- the VBN golden case ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def vbn(realdata):
    case = json.loads((realdata / "alignment" / "vbn_test_case_1.json").read_text())
    probes = {}
    for p in case["probes"]:
        rate = p["sampling_rate"]
        rising, falling = edges_from_states(p["barcode_timestamps"], p["channel_states"], 1, rate)
        raw = np.asarray(p["raw_spike_timestamps"], dtype=float).ravel()
        aligned = np.asarray(p["aligned_spike_timestamps"]).ravel()
        probes[p["name"]] = {
            **p,
            "barcodes": decode_barcodes(rising, falling),
            "published": _linear(raw / rate, aligned),  # the pipeline's exact linear map
        }
    return probes


def test_vbn_published_fits_go_through_barcodes_1_and_29(vbn):
    # The published mappings are two-barcode fits; the truncated sync file recorded barcodes
    # 0-29 only, so every probe's mapping passes exactly through barcodes 1 and 29 of probeA's.
    ref = vbn["probeA"]
    ref_master = np.polyval(ref["published"], ref["barcodes"].times)
    for p in vbn.values():
        master = np.polyval(p["published"], p["barcodes"].times)
        assert np.max(np.abs(master[[1, 29]] - ref_master[[1, 29]])) < 1e-7
        # ... and disagree by up to ~0.9 ms where they extrapolate past the sync's end
        assert np.max(np.abs(master[30:] - ref_master[30:])) < 1e-3


def test_vbn_lfp_timestamps_count_on_the_spike_band_clock(vbn):
    for p in vbn.values():
        raw_lfp = np.asarray(p["raw_lfp_timestamps"], dtype=float)
        expected = np.polyval(p["published"], raw_lfp / p["sampling_rate"])
        np.testing.assert_allclose(p["aligned_lfp_timestamps"], expected, rtol=0, atol=1e-9)


def _sync_times_from(ref):
    """Sync-side times of the 30 barcodes the sync recorded, from `ref`'s published mapping,
    quantised to a 100 kHz sync clock (every probe maps the shared barcodes to the sync)."""
    times, values = ref["barcodes"].times[:30], ref["barcodes"].values[:30]
    return np.round(np.polyval(ref["published"], times) / SYNC_PERIOD) * SYNC_PERIOD, values


def _align_against(p, sync_times, values):
    rate = p["sampling_rate"]
    fit = fit_clock(
        p["barcodes"].times,
        p["barcodes"].values,
        sync_times,
        values,
        sync_sample_period=SYNC_PERIOD,
        nominal_rate=rate,
        probe=p["name"],
    )
    spikes = apply(fit, np.asarray(p["raw_spike_timestamps"]), rate)
    lfp = apply(fit, np.asarray(p["raw_lfp_timestamps"]), rate)
    err_spikes = np.max(np.abs(spikes - np.ravel(p["aligned_spike_timestamps"])))
    err_lfp = np.max(np.abs(lfp - np.asarray(p["aligned_lfp_timestamps"])))
    return fit, max(err_spikes, err_lfp)


@pytest.mark.parametrize("name", ["probeA", "probeB", "probeC", "probeD", "probeE", "probeF"])
def test_vbn_probe_reproduces_its_published_times(vbn, name):
    # the sync times come from another probe's mapping: probeB's for probeA (the pipeline's
    # reference probe), probeA's for the others
    ref = vbn["probeB" if name == "probeA" else "probeA"]
    fit, err = _align_against(vbn[name], *_sync_times_from(ref))
    assert (fit.n_matched, fit.n_used) == (30, 30), fit.note
    # both clocks stamp an edge up to one of their samples late: the reference probe's 33 µs
    # rounding is inside these "sync" times
    assert fit.rms_residual < 16e-6
    assert fit.max_residual < 40e-6
    assert err < PROBE_SAMPLE  # spike and LFP times within one probe sample of the published
    assert err > 0.5e-6  # an all-barcode fit, not the published two-barcode one


def test_vbn_every_probe_from_every_other_probes_sync_times(vbn):
    # the all-barcode fit and the published two-barcode fit differ by up to ~18 µs
    errors = {}
    for ref_name, ref in vbn.items():
        sync_times, values = _sync_times_from(ref)
        for name, p in vbn.items():
            if name != ref_name:
                fit, errors[name, ref_name] = _align_against(p, sync_times, values)
                assert fit.status == "aligned", (name, ref_name, fit.note)
    assert len(errors) == 30
    assert max(errors.values()) < PROBE_SAMPLE


# --- synthetic clocks ------------------------------------------------------------------------


def _session(ppm=3.0, offset=12.345, n=300, seed=1):
    """Barcodes on a sync clock and on a probe clock that runs `ppm` fast and starts late."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 1 << 31, n)
    starts = 20.0 + 30.95 * np.arange(n) + rng.uniform(0, 0.01, n)  # true (sync) times
    rate, true_rate = 30000.0, 30000.0 * (1 + ppm * 1e-6)

    def probe_time(t):  # probe samples are counted on the probe's own clock
        # (rounded: a fixed sub-sample latency of the TTL input would shift every aligned time
        # by that latency, which no barcode can reveal)
        return np.round((t - offset) * true_rate) / rate

    on, off = barcode_train(values, starts)
    sync_on, sync_off = (np.round(x / SYNC_PERIOD) * SYNC_PERIOD for x in (on, off))
    sync = decode_barcodes(sync_on, sync_off)
    probe = decode_barcodes(probe_time(on), probe_time(off))
    return sync, probe, true_rate, offset


def test_drifting_clock_is_recovered():
    sync, probe, true_rate, offset = _session()
    fit = fit_clock(*probe, *sync, sync_sample_period=SYNC_PERIOD, nominal_rate=30000.0)
    assert fit.status == "aligned", fit.note
    assert fit.n_matched == 300
    assert abs(fit.effective_rate / true_rate - 1) < 0.1e-6  # within 0.1 ppm
    samples = np.arange(0, int(2.6 * 3600 * 30000), 997_001)
    truth = offset + samples / true_rate
    assert np.max(np.abs(apply(fit, samples, 30000.0) - truth)) < SYNC_PERIOD


def test_outlier_is_left_out_and_audited():
    sync, probe, *_ = _session()
    bad_times = sync.times.copy()
    bad_times[100] += 0.002  # a 2 ms error on one sync barcode
    fit = fit_clock(
        *probe, bad_times, sync.values, sync_sample_period=SYNC_PERIOD, nominal_rate=3e4
    )
    clean = fit_clock(*probe, *sync, sync_sample_period=SYNC_PERIOD, nominal_rate=3e4)
    assert fit.status == "aligned"
    assert (fit.n_matched, fit.n_used) == (300, 299)
    assert "1 of 300 matched barcodes left out as outliers" in fit.note
    assert fit.a == pytest.approx(clean.a, abs=1e-10)
    audit = fit.audit.to_pydict()
    assert audit["used_in_fit"].count(False) == 1
    assert audit["used_in_fit"][100] is False
    assert audit["residual"][100] == pytest.approx(0.002, abs=2e-5)


def test_barcodes_missing_on_one_side_and_repeated_values():
    sync, probe, *_ = _session(n=40)
    values = sync.values.copy()
    values[5] = values[6]  # a repeated value is ambiguous: both are left unmatched
    fit = fit_clock(*probe, sync.times[3:], values[3:], sync_sample_period=SYNC_PERIOD)
    assert fit.n_matched == 40 - 3 - 2
    audit = fit.audit.to_pydict()
    assert audit["sync_time"][:3] == [None, None, None]
    assert audit["residual"][5] is None and audit["used_in_fit"][5] is False
    table = conform_table(TABLES["clock_alignment"], fit.audit, "s1")
    assert table.num_rows == 40


def test_probe_without_ttl_events_is_unaligned():
    sync, *_ = _session(n=10)
    fit = fit_clock([], [], *sync, sync_sample_period=SYNC_PERIOD, nominal_rate=30000.0)
    assert fit.status == "unaligned"
    assert not fit.aligned
    assert "no barcodes on the probe clock" in fit.note
    assert (fit.a, fit.b, fit.effective_rate) == (1.0, 0.0, None)
    assert fit.audit.num_rows == 0
    columns = fit.probe_columns()
    assert columns["clock_status"] == "unaligned" and columns["clock_slope"] is None
    assert set(columns) <= set(TABLES["probes"].column_names)
    with pytest.raises(DecodeError, match="unaligned"):
        apply(fit, np.arange(3), 30000.0)
    assert apply(fit, np.arange(3), 30000.0, allow_unaligned=True).tolist() == [
        0.0,
        1 / 30000,
        2 / 30000,
    ]


def test_probe_whose_ttl_folder_is_empty_is_unaligned(tmp_path):
    sync, *_ = _session(n=10)
    rec = write_openephys_recording(tmp_path / "rec", samples=[], states=[])
    ttl = read_ttl_events(rec)
    probe = decode_barcodes(*ttl.edges(line=1))
    fit = fit_clock(*probe, *sync, sync_sample_period=SYNC_PERIOD, nominal_rate=ttl.sample_rate)
    assert fit.status == "unaligned"
    assert fit.probe_columns()["clock_note"].startswith("no barcodes on the probe clock")


def test_fewer_than_two_matches_is_unaligned():
    sync, probe, *_ = _session(n=10)
    fit = fit_clock(*probe, sync.times[:1], sync.values[:1], sync_sample_period=SYNC_PERIOD)
    assert fit.status == "unaligned"
    assert "1 barcode(s) match" in fit.note
    assert fit.audit.column("sync_time").null_count == 9


def test_two_matches_are_flagged():
    sync, probe, *_ = _session(n=10)
    fit = fit_clock(*probe, sync.times[:2], sync.values[:2], sync_sample_period=SYNC_PERIOD)
    assert fit.status == "flagged"
    assert "only 2 barcodes" in fit.note


def test_large_residuals_and_wrong_rate_are_flagged():
    sync, probe, *_ = _session(n=50)
    noisy = sync.times + np.random.default_rng(2).normal(0, 30e-6, len(sync.times))
    fit = fit_clock(*probe, noisy, sync.values, sync_sample_period=SYNC_PERIOD, nominal_rate=3e4)
    assert fit.status == "flagged"
    assert "exceeds the clocks' resolution (43.3 µs)" in fit.note
    wrong = fit_clock(probe.times * 12, probe.values, *sync, sync_sample_period=SYNC_PERIOD)
    assert wrong.status == "flagged"
    assert "is the nominal rate right?" in wrong.note


# --- every barcode edge: the VBN golden case and synthetic sessions with known truth ----------


def _sync_edges_from(ref):
    """Every edge of the 30 barcodes the sync recorded, mapped through `ref`'s published
    mapping and quantised to the 100 kHz sync clock (owners index the first 30 barcodes)."""
    edges = ref["barcodes"].edges
    keep = edges.owner < 30
    times = np.round(np.polyval(ref["published"], edges.times[keep]) / SYNC_PERIOD) * SYNC_PERIOD
    return BarcodeEdges(edges.owner[keep], edges.rank[keep], times)


@pytest.mark.parametrize("name", ["probeA", "probeB", "probeC", "probeD", "probeE", "probeF"])
def test_vbn_every_edge_fit_stays_within_one_probe_sample(vbn, name):
    ref = vbn["probeB" if name == "probeA" else "probeA"]
    p = vbn[name]
    rate = p["sampling_rate"]
    fit = fit_clock(
        p["barcodes"].times,
        p["barcodes"].values,
        *_sync_times_from(ref),
        sync_sample_period=SYNC_PERIOD,
        nominal_rate=rate,
        probe=name,
        probe_edges=p["barcodes"].edges,
        sync_edges=_sync_edges_from(ref),
    )
    assert fit.status == "aligned", fit.note
    assert fit.n_used == 30
    audit = fit.audit.to_pydict()
    used = [n for n, u in zip(audit["n_edges"], audit["used_in_fit"], strict=True) if u]
    assert len(used) == 30 and min(used) >= 4  # start pulse and bits, paired on both clocks
    assert fit.n_edges == sum(used) > 30 * 10
    spikes = apply(fit, np.asarray(p["raw_spike_timestamps"]), rate)
    lfp = apply(fit, np.asarray(p["raw_lfp_timestamps"]), rate)
    err = max(
        np.max(np.abs(spikes - np.ravel(p["aligned_spike_timestamps"]))),
        np.max(np.abs(lfp - np.asarray(p["aligned_lfp_timestamps"]))),
    )
    assert err < PROBE_SAMPLE


ALIGN_SIZE = SizeSpec(n_probes=3, units_per_probe=8, channels_per_probe=32, duration_s=400.0,
                      mean_rate_hz=3.0, n_trials=20)  # fmt: skip
#: Synthetic rig sessions (Allen barcodes every 30.95 s) with each quirk of the writer.
QUIRK_SESSIONS = {
    "plain": RigQuirks(),
    "truncated_last_barcode": RigQuirks(truncated_last_barcode=True),
    "dropped_barcode": RigQuirks(dropped_barcode=True),
    "glitch": RigQuirks(glitch=True),
    "counter_bits": RigQuirks(counter_bits=22),
    "all": RigQuirks(
        truncated_last_barcode=True, dropped_barcode=True, glitch=True, counter_bits=24
    ),
}
ALIGN_TOLERANCE_S = 5e-6
RATE_TOLERANCE_PPM = 0.05


def _aligned_against_truth(tmp_path, seed: int, quirks: RigQuirks):
    """(largest spike-time error, largest rate error in ppm, decoded bundle) of one session."""
    session = generate_session(f"align-{seed}", seed=seed, size=ALIGN_SIZE)
    truth = write_rig_session(session, tmp_path / rig_folder_name(session), quirks=quirks)
    bundle = RigDecoder().decode(truth.folder, DecodeOptions())
    batches = list(bundle.batches("spikes"))
    time = np.concatenate([b.column("time").to_numpy() for b in batches])
    _, true_time = truth.expected_spikes()
    probes = {r["probe"]: r for r in bundle.table("probes").to_pylist()}
    rates = [abs((probes[p.name]["clock_slope"] - 1) * 1e6 - p.drift_ppm) for p in truth.probes]
    return float(np.max(np.abs(time - true_time))), max(rates), bundle


@pytest.mark.parametrize("name", list(QUIRK_SESSIONS))
def test_synthetic_quirk_sessions_align_within_5_us(tmp_path, name):
    error, rate_error, bundle = _aligned_against_truth(tmp_path, 5, QUIRK_SESSIONS[name])
    assert error <= ALIGN_TOLERANCE_S
    assert rate_error <= RATE_TOLERANCE_PPM
    # the audit says which edges were used: every matched barcode's start and bits
    audit = bundle.table("clock_alignment").to_pylist()
    used = [r for r in audit if r["used_in_fit"]]
    assert used and all(r["n_edges"] >= 4 for r in used)
    assert all(r["n_edges"] == 0 for r in audit if not r["used_in_fit"])
    for probe in bundle.table("probes").to_pylist():
        mine = [r["n_edges"] for r in audit if r["probe"] == probe["probe"]]
        assert probe["clock_n_edges"] == sum(mine) > 10 * probe["clock_n_barcodes"]


@pytest.mark.parametrize("seed", [6, 7, 8])
@pytest.mark.parametrize("name", list(QUIRK_SESSIONS))
def test_more_synthetic_quirk_sessions_align_within_5_us(tmp_path, name, seed):
    error, rate_error, _ = _aligned_against_truth(tmp_path, seed, QUIRK_SESSIONS[name])
    assert error <= ALIGN_TOLERANCE_S
    assert rate_error <= RATE_TOLERANCE_PPM


def test_every_edge_fit_beats_the_barcode_start_fit(tmp_path):
    """The same barcodes, fitted through their starts only and through every edge."""
    session = generate_session("align-5", seed=5, size=ALIGN_SIZE)
    truth = write_rig_session(session, tmp_path / rig_folder_name(session))
    edges = decode_edges(read_sync(truth.sync_file))
    sync = decode_barcodes(
        line_edges(edges, "barcode_ephys", True),
        line_edges(edges, "barcode_ephys", False),
        end_time=truth.sync_duration,
    )
    worst = {"starts": 0.0, "edges": 0.0}
    for p in truth.probes:
        probe = decode_barcodes(*read_ttl_events(p.folder, sample_rate=30000.0).edges(line=1))
        t = np.linspace(0.0, 400.0, 1001)  # probe seconds over the session
        every = {"probe_edges": probe.edges, "sync_edges": sync.edges}
        for kind in worst:
            extra = every if kind == "edges" else {}
            fit = fit_clock(*probe, *sync, sync_sample_period=SYNC_PERIOD, **extra)
            error = np.max(np.abs(fit.a * t + fit.b - (p.slope * t + p.offset)))
            worst[kind] = max(worst[kind], float(error))
    assert worst["edges"] <= ALIGN_TOLERANCE_S < worst["starts"]
    assert worst["edges"] < worst["starts"] / 2
