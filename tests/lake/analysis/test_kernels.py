"""lake.analysis kernels: the same counts as numpy's searchsorted, on ties and spikes on edges."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lake.analysis import _kernels as kernels
from lake.analysis import bin_offsets
from lake.analysis.edges import Events
from tests.queries.lakes import ref_counts


def _hard_case(seed: int = 3):
    """Spikes of units 0..6 on a 1 ms grid (ties, spikes on edges), unsorted events."""
    rng = np.random.default_rng(seed)
    grid = np.round(rng.uniform(-5, 50, 4000), 3)  # many ties and values on the 1 ms grid
    owner = np.sort(rng.integers(0, 7, grid.size))
    times = np.concatenate([np.sort(grid[owner == u]) for u in range(7)])
    events = np.concatenate([rng.choice(times, 30), rng.uniform(-20, 70, 30), [-50.0, 90.0]])
    return owner, times, events


def _accumulate(owner, times, events, offsets, cuts):
    """Run the kernels over row groups [cuts[i], cuts[i+1]) the way the spike reader hands them."""
    ev = Events.of(events, np.arange(len(events)), offsets)
    units = np.arange(9)  # units 7 and 8 have no spikes
    counts = np.zeros((9, len(events), len(offsets) - 1), dtype=np.int64)
    totals = np.zeros((9, len(offsets) - 1), dtype=np.int64)
    for a, b in itertools.pairwise(cuts):
        ulo = np.searchsorted(owner[a:b], units, "left")
        uhi = np.searchsorted(owner[a:b], units, "right")
        rows = np.flatnonzero(uhi > ulo)  # only the units present are handed to the kernels
        chunk = np.ascontiguousarray(times[a:b])
        kernels.count_into(chunk, ulo[rows], uhi[rows], rows, ev.edges, ev.order, counts)
        kernels.totals_into(chunk, ulo[rows], uhi[rows], rows, ev.edges, offsets, totals)
    return ev, counts, totals


@pytest.mark.parametrize("cuts", [[0, 4000], [0, 1, 577, 578, 1999, 3333, 4000]])
def test_kernels_equal_numpy_searchsorted_on_hard_cases(cuts):
    owner, times, events = _hard_case()
    for offsets in (bin_offsets(-0.2, 0.001, 400), np.array([-0.25, 0.5])):  # bins, window
        ev, counts, totals = _accumulate(owner, times, events, offsets, cuts)
        for u in range(9):
            expected = ref_counts(times[owner == u], events, offsets)  # events in given order
            assert np.array_equal(counts[u], expected), u
            assert np.array_equal(totals[u], expected.sum(axis=0)), u
    ulo = np.searchsorted(owner, np.arange(7), "left")
    uhi = np.searchsorted(owner, np.arange(7), "right")
    pos = kernels.edge_positions(times, ulo, uhi, ev.edges)
    for u in range(7):
        expected = ref_counts(times[ulo[u] : uhi[u]], events, offsets)[ev.order]
        assert np.array_equal(np.diff(pos[u], axis=1), expected)
    assert kernels.is_sorted(owner, times)
    assert not kernels.is_sorted(owner[::-1].copy(), times[::-1].copy())
