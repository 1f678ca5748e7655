"""Spike trains: Poisson baselines plus event-locked responses, vectorised and block-wise.

Every spike sits on its probe's sample grid: `time = sample / sampling_rate` with an integer
sample in `[0, floor(duration * rate))`, so times are on the master clock, float64, and a rig
writer can turn them back into sample indices exactly. Spikes are built as int64 keys
`unit_row * stride + sample`; sorting the keys sorts by (unit, time) at once. Baseline spikes are
made one block of units at a time (a few million spikes each), so memory stays at a small
multiple of the final arrays however long the session.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Baseline spikes generated per block of units (bounds temporary memory).
_BLOCK_SPIKES = 4_000_000
#: Blocks of equal length over the session used for `presence_ratio` (Allen uses 100).
PRESENCE_BLOCKS = 100


@dataclass(frozen=True, eq=False)
class Spikes:
    """All spikes, unit after unit in Units order, each unit's times strictly increasing.

    `ends[i]` is the end offset of unit i in the flat arrays (the NWB `spike_times_index`):
    unit i owns `times[ends[i-1]:ends[i]]`, with `ends[-1]` read as 0.
    """

    times: np.ndarray  # float64, s, master clock
    amplitudes: np.ndarray  # float64, volts
    ends: np.ndarray  # int64, one per unit

    @property
    def counts(self) -> np.ndarray:
        """Spikes per unit (int64)."""
        return np.diff(self.ends, prepend=0)

    def of_unit(self, i: int) -> np.ndarray:
        """Spike times of the unit in row `i`."""
        start = int(self.ends[i - 1]) if i > 0 else 0
        return self.times[start : int(self.ends[i])]


@dataclass(frozen=True, eq=False)
class EventResponse:
    """An event-locked response: `gain` Hz more during [t + offset, t + offset + width)."""

    event_times: np.ndarray  # s
    gain: np.ndarray  # Hz per unit (0: no response)
    offset: np.ndarray  # s per unit
    width: np.ndarray  # s per unit


def generate_spikes(
    rng: np.random.Generator,
    *,
    unit_probe: np.ndarray,
    baseline_rate: np.ndarray,
    amplitude_v: np.ndarray,
    sampling_rate: np.ndarray,
    duration_s: float,
    responses: Sequence[EventResponse],
    forced: Sequence[tuple[int, int]] = (),
) -> tuple[Spikes, np.ndarray]:
    """Draw every unit's spikes; return them with each unit's presence ratio.

    `forced` holds (unit row, sample) pairs added verbatim; a negative sample counts from the
    end of the probe's grid (-1 = the last sample before `duration_s`).
    """
    n_units = len(unit_probe)
    n_samples = np.floor(duration_s * sampling_rate).astype(np.int64)  # per probe
    unit_samples = n_samples[unit_probe]
    unit_rate = sampling_rate[unit_probe]
    stride = int(n_samples.max()) + 1

    extra = _event_keys(rng, responses, unit_probe, sampling_rate, unit_samples, stride)
    if forced:
        rows = np.array([u for u, _ in forced], dtype=np.int64)
        samples = np.array([s for _, s in forced], dtype=np.int64)
        samples = np.where(samples < 0, unit_samples[rows] + samples, samples)
        extra = np.concatenate([extra, rows * stride + samples])
    extra.sort()

    base_counts = rng.poisson(baseline_rate * duration_s)
    upper = int(base_counts.sum()) + len(extra)
    times = np.empty(upper, dtype=np.float64)
    amplitudes = np.empty(upper, dtype=np.float64)
    counts = np.zeros(n_units, dtype=np.int64)
    present = np.zeros((n_units, PRESENCE_BLOCKS), dtype=bool)
    filled = 0
    for u0, u1 in _blocks(base_counts):
        unit = np.repeat(np.arange(u0, u1, dtype=np.int64), base_counts[u0:u1])
        sample = (rng.random(len(unit)) * unit_samples[unit]).astype(np.int64)
        lo, hi = np.searchsorted(extra, [u0 * stride, u1 * stride])
        keys = np.concatenate([unit * stride + sample, extra[lo:hi]])
        del unit, sample
        keys.sort()
        if len(keys) > 1:
            keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        unit = keys // stride
        t = (keys - unit * stride) / unit_rate[unit]
        k = len(t)
        times[filled : filled + k] = t
        amplitudes[filled : filled + k] = amplitude_v[unit] * rng.lognormal(0.0, 0.2, k)
        counts[u0:u1] = np.bincount(unit - u0, minlength=u1 - u0)
        block = np.minimum((t / duration_s * PRESENCE_BLOCKS).astype(np.int64), PRESENCE_BLOCKS - 1)
        present[unit, block] = True
        filled += k
    spikes = Spikes(times=times[:filled], amplitudes=amplitudes[:filled], ends=np.cumsum(counts))
    return spikes, present.mean(axis=1)


def _blocks(counts: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive unit ranges holding about `_BLOCK_SPIKES` baseline spikes each."""
    cum = np.cumsum(counts)
    bounds = [0]
    while bounds[-1] < len(counts):
        start = bounds[-1]
        target = (cum[start - 1] if start else 0) + _BLOCK_SPIKES
        stop = int(np.searchsorted(cum, target, side="right"))
        bounds.append(max(stop, start + 1))
    return list(itertools.pairwise(bounds))


def _event_keys(
    rng: np.random.Generator,
    responses: Sequence[EventResponse],
    unit_probe: np.ndarray,
    sampling_rate: np.ndarray,
    unit_samples: np.ndarray,
    stride: int,
) -> np.ndarray:
    """Keys of every event-locked spike: Poisson counts per (unit, event), early-peaked timing."""
    parts = [np.empty(0, dtype=np.int64)]
    for resp in responses:
        units = np.flatnonzero(resp.gain > 0)
        events = np.asarray(resp.event_times, dtype=np.float64)
        if units.size == 0 or events.size == 0:
            continue
        expected = (resp.gain[units] * resp.width[units])[:, None]
        per_pair = rng.poisson(np.broadcast_to(expected, (units.size, events.size)))
        pair = np.repeat(np.arange(per_pair.size, dtype=np.int64), per_pair.ravel())
        del per_pair
        unit = units[pair // events.size]
        t = events[pair % events.size] + resp.offset[unit]
        t += resp.width[unit] * rng.beta(1.5, 3.0, len(unit))
        sample = np.floor(t * sampling_rate[unit_probe[unit]]).astype(np.int64)
        keep = (sample >= 0) & (sample < unit_samples[unit])
        parts.append(unit[keep] * stride + sample[keep])
    return np.concatenate(parts)
