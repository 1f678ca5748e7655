"""Barcodes: the real probe TTL trains pinned, and the quirks on synthetic trains."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ingest.rig.barcodes import decode_barcodes
from ingest.rig.openephys import edges_from_states, read_ttl_events
from tests.ingest.rig.fakes import barcode_train

SORTED = "sorting/725254892_388523_20180726_probeA_sorted"
PERIOD = 30.95


def _values(n, seed=0):
    return np.random.default_rng(seed).integers(0, 1 << 31, n)


def _train(n=6, t0=5.0, seed=0):
    values = _values(n, seed)
    starts = t0 + PERIOD * np.arange(n)
    return values, starts, *barcode_train(values, starts)


def test_real_kilosort_probe_barcodes(realdata):
    ttl = read_ttl_events(realdata / SORTED)
    assert len(ttl.samples) == 5_361
    rising, falling = ttl.edges(line=1)
    assert (len(rising), len(falling)) == (2_676, 2_676)
    times, values = decode_barcodes(rising, falling)
    assert len(values) == 298
    assert values[:5].tolist() == [427036243, 307787827, 1849386413, 2106620260, 403821731]
    assert values[-3:].tolist() == [1637414934, 29859433, 1483800680]
    assert times[0] == pytest.approx(358848 / 30000)
    assert len(np.unique(values)) == 298
    assert values.max() < 2**31
    gaps = np.diff(times)
    assert gaps.min() == pytest.approx(30.9691, abs=1e-3)
    assert gaps.max() == pytest.approx(30.9694, abs=1e-3)


def test_real_probe_glitch_line_is_not_the_barcode_line(realdata):
    # line 2 of this probe carries four 1-sample pulses; line 1 has none
    ttl = read_ttl_events(realdata / SORTED)
    rising, falling = ttl.edges(line=2)
    assert np.allclose(falling - rising, 1 / 30000)
    assert len(decode_barcodes(rising, falling).values) == 0


def test_vbn_case_probes_share_one_sequence(realdata):
    case = json.loads((realdata / "alignment" / "vbn_test_case_1.json").read_text())
    sequences = []
    for probe in case["probes"]:
        rising, falling = edges_from_states(
            probe["barcode_timestamps"], probe["channel_states"], 1, probe["sampling_rate"]
        )
        times, values = decode_barcodes(rising, falling)
        assert len(values) == 308, probe["name"]
        gaps = np.diff(times)
        assert gaps.min() > 30.95 and gaps.max() < 30.96
        sequences.append(values)
    assert all(np.array_equal(sequences[0], s) for s in sequences[1:])
    assert sequences[0][:3].tolist() == [319296920, 2009184234, 1326555410]
    assert sequences[0][-1] == 732568098


def test_synthetic_round_trip():
    values, starts, rising, falling = _train()
    times, decoded = decode_barcodes(rising, falling)
    assert decoded.tolist() == values.tolist()
    np.testing.assert_allclose(times, starts)


def test_extreme_values():
    values = np.array([0, 1, 2**32 - 1, 2**31, 0x55555555])
    starts = 1.0 + PERIOD * np.arange(len(values))
    decoded = decode_barcodes(*barcode_train(values, starts)).values
    assert decoded.tolist() == values.tolist()


def test_truncated_last_barcode_is_dropped():
    values, starts, rising, falling = _train()
    last = np.flatnonzero(rising > starts[-1])  # bit pulses of the last barcode
    assert len(last) >= 2
    # the recording stops while the line is high: a rise with no fall, no end time needed
    high_end = (rising[last[0]] + falling[last[0]]) / 2
    cut = decode_barcodes(rising[rising < high_end], falling[falling < high_end])
    assert cut.values.tolist() == values[:-1].tolist()
    # the recording stops while the line is low: only the recording's end tells
    low_end = (falling[last[0]] + rising[last[1]]) / 2
    rise, fall = rising[rising < low_end], falling[falling < low_end]
    truncated = decode_barcodes(rise, fall)
    assert len(truncated.values) == len(values)  # read as a (wrong) value ...
    assert truncated.values[-1] != values[-1]
    cut = decode_barcodes(rise, fall, end_time=low_end)  # ... unless the end is known
    assert cut.values.tolist() == values[:-1].tolist()


def test_truncated_first_barcode_is_dropped():
    values, starts, rising, falling = _train()
    begin = starts[0] + 0.3  # recording starts inside the first barcode
    decoded = decode_barcodes(rising[rising > begin], falling[falling > begin]).values
    assert decoded.tolist() == values[1:].tolist()


def test_dropped_barcode_is_just_missing():
    values, starts, *_ = _train(n=8)
    keep = np.arange(8) != 3
    decoded = decode_barcodes(*barcode_train(values[keep], starts[keep])).values
    assert decoded.tolist() == values[keep].tolist()


def test_one_sample_glitches_are_ignored():
    values, starts, rising, falling = _train(seed=4)
    one = 1 / 30000
    # a 1-sample pulse in the silence between barcodes, one inside a barcode's low bits,
    # and a 1-sample dropout in the middle of a high pulse
    long_pulse = np.argmax(falling - rising)
    mid = (rising[long_pulse] + falling[long_pulse]) / 2
    low_spot = starts[2] + 0.030  # between the start pulse and the first bit
    rise = np.sort(np.r_[rising, starts[1] + 10.0, low_spot, mid + one])
    fall = np.sort(np.r_[falling, starts[1] + 10.0 + one, low_spot + one, mid])
    assert decode_barcodes(rise, fall).values.tolist() == values.tolist()


def test_glitch_next_to_a_start_pulse():
    values, starts, rising, falling = _train(seed=5)
    one = 1 / 30000
    rise = np.sort(np.r_[rising, starts[3] - 0.002])
    fall = np.sort(np.r_[falling, starts[3] - 0.002 + one])
    times, decoded = decode_barcodes(rise, fall)
    assert decoded.tolist() == values.tolist()
    np.testing.assert_allclose(times, starts)


def test_drifting_clock_and_other_geometry():
    values = _values(5, seed=9)
    starts = 2.0 + 20.0 * np.arange(5)
    rising, falling = barcode_train(values, starts, bit_width=0.015, first_bit_offset=0.030)
    scale = 1 + 50e-6  # a clock 50 ppm fast
    times, decoded = decode_barcodes(
        rising * scale, falling * scale, bit_width=0.015, first_bit_offset=0.030
    )
    assert decoded.tolist() == values.tolist()
    np.testing.assert_allclose(times, starts * scale)


def test_a_burst_without_a_start_pulse_is_not_a_barcode():
    rise, fall = np.array([1.0, 40.0]), np.array([1.029, 40.020])
    times, values = decode_barcodes(rise, fall)
    assert times.tolist() == [40.0] and values.tolist() == [0]


def test_empty_and_unpaired_edges():
    assert len(decode_barcodes(np.array([]), np.array([])).values) == 0
    assert len(decode_barcodes(np.array([1.0]), np.array([])).values) == 0
    assert len(decode_barcodes(np.array([]), np.array([1.0])).values) == 0


def test_min_pulse_must_be_shorter_than_the_start_pulse():
    with pytest.raises(ValueError, match="min_pulse"):
        decode_barcodes(np.array([1.0]), np.array([1.02]), min_pulse=0.025)
