"""`SpikeTrains`: every spike train of a session as one flat array and the units' boundaries.

What `Analysis.spike_trains` returns and `lake.pynapple` builds a `TsGroup` from: no Python
object per spike, and one per unit only when asked (`split`), as views of the flat array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class SpikeTrains:
    """Spike times of units of one session, sorted by (unit_id, time), in one float64 array.

    Unit `unit_ids[i]` has the spikes ``times[ends[i - 1]:ends[i]]`` (from 0 for i = 0); units
    without spikes have an empty slice.
    """

    session_id: str
    unit_ids: np.ndarray  # int64, sorted, distinct
    times: np.ndarray  # float64, seconds on the session's master clock
    ends: np.ndarray  # int64, one past each unit's last spike

    @property
    def starts(self) -> np.ndarray:
        """First spike (row of `times`) of each unit."""
        return np.concatenate([np.zeros(min(1, len(self.ends)), np.int64), self.ends[:-1]])

    def split(self) -> list[np.ndarray]:
        """Each unit's spike times, as views of `times` (no copy)."""
        if len(self.unit_ids) == 0:
            return []
        return np.split(self.times, self.ends[:-1])

    def as_dict(self) -> dict[int, np.ndarray]:
        """{unit_id: spike times} (views of `times`)."""
        return dict(zip(self.unit_ids.tolist(), self.split(), strict=True))
