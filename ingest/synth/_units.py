"""Sorted units of a synthetic session: placement, firing parameters, quality metrics, waveforms.

Everything here is one vectorised draw per column; spike trains are made in `_spikes.py` from the
parameters chosen here, and the spike-derived metrics (firing_rate, presence_ratio) are filled in
afterwards by `with_spike_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ingest.synth._anatomy import UNIT_DENSITY, Channels

#: Samples of a mean waveform (Allen: 82 at 30 kHz, trough at sample 20).
WAVEFORM_SAMPLES = 82
WAVEFORM_RATE_HZ = 30_000.0
WAVEFORM_TROUGH_SAMPLE = 20

#: Allen quality-metric column names, in the order they are written.
METRIC_NAMES: tuple[str, ...] = (
    "snr",
    "isi_violations",
    "amplitude_cutoff",
    "presence_ratio",
    "firing_rate",
    "amplitude",
    "waveform_duration",
    "waveform_halfwidth",
    "PT_ratio",
    "repolarization_slope",
    "recovery_slope",
    "spread",
    "velocity_above",
    "velocity_below",
    "d_prime",
    "isolation_distance",
    "l_ratio",
    "nn_hit_rate",
    "nn_miss_rate",
    "silhouette_score",
    "max_drift",
    "cumulative_drift",
)
#: Metrics that sorters leave undefined (NaN) now and then, and always for a unit without spikes.
_SOMETIMES_NAN = (
    "isi_violations",
    "amplitude_cutoff",
    "d_prime",
    "isolation_distance",
    "l_ratio",
    "nn_hit_rate",
    "nn_miss_rate",
    "silhouette_score",
)

#: Response windows relative to the event (s): change, flash, lick.
CHANGE_WINDOW_S = 0.22
FLASH_WINDOW_S = 0.15
LICK_WINDOW_S = (-0.05, 0.15)


@dataclass(frozen=True, eq=False)
class Units:
    """One entry per unit, in file order (probe, then peak channel); ids increase in that order.

    `baseline_rate` and the `*_gain` columns are the generative ground truth (Hz); a gain of 0
    means the unit does not respond to that event. `metrics` maps Allen metric names to float64
    arrays; NaN marks a metric the "sorter" could not compute.
    """

    unit_id: np.ndarray  # int64, increasing
    probe_index: np.ndarray  # int64
    peak_channel: np.ndarray  # int64, local channel index on the probe
    peak_row: np.ndarray  # int64, row in Channels (= NWB electrodes row)
    cluster_id: np.ndarray  # int64, unique within a probe
    quality: np.ndarray  # str, 'good' or 'noise'
    baseline_rate: np.ndarray  # float64, Hz
    change_gain: np.ndarray  # float64, Hz added for CHANGE_WINDOW_S after each image change
    change_latency: np.ndarray  # float64, s
    flash_gain: np.ndarray  # float64, Hz added for FLASH_WINDOW_S after each shown flash
    flash_latency: np.ndarray  # float64, s
    lick_gain: np.ndarray  # float64, Hz added around each lick (LICK_WINDOW_S)
    amplitude_v: np.ndarray  # float64, mean spike amplitude in volts
    metrics: dict[str, np.ndarray]
    waveform_mean: np.ndarray  # float32, (n_units, WAVEFORM_SAMPLES), volts
    waveform_sd: np.ndarray  # float32, (n_units, WAVEFORM_SAMPLES), volts

    def __len__(self) -> int:
        """Number of units."""
        return len(self.unit_id)


def make_units(
    rng: np.random.Generator,
    channels: Channels,
    n_probes: int,
    units_per_probe: int,
    mean_rate_hz: float,
) -> Units:
    """Place units on valid channels, draw firing parameters, metrics and waveforms."""
    probe_index, peak_channel, peak_row, cluster_id = _placement(
        rng, channels, n_probes, units_per_probe
    )
    n = len(probe_index)
    structure = channels.structure[peak_row]
    is_vis = np.char.startswith(structure.astype(str), "VIS")
    is_thal = np.isin(structure, ("LGd", "LP"))

    sigma = 1.0
    mu = np.log(mean_rate_hz) - sigma**2 / 2
    baseline = np.minimum(rng.lognormal(mu, sigma, n), 100.0)
    u = rng.random((3, n))
    change_gain = np.where(is_vis & (u[0] < 0.7), rng.lognormal(np.log(22.0), 0.5, n), 0.0)
    change_gain = np.where(is_thal & (u[0] < 0.3), rng.lognormal(np.log(10.0), 0.5, n), change_gain)
    flash_gain = np.where(
        (is_vis | is_thal) & (u[1] < 0.6), rng.lognormal(np.log(8.0), 0.5, n), 0.0
    )
    lick_gain = np.where(~is_vis & (u[2] < 0.15), rng.lognormal(np.log(15.0), 0.4, n), 0.0)
    change_latency = rng.uniform(0.03, 0.07, n)
    flash_latency = rng.uniform(0.035, 0.06, n)

    # Guarantees that make every session usable for PSTH and lick checks.
    vis_idx = np.flatnonzero(is_vis)
    if vis_idx.size:
        change_gain[vis_idx[0]] = max(change_gain[vis_idx[0]], 25.0)
    if not (lick_gain > 0).any():
        candidates = np.flatnonzero(~is_vis) if (~is_vis).any() else np.arange(n)
        lick_gain[candidates[-1]] = 15.0

    # Units without a single spike (a real-data hazard): never a guaranteed responder.
    protected = set(vis_idx[:1].tolist()) | set(np.flatnonzero(lick_gain > 0)[:1].tolist())
    pool = np.array([i for i in range(n) if i not in protected and 0 < i < n - 1])
    n_zero = max(1, n // 200)
    zero = np.sort(rng.choice(pool, size=min(n_zero, pool.size), replace=False))
    for arr in (baseline, change_gain, flash_gain, lick_gain):
        arr[zero] = 0.0

    quality = np.where(rng.random(n) < 0.9, "good", "noise")
    amplitude_uv = np.clip(rng.lognormal(np.log(150.0), 0.45, n), 30.0, 600.0)
    metrics = _draw_metrics(rng, amplitude_uv, is_fast=rng.random(n) < 0.2)
    for name in _SOMETIMES_NAN:
        metrics[name][zero] = np.nan
    # A 'good' unit with spikes whose isolation metrics are NaN: NaN must never pass a threshold.
    nan_unit = _nan_metric_unit(n, zero, protected)
    quality[nan_unit] = "good"
    baseline[nan_unit] = max(baseline[nan_unit], 2.0)
    metrics["isi_violations"][nan_unit] = np.nan
    metrics["amplitude_cutoff"][nan_unit] = np.nan

    mean, sd = _waveforms(amplitude_uv, metrics)
    gaps = rng.integers(1, 4, n)
    unit_id = 1_157_000_000 + int(rng.integers(0, 1_000_000)) + np.cumsum(gaps)
    return Units(
        unit_id=unit_id.astype(np.int64),
        probe_index=probe_index,
        peak_channel=peak_channel,
        peak_row=peak_row,
        cluster_id=cluster_id,
        quality=quality,
        baseline_rate=baseline,
        change_gain=change_gain,
        change_latency=change_latency,
        flash_gain=flash_gain,
        flash_latency=flash_latency,
        lick_gain=lick_gain,
        amplitude_v=amplitude_uv * 1e-6,
        metrics=metrics,
        waveform_mean=mean,
        waveform_sd=sd,
    )


def with_spike_metrics(
    units: Units, spike_count: np.ndarray, presence_ratio: np.ndarray, duration_s: float
) -> Units:
    """Units whose firing_rate (= spike_count / duration_s) and presence_ratio come from spikes."""
    metrics = dict(units.metrics)
    metrics["firing_rate"] = spike_count / float(duration_s)
    metrics["presence_ratio"] = presence_ratio
    return replace(units, metrics=metrics)


def _placement(
    rng: np.random.Generator, channels: Channels, n_probes: int, units_per_probe: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per probe: how many units (±20 %, exact total), peak channels by depth, cluster ids."""
    weights = rng.uniform(0.8, 1.2, n_probes)
    per_probe = np.floor(units_per_probe * n_probes * weights / weights.sum()).astype(np.int64)
    per_probe[: units_per_probe * n_probes - int(per_probe.sum())] += 1  # exact total
    probe_index, peak_channel, peak_row, cluster_id = [], [], [], []
    n_ch = int(np.sum(channels.probe_index == 0))
    for p in range(n_probes):
        rows = np.flatnonzero((channels.probe_index == p) & channels.valid)
        structure = channels.structure[rows]
        density = np.array([UNIT_DENSITY.get(s, 1.0) for s in structure])
        k = int(per_probe[p])
        chosen = rng.choice(rows, size=k, replace=True, p=density / density.sum())
        vis_rows = rows[np.char.startswith(structure.astype(str), "VIS")]
        if vis_rows.size and not np.isin(chosen, vis_rows).any():
            chosen[rng.integers(0, k)] = rng.choice(vis_rows)
        chosen = np.sort(chosen)
        probe_index.append(np.full(k, p, dtype=np.int64))
        peak_row.append(chosen.astype(np.int64))
        peak_channel.append((chosen - p * n_ch).astype(np.int64))
        cluster_id.append(rng.choice(int(k * 1.6) + 5, size=k, replace=False).astype(np.int64))
    return (
        np.concatenate(probe_index),
        np.concatenate(peak_channel),
        np.concatenate(peak_row),
        np.concatenate(cluster_id),
    )


def _nan_metric_unit(n: int, zero: np.ndarray, protected: set[int]) -> int:
    """Index of the unit that gets NaN isolation metrics: has spikes, not a guaranteed responder."""
    excluded = protected | set(zero.tolist())
    for i in (*range(1, n), 0):
        if i not in excluded:
            return i
    return 0


def _draw_metrics(
    rng: np.random.Generator, amplitude_uv: np.ndarray, is_fast: np.ndarray
) -> dict[str, np.ndarray]:
    """Allen-named quality and waveform metrics in realistic ranges (firing ones come later)."""
    n = len(amplitude_uv)
    duration = np.where(is_fast, rng.uniform(0.18, 0.35, n), rng.uniform(0.45, 0.85, n))
    m = {
        "snr": np.clip(rng.lognormal(np.log(2.5), 0.45, n), 0.3, 12.0),
        "isi_violations": np.where(
            rng.random(n) < 0.2, 0.0, np.clip(rng.lognormal(np.log(0.05), 1.5, n), 0.0, 20.0)
        ),
        "amplitude_cutoff": np.minimum(0.5 * rng.beta(0.7, 4.0, n) * 1.3, 0.5),
        "presence_ratio": np.full(n, np.nan),
        "firing_rate": np.full(n, np.nan),
        "amplitude": amplitude_uv,
        "waveform_duration": duration,
        "waveform_halfwidth": np.where(
            is_fast, rng.uniform(0.08, 0.15, n), rng.uniform(0.15, 0.35, n)
        ),
        "PT_ratio": rng.uniform(0.2, 0.8, n),
        "repolarization_slope": rng.uniform(0.2, 1.5, n),
        "recovery_slope": -rng.uniform(0.0, 0.3, n),
        "spread": 10.0 * rng.integers(2, 16, n),
        "velocity_above": rng.normal(0.3, 1.0, n),
        "velocity_below": rng.normal(-0.3, 1.0, n),
        "d_prime": np.clip(rng.lognormal(np.log(4.0), 0.4, n), 0.5, 15.0),
        "isolation_distance": np.clip(rng.lognormal(np.log(55.0), 0.5, n), 5.0, 300.0),
        "l_ratio": np.clip(rng.lognormal(np.log(0.01), 1.2, n), 0.0, 1.0),
        "nn_hit_rate": rng.beta(8.0, 1.5, n),
        "nn_miss_rate": rng.beta(1.0, 60.0, n),
        "silhouette_score": rng.uniform(-0.1, 0.4, n),
        "max_drift": np.round(rng.lognormal(np.log(25.0), 0.6, n), 2),
        "cumulative_drift": np.round(rng.lognormal(np.log(200.0), 0.5, n), 2),
    }
    for name in _SOMETIMES_NAN:
        m[name][rng.random(n) < 0.02] = np.nan
    m["velocity_above"][rng.random(n) < 0.1] = np.nan
    m["velocity_below"][rng.random(n) < 0.3] = np.nan
    return m


def _waveforms(
    amplitude_uv: np.ndarray, metrics: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd waveform (volts, float32) from amplitude, PT ratio, duration and halfwidth."""
    t_ms = np.arange(WAVEFORM_SAMPLES) / (WAVEFORM_RATE_HZ / 1000.0)
    t0 = WAVEFORM_TROUGH_SAMPLE / (WAVEFORM_RATE_HZ / 1000.0)
    pt = metrics["PT_ratio"][:, None]
    trough = amplitude_uv[:, None] / (1.0 + pt)
    s1 = metrics["waveform_halfwidth"][:, None] / 2.355
    dur = metrics["waveform_duration"][:, None]
    s2 = np.maximum(0.5 * dur, 0.1)
    wave_uv = -trough * np.exp(-0.5 * ((t_ms - t0) / s1) ** 2) + trough * pt * np.exp(
        -0.5 * ((t_ms - t0 - dur) / s2) ** 2
    )
    sd_uv = 0.12 * np.abs(wave_uv) + 8.0
    return (wave_uv * 1e-6).astype(np.float32), (sd_uv * 1e-6).astype(np.float32)
