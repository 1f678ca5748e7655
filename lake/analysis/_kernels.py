"""The numba kernels of `lake.analysis`: arrays in, arrays out, no I/O.

Compiled on first call and cached on disk (`NUMBA_CACHE_DIR` if the package folder is
read-only); `import lake` does not import this module. Every kernel takes a row group's spike
`times` and, per chosen unit present in it, its slice [ulo, uhi); event edges are rows
edges[j] = t_j + offsets, sorted by time. Tested against numpy's searchsorted.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _first_at_or_after(times, a, b, edge):
    """First index in [a, b) with times[index] >= edge (b if none): galloping, then bisection."""
    step = 1
    while a + step < b and times[a + step - 1] < edge:  # gallop from a (cheap when close)
        a += step
        step *= 2
    hi = min(a + step, b)
    while a < hi:
        m = (a + hi) >> 1
        if times[m] < edge:
            a = m + 1
        else:
            hi = m
    return a


@_jit
def _first_event(edges, last, s):
    """First event j whose last edge edges[j, last] is above s (windows before end at s)."""
    a, b = 0, edges.shape[0]
    while a < b:
        m = (a + b) >> 1
        if edges[m, last] <= s:
            a = m + 1
        else:
            b = m
    return a


@_jit
def count_into(times, ulo, uhi, rows, edges, order, out):
    """out[rows[i], order[j], k] += spikes of unit i in [edges[j, k], edges[j, k + 1])."""
    n_events, n_edges = edges.shape
    for i in range(ulo.shape[0]):
        lo_unit, hi_unit, row = ulo[i], uhi[i], rows[i]
        start = lo_unit
        for j in range(_first_event(edges, n_edges - 1, times[lo_unit]), n_events):
            a = _first_at_or_after(times, start, hi_unit, edges[j, 0])
            if a == hi_unit:  # this and every later window start after the unit's spikes
                break
            start = a
            column = order[j]
            for k in range(1, n_edges):
                b = _first_at_or_after(times, a, hi_unit, edges[j, k])
                out[row, column, k - 1] += b - a
                a = b


@_jit
def totals_into(times, ulo, uhi, rows, edges, offsets, out):
    """out[rows[i], k] += spikes of unit i in bin k, summed over the events.

    A spike's bin is guessed as (s - e_0) * n_bins / (offsets[n] - offsets[0]) and then moved
    until edges[j, k] <= s < edges[j, k + 1] holds for the float64 edges: exact, and no bound
    checks are needed because e_0 <= s < e_n.
    """
    n_events, n_edges = edges.shape
    n_bins = n_edges - 1
    per_second = n_bins / (offsets[n_bins] - offsets[0])
    for i in range(ulo.shape[0]):
        lo_unit, hi_unit, row = ulo[i], uhi[i], rows[i]
        start = lo_unit
        for j in range(_first_event(edges, n_bins, times[lo_unit]), n_events):
            first, last = edges[j, 0], edges[j, n_bins]
            a = _first_at_or_after(times, start, hi_unit, first)
            if a == hi_unit:
                break
            start = a
            while a < hi_unit:
                s = times[a]
                if s >= last:
                    break
                k = min(int((s - first) * per_second), n_bins - 1)  # a guess, >= 0
                while s < edges[j, k]:
                    k -= 1
                while s >= edges[j, k + 1]:
                    k += 1
                out[row, k] += 1
                a += 1


@_jit
def edge_positions(times, ulo, uhi, edges):
    """pos[i, j, k]: first index in [ulo[i], uhi[i]) with times >= edges[j, k]."""
    n_units = ulo.shape[0]
    n_events, n_edges = edges.shape
    out = np.empty((n_units, n_events, n_edges), dtype=np.int64)
    for i in range(n_units):
        lo_unit, hi_unit = ulo[i], uhi[i]
        start = lo_unit
        for j in range(n_events):
            a = _first_at_or_after(times, start, hi_unit, edges[j, 0])
            start = a
            out[i, j, 0] = a
            for k in range(1, n_edges):
                a = _first_at_or_after(times, a, hi_unit, edges[j, k])
                out[i, j, k] = a
    return out


@_jit
def slices_sorted(times, ulo, uhi):
    """Whether times are non-decreasing within every slice [ulo[i], uhi[i])."""
    for i in range(ulo.shape[0]):
        for a in range(ulo[i] + 1, uhi[i]):
            if times[a] < times[a - 1]:
                return False
    return True


@_jit
def is_sorted(owner, times):
    """Whether rows are sorted by (owner, time)."""
    for i in range(1, owner.shape[0]):
        if owner[i] < owner[i - 1] or (owner[i] == owner[i - 1] and times[i] < times[i - 1]):
            return False
    return True
