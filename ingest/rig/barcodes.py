"""Barcodes from the edge times of a barcode TTL line, on any clock (seconds).

The Allen barcode signal (FORMATS.md 2.2, measured on the real files): a 20 ms start pulse, then
32 bits, least significant first, 29 ms each, the first starting 40 ms after the start pulse's
rising edge; a bit is 1 when the line is high; one barcode every ~30.95 s. Every probe and the
sync DAQ record the same signal, so matching values between two clocks gives matching times.

How a train is read (`decode_barcodes`), vectorised over all barcodes:

1. Edges are paired into pulses (a rising edge and the next falling edge). A falling edge
   before the first rising edge (the line was high when recording began) is dropped; a rising
   edge with no falling edge after it means the recording ended mid-pulse, and no barcode may
   overlap it.
2. Glitches: pulses shorter than `min_pulse` (default a quarter bit, 7.25 ms) are dropped, then
   low gaps shorter than `min_pulse` inside a pulse are closed. A 1-sample spike or dropout
   (10-33 µs) therefore vanishes. Start pulses are never affected, since `min_pulse` must be
   shorter than the start pulse.
3. Pulses are split into bursts where the line stays low longer than `inter_barcode_gap`
   (default: one barcode's length plus a bit, ~1 s; barcodes are ~30 s apart).
4. A burst is a barcode only if its first pulse lasts `start_pulse` ± `start_tolerance` (this
   rejects a barcode cut by the start of the recording), if its last edge falls inside the
   barcode's length, and if the barcode ends before the recording does (`end_time`, and any
   pulse left open at the end). Truncated barcodes are dropped, not guessed at.
5. Each bit is read as the line state at the middle of its slot:
   `start + first_bit_offset + (k + 0.5) * bit_width`. Sampling the middle tolerates clock
   offsets and jitter of up to half a bit.

A dropped barcode is simply missing from the output; matching (align.py) does not need them all.
Without `end_time`, a barcode cut while the line is low cannot be told from one whose last bits
are 0: it is read with those bits as 0, matches nothing on the other clock and shows up as an
unmatched row of the alignment audit. Pass the recording's end when it is known (the sync
clock: `SyncFile.duration`).

Examples
--------
>>> times, values = decode_barcodes(rising, falling)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

BIT_WIDTH = 0.029
START_PULSE = 0.020
FIRST_BIT_OFFSET = 0.040
N_BITS = 32


class BarcodeEdges(NamedTuple):
    """Every edge of the decoded barcodes (after glitch removal), in time order.

    `owner` is the index of the barcode the edge belongs to, `rank` its position in that
    barcode (0: the start pulse's rising edge, 1: its falling edge, then each high run of
    bits' rise and fall). Two copies of one barcode value have the same edges by rank.
    """

    owner: np.ndarray
    rank: np.ndarray
    times: np.ndarray


class _Pair(NamedTuple):
    times: np.ndarray
    values: np.ndarray


class Barcodes(_Pair):
    """Decoded barcodes: start times (s, the start pulse's rising edge) and integer values.

    A pair (`times, values = barcodes`); `edges` holds every edge of each barcode
    (`BarcodeEdges`), which the clock fit uses when both clocks have them.
    """

    edges: BarcodeEdges | None

    def __new__(cls, times: np.ndarray, values: np.ndarray, edges: BarcodeEdges | None = None):
        """Barcodes with their edges (None when not known)."""
        self = super().__new__(cls, times, values)
        self.edges = edges
        return self


def decode_barcodes(
    rising_times: np.ndarray,
    falling_times: np.ndarray,
    *,
    bit_width: float = BIT_WIDTH,
    start_pulse: float = START_PULSE,
    first_bit_offset: float = FIRST_BIT_OFFSET,
    n_bits: int = N_BITS,
    inter_barcode_gap: float | None = None,
    min_pulse: float | None = None,
    start_tolerance: float = 0.004,
    end_time: float | None = None,
) -> Barcodes:
    """Decode barcodes from the rising and falling edge times (s) of a barcode line.

    Parameters
    ----------
    rising_times, falling_times
        Edge times in seconds on one clock (any shape; flattened, sorted).
    bit_width, start_pulse, first_bit_offset, n_bits
        Geometry of the signal; defaults are the measured Allen values (29 ms bits, 20 ms start
        pulse, first bit 40 ms after the start's rising edge, 32 bits LSB first).
    inter_barcode_gap
        A low period longer than this (s) separates two barcodes. Default: the length of one
        barcode plus one bit.
    min_pulse
        Pulses and gaps shorter than this (s) are glitches. Default: a quarter bit. Must be
        shorter than `start_pulse`.
    start_tolerance
        How far (s) a burst's first pulse may differ from `start_pulse`.
    end_time
        End of the recording on the same clock, when known: a barcode that would run past it is
        truncated and dropped.

    Returns
    -------
    Barcodes
        `(times, values)`: float64 start times and int64 values, in time order.

    Examples
    --------
    >>> rise = np.array([1.0, 1.040]); fall = np.array([1.020, 1.069])
    >>> decode_barcodes(rise, fall).values.tolist()
    [1]
    """
    if not 0 < n_bits <= 62:
        msg = f"n_bits must be 1-62, got {n_bits}"
        raise ValueError(msg)
    duration = first_bit_offset + n_bits * bit_width
    gap = duration + bit_width if inter_barcode_gap is None else inter_barcode_gap
    shortest = bit_width / 4 if min_pulse is None else min_pulse
    if shortest >= start_pulse:
        msg = f"min_pulse ({shortest}) must be shorter than the start pulse ({start_pulse})"
        raise ValueError(msg)
    rise, fall, open_at = _pulses(rising_times, falling_times)
    rise, fall = _deglitch(rise, fall, shortest)
    none = np.empty(0, dtype=np.int64)
    empty = Barcodes(
        np.empty(0, dtype=np.float64), none, BarcodeEdges(none, none, np.empty(0, np.float64))
    )
    if len(rise) == 0:
        return empty
    first = np.flatnonzero(np.r_[True, rise[1:] - fall[:-1] > gap])
    last = np.r_[first[1:] - 1, len(rise) - 1]
    t0 = rise[first]
    ok = np.abs(fall[first] - rise[first] - start_pulse) <= start_tolerance
    ok &= fall[last] <= t0 + duration + start_tolerance
    limit = min(x for x in (end_time, open_at, np.inf) if x is not None)
    ok &= t0 + duration <= limit
    t0 = t0[ok]
    if len(t0) == 0:
        return empty
    middles = t0[:, None] + first_bit_offset + (np.arange(n_bits) + 0.5) * bit_width
    i = np.searchsorted(rise, middles, side="right") - 1
    high = (i >= 0) & (middles < fall[np.maximum(i, 0)])
    values = (high.astype(np.int64) << np.arange(n_bits, dtype=np.int64)).sum(axis=1)
    first_pulse, last_pulse = first[ok], last[ok]
    return Barcodes(t0, values, _edges(rise, fall, first_pulse, last_pulse))


def _edges(rise: np.ndarray, fall: np.ndarray, first: np.ndarray, last: np.ndarray) -> BarcodeEdges:
    """Rises and falls of the pulses first[k]..last[k] of each barcode k, by rank."""
    counts = last - first + 1
    owner = np.repeat(np.arange(len(first)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    pulse = np.repeat(first, counts) + offsets
    times = np.column_stack([rise[pulse], fall[pulse]]).ravel()
    rank = np.column_stack([2 * offsets, 2 * offsets + 1]).ravel()
    return BarcodeEdges(np.repeat(owner, 2), rank.astype(np.int64), times)


def _pulses(rising: np.ndarray, falling: np.ndarray) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Pair edges into (rise, fall) pulses; the time of a rise left open at the end, if any.

    Repeated edges of one kind (a missed edge) keep the first rise and the first fall after it.
    """
    r = np.sort(np.asarray(rising, dtype=np.float64).ravel())
    f = np.sort(np.asarray(falling, dtype=np.float64).ravel())
    times = np.concatenate([r, f])
    up = np.concatenate([np.ones(len(r), dtype=bool), np.zeros(len(f), dtype=bool)])
    order = np.argsort(times, kind="stable")
    times, up = times[order], up[order]
    changes = np.ones(len(up), dtype=bool)  # keep the first edge of each run
    changes[1:] = up[1:] != up[:-1]
    times, up = times[changes], up[changes]
    if len(up) and not up[0]:  # high when the recording began
        times, up = times[1:], up[1:]
    open_at = None
    if len(up) and up[-1]:  # still high when it ended
        open_at = float(times[-1])
        times, up = times[:-1], up[:-1]
    return times[0::2], times[1::2], open_at


def _deglitch(rise: np.ndarray, fall: np.ndarray, shortest: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop pulses shorter than `shortest`, then close gaps shorter than it."""
    keep = fall - rise >= shortest
    rise, fall = rise[keep], fall[keep]
    if len(rise) < 2:
        return rise, fall
    join = rise[1:] - fall[:-1] < shortest
    return rise[np.r_[True, ~join]], fall[np.r_[~join, True]]


def paired_edges(
    probe: BarcodeEdges, sync: BarcodeEdges, p_owner: np.ndarray, s_owner: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probe time, sync time, pair) of every edge of matched barcode pairs, paired by rank.

    `p_owner[k]`, `s_owner[k]` are the barcodes of pair k on each clock (indices into the
    barcodes the edges belong to); pairs whose barcodes have a different number of edges are
    left out (a glitch that survived, say). Vectorised over all pairs.
    """
    p_count, p_start = _owners(probe.owner, int(p_owner.max(initial=-1)) + 1)
    s_count, s_start = _owners(sync.owner, int(s_owner.max(initial=-1)) + 1)
    count = p_count[p_owner]
    same = (count == s_count[s_owner]) & (count > 0)
    pairs = np.flatnonzero(same)
    c = count[pairs]
    within = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
    p_rows = np.repeat(p_start[p_owner[pairs]], c) + within
    s_rows = np.repeat(s_start[s_owner[pairs]], c) + within
    return probe.times[p_rows], sync.times[s_rows], np.repeat(pairs, c)


def _owners(owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges per barcode and the first edge of each (edges are grouped by barcode, in order)."""
    count = np.bincount(np.asarray(owner, dtype=np.int64), minlength=n)
    return count, np.cumsum(count) - count
