"""Running speed from a wheel encoder: rotation per frame -> cm/s, then a zero-phase low-pass.

Shared by the TaskControl (`task.py`) and camstim (`camstim.py`) decoders. Arrays in, arrays
out, no I/O. Conventions, the same for every source:

- The encoder is read once per frame. Sample ``i`` of the output is the rotation between the
  reads of frames ``i - 1`` and ``i``, divided by ``t[i] - t[i - 1]``, and is stamped with the
  LATER frame's time ``t[i]``. A session of ``n`` frames gives ``n - 1`` speed samples (the
  first read has no interval before it).
- Speed = rotation (revolutions) x 2 pi r / interval, in cm/s for a radius ``r`` in cm.
  Positive is whatever direction the source counts as positive; no sign is flipped.
- The raw speed is low-passed with a 3rd-order Butterworth filter at 4 Hz, run forwards and
  backwards (zero phase, as ``scipy.signal.filtfilt`` with its default odd padding), designed
  for the median sample interval. This is the filter the Allen SDK and the Dynamic Routing
  pipeline apply (``butter(3, 4 Hz)`` + ``filtfilt``); it is implemented here in numpy so that
  scipy is not a dependency, and the tests check it against a plain reference (and scipy when
  installed).
"""

from __future__ import annotations

import numpy as np

#: Low-pass cutoff applied to running speed (Hz).
LOWPASS_HZ = 4.0
#: Order of the Butterworth low-pass.
LOWPASS_ORDER = 3
#: Impulse-response tail below which the IIR filter is truncated (relative to its peak).
_TAIL = 1e-18


def speed_from_counts(
    counts: np.ndarray,
    times: np.ndarray,
    *,
    counts_per_rev: float,
    radius_cm: float,
    lowpass_hz: float | None = LOWPASS_HZ,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Running speed from cumulative encoder counts read once per frame.

    Parameters
    ----------
    counts
        Cumulative encoder count at each frame's read (float; NaN marks a failed read).
    times
        Time of each frame (s), same length as `counts`, strictly increasing.
    counts_per_rev
        Encoder counts per wheel revolution.
    radius_cm
        Wheel radius (cm).
    lowpass_hz
        Cutoff of the zero-phase low-pass; None returns the raw speed.

    Returns
    -------
    (times, speed, n_missing): ``times[1:]``, speed in cm/s, and the number of failed reads,
    which are filled by linear interpolation of the count in time (a missed read does not lose
    the rotation: the next good read still holds it).

    Examples
    --------
    >>> t = np.arange(5) / 60.0
    >>> _, v, _ = speed_from_counts(t * 60.0, t, counts_per_rev=60.0, radius_cm=1.0,
    ...                             lowpass_hz=None)
    >>> np.allclose(v, 2 * np.pi)
    True
    """
    counts = np.asarray(counts, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    _check_samples(counts, times)
    missing = ~np.isfinite(counts)
    n_missing = int(missing.sum())
    if n_missing:
        if n_missing == len(counts):
            msg = "every encoder read is missing"
            raise ValueError(msg)
        counts = counts.copy()
        counts[missing] = np.interp(times[missing], times[~missing], counts[~missing])
    revolutions = np.diff(counts) / float(counts_per_rev)
    speed = rotation_to_speed(revolutions, times, radius_cm=radius_cm, lowpass_hz=lowpass_hz)
    return times[1:], speed, n_missing


def speed_from_degrees(
    dx_deg: np.ndarray,
    times: np.ndarray,
    *,
    radius_cm: float,
    lowpass_hz: float | None = LOWPASS_HZ,
) -> tuple[np.ndarray, np.ndarray]:
    """Running speed from the wheel rotation (degrees) read at each frame.

    `dx_deg[i]` is the rotation since the previous read, taken just before frame `i`; its
    length equals that of `times`. `dx_deg[0]` has no interval and is dropped. Non-finite
    rotations are treated as no rotation.

    Returns
    -------
    (times, speed): ``times[1:]`` and speed in cm/s.
    """
    dx_deg = np.asarray(dx_deg, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    _check_samples(dx_deg, times)
    revolutions = np.nan_to_num(dx_deg[1:], nan=0.0, posinf=0.0, neginf=0.0) / 360.0
    speed = rotation_to_speed(revolutions, times, radius_cm=radius_cm, lowpass_hz=lowpass_hz)
    return times[1:], speed


def rotation_to_speed(
    revolutions: np.ndarray,
    times: np.ndarray,
    *,
    radius_cm: float,
    lowpass_hz: float | None = LOWPASS_HZ,
) -> np.ndarray:
    """Speed (cm/s) from revolutions per frame interval; `times` has one more entry."""
    dt = np.diff(times)
    speed = np.asarray(revolutions, dtype=np.float64) * (2.0 * np.pi * float(radius_cm)) / dt
    if lowpass_hz is None or len(speed) < 2:
        return speed
    fs = 1.0 / float(np.median(dt))
    return lowpass_zero_phase(speed, cutoff_hz=lowpass_hz, fs=fs)


def lowpass_zero_phase(
    x: np.ndarray, *, cutoff_hz: float, fs: float, order: int = LOWPASS_ORDER
) -> np.ndarray:
    """Zero-phase Butterworth low-pass of a uniformly sampled signal (filtfilt).

    Examples
    --------
    >>> y = lowpass_zero_phase(np.full(100, 3.0), cutoff_hz=4.0, fs=60.0)
    >>> np.allclose(y, 3.0)
    True
    """
    if not 0.0 < cutoff_hz < fs / 2.0:
        msg = f"cutoff {cutoff_hz} Hz must lie between 0 and the Nyquist rate {fs / 2.0} Hz"
        raise ValueError(msg)
    b, a = butter_lowpass(order, cutoff_hz, fs)
    return filtfilt(b, a, x)


def butter_lowpass(order: int, cutoff_hz: float, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Digital Butterworth low-pass coefficients (b, a), as ``scipy.signal.butter(order, f, fs)``.

    Analog prototype poles, pre-warped cutoff, bilinear transform; all zeros at z = -1.
    """
    wn = 2.0 * cutoff_hz / fs  # cutoff as a fraction of Nyquist
    bilinear = 4.0  # 2 * fs for the normalised sampling rate fs = 2
    warped = bilinear * np.tan(np.pi * wn / 2.0)
    m = np.arange(-order + 1, order, 2)
    poles = -np.exp(1j * np.pi * m / (2 * order)) * warped
    z_poles = (bilinear + poles) / (bilinear - poles)
    gain = warped**order * np.real(1.0 / np.prod(bilinear - poles))
    b = gain * np.real(np.poly(-np.ones(order)))
    a = np.real(np.poly(z_poles))
    return b, a


def filtfilt(b: np.ndarray, a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Forward-backward IIR filter with odd padding, as ``scipy.signal.filtfilt`` (defaults)."""
    b, a = _normalised(b, a)
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return x.copy()
    pad = min(3 * max(len(a), len(b)), n - 1)
    ext = np.concatenate(
        [2 * x[0] - x[pad:0:-1], x, 2 * x[-1] - x[-2 : -pad - 2 : -1] if pad else x[:0]]
    )
    zi = lfilter_zi(b, a)
    y = lfilter(b, a, ext, zi=zi * ext[0])
    y = lfilter(b, a, y[::-1], zi=zi * y[-1])[::-1]
    return y[pad : pad + n]


def lfilter(b: np.ndarray, a: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None):
    """Causal IIR filter, as ``scipy.signal.lfilter`` (transposed direct form II).

    Computed without a per-sample Python loop: the response to `x` is its convolution (FFT)
    with the filter's impulse response, truncated where it has decayed below 1e-18 of its
    peak, plus the decaying free response to the initial state `zi`.
    """
    b, a = _normalised(b, a)
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    length = min(_decay_length(a), max(n, 1))
    h = _run_df2t(b, a, np.r_[1.0, np.zeros(length - 1)], np.zeros(len(a) - 1))
    y = _fft_convolve(x, h)[:n]
    if zi is not None:
        free = _run_df2t(b, a, np.zeros(min(length, n)), np.asarray(zi, dtype=np.float64))
        y[: len(free)] += free
    return y


def lfilter_zi(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Initial state for a step response at steady state, as ``scipy.signal.lfilter_zi``."""
    b, a = _normalised(b, a)
    k = len(a) - 1
    companion_t = np.zeros((k, k))
    companion_t[:, 0] = -a[1:]
    companion_t[np.arange(k - 1), np.arange(1, k)] = 1.0
    rhs = b[1:] - a[1:] * b[0]
    return np.linalg.solve(np.eye(k) - companion_t, rhs)


def _normalised(b: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients as float arrays of equal length, normalised so that a[0] == 1."""
    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    size = max(len(a), len(b))
    b = np.pad(b, (0, size - len(b)))
    a = np.pad(a, (0, size - len(a)))
    return b / a[0], a / a[0]


def _decay_length(a: np.ndarray) -> int:
    """Samples until the slowest pole has decayed below `_TAIL` (a stable filter assumed)."""
    if len(a) < 2:
        return 1
    radius = float(np.max(np.abs(np.roots(a))))
    if radius >= 1.0:
        msg = "the filter is unstable (a pole on or outside the unit circle)"
        raise ValueError(msg)
    if radius == 0.0:
        return len(a)
    return int(np.ceil(np.log(_TAIL) / np.log(radius))) + 4 * len(a)


def _run_df2t(b: np.ndarray, a: np.ndarray, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Plain transposed-direct-form-II recursion; only ever run on short arrays."""
    z = z.copy()
    y = np.empty(len(x))
    for i, xi in enumerate(x):
        yi = b[0] * xi + z[0]
        z[:-1] = z[1:] + b[1:-1] * xi - a[1:-1] * yi
        z[-1] = b[-1] * xi - a[-1] * yi
        y[i] = yi
    return y


def _fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Full linear convolution of two real arrays through the FFT."""
    size = len(x) + len(h) - 1
    nfft = 1 << max(size - 1, 1).bit_length()
    spectrum = np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft)
    return np.fft.irfft(spectrum, nfft)[:size]


def _check_samples(values: np.ndarray, times: np.ndarray) -> None:
    if values.ndim != 1 or times.ndim != 1 or len(values) != len(times):
        msg = f"need 1-d arrays of equal length, got {values.shape} and {times.shape}"
        raise ValueError(msg)
    if len(times) > 1 and not np.all(np.diff(times) > 0):
        msg = "sample times must be strictly increasing"
        raise ValueError(msg)
