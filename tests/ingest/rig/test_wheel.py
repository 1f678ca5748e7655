"""Running speed and the numpy zero-phase Butterworth filter, against independent references."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.rig import _wheel


def _reference_lfilter(b, a, x, zi):
    """Textbook transposed-direct-form-II recursion, one sample at a time."""
    b = np.asarray(b, float) / a[0]
    a = np.asarray(a, float) / a[0]
    z = np.array(zi, dtype=float)
    k = len(a) - 1
    y = np.empty(len(x))
    for n, xn in enumerate(x):
        yn = b[0] * xn + z[0]
        for i in range(k - 1):
            z[i] = b[i + 1] * xn + z[i + 1] - a[i + 1] * yn
        z[k - 1] = b[k] * xn - a[k] * yn
        y[n] = yn
    return y


def _reference_zi(b, a):
    """Steady-state filter state for a unit step, found by running a long step through it."""
    b = np.asarray(b, float) / a[0]
    a = np.asarray(a, float) / a[0]
    z = np.zeros(len(a) - 1)
    for _ in range(5000):
        yn = b[0] + z[0]
        z = np.append(z[1:] + b[1:-1] - a[1:-1] * yn, b[-1] - a[-1] * yn)
    return z


def _reference_filtfilt(b, a, x):
    """filtfilt with odd padding of 3 * max(len(a), len(b)) samples (scipy's defaults)."""
    pad = 3 * max(len(a), len(b))
    ext = np.concatenate([2 * x[0] - x[pad:0:-1], x, 2 * x[-1] - x[-2 : -pad - 2 : -1]])
    zi = _reference_zi(b, a)
    y = _reference_lfilter(b, a, ext, zi * ext[0])
    y = _reference_lfilter(b, a, y[::-1], zi * y[-1])[::-1]
    return y[pad:-pad]


@pytest.mark.parametrize(("fs", "cutoff"), [(60.0, 4.0), (59.94, 4.0), (1000.0, 4.0), (60.0, 20.0)])
def test_butterworth_matches_the_analytic_magnitude_response(fs, cutoff):
    b, a = _wheel.butter_lowpass(3, cutoff, fs)
    f = np.linspace(0.0, fs / 2 * 0.999, 500)
    z = np.exp(-2j * np.pi * f / fs)
    h = np.polyval(b[::-1], z) / np.polyval(a[::-1], z)
    # bilinear-transformed Butterworth: |H|^2 = 1 / (1 + (tan(pi f / fs) / tan(pi fc / fs))^2N)
    ratio = np.tan(np.pi * f / fs) / np.tan(np.pi * cutoff / fs)
    np.testing.assert_allclose(np.abs(h) ** 2, 1 / (1 + ratio**6), atol=1e-9)
    assert np.abs(h[0]) == pytest.approx(1.0, abs=1e-9)  # unit gain at DC


def test_filtfilt_matches_a_plain_recursive_reference():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=3000)) + 5 * np.sin(np.arange(3000) / 7.0)
    b, a = _wheel.butter_lowpass(3, 4.0, 60.0)
    np.testing.assert_allclose(_wheel.filtfilt(b, a, x), _reference_filtfilt(b, a, x), atol=1e-9)
    np.testing.assert_allclose(_wheel.lfilter_zi(b, a), _reference_zi(b, a), atol=1e-12)
    zi = _reference_zi(b, a) * x[0]
    np.testing.assert_allclose(
        _wheel.lfilter(b, a, x, zi=zi), _reference_lfilter(b, a, x, zi), atol=1e-9
    )


def test_filter_agrees_with_scipy_when_installed():
    signal = pytest.importorskip("scipy.signal")
    x = np.random.default_rng(4).normal(size=20000).cumsum()
    for fs in (60.0, 1000.0):
        b, a = _wheel.butter_lowpass(3, 4.0, fs)
        sb, sa = signal.butter(3, 4.0, fs=fs)
        np.testing.assert_allclose(b, sb, rtol=1e-12)
        np.testing.assert_allclose(a, sa, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(_wheel.filtfilt(b, a, x), signal.filtfilt(sb, sa, x), atol=1e-9)


def test_short_signals_are_filtered_without_error():
    b, a = _wheel.butter_lowpass(3, 4.0, 60.0)
    for n in (1, 2, 5, 12, 13):
        y = _wheel.filtfilt(b, a, np.full(n, 7.0))
        np.testing.assert_allclose(y, 7.0, atol=1e-9)
    assert _wheel.filtfilt(b, a, np.zeros(0)).shape == (0,)


def test_constant_speed_encoder_gives_that_speed():
    rng = np.random.default_rng(5)
    times = np.concatenate([[0.0], np.cumsum(1 / 60 + rng.uniform(-1e-3, 1e-3, 6000))])
    speed, radius, per_rev = 17.5, 4.69, 8192
    counts = speed * times / (2 * np.pi * radius) * per_rev
    t, v, missing = _wheel.speed_from_counts(
        counts, times, counts_per_rev=per_rev, radius_cm=radius
    )
    np.testing.assert_array_equal(t, times[1:])
    assert missing == 0
    np.testing.assert_allclose(v, speed, rtol=1e-9)  # also at the edges: odd padding


def test_integer_counts_average_to_the_true_speed():
    times = np.arange(36001) / 60.0
    counts = np.floor(12.0 * times / (2 * np.pi * 4.69) * 8192)  # a real encoder counts whole steps
    _, v, _ = _wheel.speed_from_counts(counts, times, counts_per_rev=8192, radius_cm=4.69)
    assert v[600:-600].mean() == pytest.approx(12.0, rel=1e-4)


def test_step_in_speed_has_no_lag():
    times = np.arange(3001) / 60.0
    step = 1500  # speed sample index where the speed jumps from 0 to 20 cm/s
    raw = np.where(np.arange(3000) >= step, 20.0, 0.0)
    revolutions = raw * np.diff(times) / (2 * np.pi * 5.0)
    v = _wheel.rotation_to_speed(revolutions, times, radius_cm=5.0)
    # zero phase: the response is point-symmetric about the step (between samples 1499, 1500)
    j = np.arange(0, 400)
    np.testing.assert_allclose(v[step - 1 - j] + v[step + j], 20.0, atol=1e-9)
    assert v[step - 1] < 10.0 < v[step]
    # a causal filter of the same design lags: its half-way point comes several samples late
    b, a = _wheel.butter_lowpass(3, 4.0, 60.0)
    causal = _wheel.lfilter(b, a, raw)
    assert np.argmax(causal >= 10.0) - step >= 3
    assert np.argmax(v >= 10.0) == step


def test_failed_reads_are_interpolated_in_time():
    times = np.concatenate([[0.0], np.cumsum(np.full(1200, 1 / 60) + np.tile([0, 1e-3], 600))])
    counts = 9.0 * times / (2 * np.pi * 3.0) * 1000
    counts[[100, 101, 700]] = np.nan
    _, v, missing = _wheel.speed_from_counts(
        counts, times, counts_per_rev=1000, radius_cm=3.0, lowpass_hz=None
    )
    assert missing == 3
    np.testing.assert_allclose(v, 9.0, rtol=1e-9)


def test_degrees_per_frame_give_cm_per_second():
    times = np.arange(601) / 60.0
    dx = np.full(601, 1.5)  # 1.5 degrees per frame at 60 Hz = 0.25 rev/s
    t, v = _wheel.speed_from_degrees(dx, times, radius_cm=5.0, lowpass_hz=None)
    np.testing.assert_array_equal(t, times[1:])
    np.testing.assert_allclose(v, 0.25 * 2 * np.pi * 5.0, rtol=1e-12)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="strictly increasing"):
        _wheel.speed_from_counts(
            np.zeros(3), np.array([0.0, 1.0, 1.0]), counts_per_rev=1, radius_cm=1
        )
    with pytest.raises(ValueError, match="equal length"):
        _wheel.speed_from_degrees(np.zeros(3), np.zeros(4), radius_cm=1)
    with pytest.raises(ValueError, match="every encoder read"):
        _wheel.speed_from_counts(np.full(3, np.nan), np.arange(3.0), counts_per_rev=1, radius_cm=1)
    with pytest.raises(ValueError, match="Nyquist"):
        _wheel.lowpass_zero_phase(np.zeros(10), cutoff_hz=40.0, fs=60.0)
