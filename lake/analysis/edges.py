"""Bin and window edges around events, computed as docs/analysis.md defines them for SQL too.

An event at time t has edges ``e_k = t + (start + k * width)`` for k = 0..n (float64, in that
order), so numpy, the SQL macros and the kernels agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MIN_WIDTH = 1e-6


def bin_offsets(start: float, width: float, n_bins: int) -> np.ndarray:
    """Edge offsets ``start + k * width`` for k = 0..n_bins, float64, as the SQL computes them.

    Examples
    --------
    >>> bin_offsets(-0.5, 0.25, 4).tolist()
    [-0.5, -0.25, 0.0, 0.25, 0.5]
    """
    start, width, n_bins = float(start), float(width), int(n_bins)
    if not (np.isfinite(start) and np.isfinite(width)) or not width >= _MIN_WIDTH or n_bins < 1:
        msg = (
            f"bins=(start={start}, width={width}, n_bins={n_bins}): need a finite start, "
            f"a finite width >= {_MIN_WIDTH} s and n_bins >= 1"
        )
        raise ValueError(msg)
    return start + np.arange(n_bins + 1, dtype=np.int64).astype(np.float64) * width


def window_offsets(start: float, stop: float) -> np.ndarray:
    """The two edge offsets of a window ``[t + start, t + stop)``."""
    start, stop = float(start), float(stop)
    if not (np.isfinite(start) and np.isfinite(stop) and stop > start):
        msg = f"window=({start}, {stop}): need finite start < stop (seconds from the event)"
        raise ValueError(msg)
    return np.array([start, stop], dtype=np.float64)


def window_or_bins(
    window: tuple[float, float] | None, bins: tuple[float, float, int] | None
) -> tuple[np.ndarray, bool]:
    """The edge offsets of exactly one of `window` or `bins`, and whether they are bins."""
    if (window is None) == (bins is None):
        msg = "give exactly one of window=(start, stop) or bins=(start, width, n_bins)"
        raise ValueError(msg)
    if window is not None:
        return window_offsets(*window), False
    return bin_offsets(*bins), True  # type: ignore[misc]


@dataclass(frozen=True)
class Events:
    """One session's events, sorted by time, with their edges (the documented formula)."""

    time: np.ndarray  # event times in event_index order
    event_index: np.ndarray
    order: np.ndarray  # positions (in event_index order) of the events sorted by time
    edges: np.ndarray  # edges[j, k] = time[order[j]] + offsets[k], rows sorted by time

    @staticmethod
    def of(time: np.ndarray, event_index: np.ndarray, offsets: np.ndarray) -> Events:
        """The events at `time` (with their `event_index`) and their edges at `offsets`."""
        order = np.argsort(time, kind="stable")
        edges = np.ascontiguousarray(time[order][:, None] + offsets[None, :])
        return Events(time, event_index, order.astype(np.int64), edges)
