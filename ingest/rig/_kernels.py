"""Numba kernels of the rig decoders: arrays in, arrays out, no I/O, no objects.

Sync edges: `decode_lanes` is the whole decoder (`sync.decode_sync` drives it). It makes ONE
pass over the rows of the sync file's `data`: for every row, the XOR of its 32-bit word with the
previous row's names the lines that changed, and each changed line gets the row's (unwrapped)
counter appended to its own output buffer. Nothing else is stored per edge:

- the rows of a file are split into `n_lanes` contiguous ranges (one per thread), each decoded
  on its own; a line's edges are its lane-0 edges, then its lane-1 edges, ... so the output is
  already in (line, sample) order and no count pass, scatter or gather is needed;
- `rising` is not stored: a line's edges alternate, so edge k of a line rises iff
  `k % 2 == 0` when the line starts low (bit clear in the baseline row), else iff `k % 2 == 1`;
- `line`, `label` and `time` are not stored: they are derived per record batch when the
  edges are read (`sync.SyncEdges.batches`).

The output buffers grow piece by piece without copying: the kernel writes through each
(lane, line) buffer's current address. A row adds at most one edge per line, so the kernel
decodes as many rows as the fullest buffer has room for, measures again, and stops when a
buffer is full: it never writes past a buffer, whatever the driver passes. The driver then
gives the full line a new buffer and calls again.

The kernel is checked bit for bit against a plain numpy decoder in the tests
(`tests/ingest/rig/fakes.py: reference_edges`).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic

#: Index of the lowest set bit of a 32-bit word, by de Bruijn multiplication.
_DEBRUIJN = np.array(
    [0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
     31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9],
    dtype=np.int64,
)  # fmt: skip
_DEBRUIJN_MAGIC = 0x077CB531
_WORD_MASK = 0xFFFFFFFF
#: Bytes of one stored edge (an int64 sample).
EDGE_BYTES = 8


@intrinsic
def _store_int64(typingctx, address, value):  # pragma: no cover - compiled
    """Store int64 `value` at byte `address` (inside a buffer the caller keeps alive)."""
    sig = types.void(types.int64, types.int64)

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        builder.store(args[1], pointer)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _lowest_bit_index(low):  # pragma: no cover - compiled
    """Index (0-31) of the single set bit of `low`."""
    return _DEBRUIJN[((low * _DEBRUIJN_MAGIC) & _WORD_MASK) >> 27]


@njit(cache=True, nogil=True)
def decode_lane(words, first, n, state, cursor, limit, modulus):  # pragma: no cover - compiled
    """Append the edges of `n` rows to one lane's per-line buffers (see `decode_lanes`).

    Row r is `words[first + 2 * r]` (the counter) and `words[first + 2 * r + 1]` (the word of
    all 32 line states). `state` (3,) and `cursor` (32,) are updated in place; `limit` (32,)
    bounds each line's buffer. Returns (rows decoded, first bad row or -1).

    A row adds at most one edge per line, so as many rows as the fullest buffer has room for
    are decoded without any check; then the room is measured again. A full buffer stops the
    lane.
    """
    at = cursor.copy()
    end = limit.copy()
    prev = state[0]
    last_raw = state[1]
    offset = state[2]
    first_bad = -1
    r = 0
    while r < n:
        room = n - r
        for line in range(32):
            room = min(room, (end[line] - at[line]) // EDGE_BYTES)
        if room <= 0:
            break
        for i in range(r, r + room):
            raw = np.int64(words[first + 2 * i])
            if raw < last_raw:
                offset += modulus
            if raw >= modulus and first_bad < 0:
                first_bad = i
            last_raw = raw
            word = np.int64(words[first + 2 * i + 1]) & _WORD_MASK
            x = word ^ prev
            prev = word
            sample = raw + offset
            while x != 0:
                low = x & -x
                line = _lowest_bit_index(low)
                _store_int64(at[line], sample)
                at[line] += EDGE_BYTES
                x ^= low
        r += room
    state[0] = prev
    state[1] = last_raw
    state[2] = offset
    cursor[:] = at
    return r, first_bad


@njit(cache=True, nogil=True, parallel=True)
def decode_lanes(words, lanes, state, cursor, limit, modulus):  # pragma: no cover - compiled
    """Append the edges of each lane's next rows to that lane's per-line buffers, in parallel.

    Parameters
    ----------
    words
        uint32, 1-d: row r of lane j is `words[lanes[j, 0] + 2 * r]` (the counter) and
        `words[lanes[j, 0] + 2 * r + 1]` (the word of all 32 line states).
    lanes
        int64 (n_lanes, 2): each lane's first word offset in `words` and its number of rows.
    state
        int64 (n_lanes, 3), updated in place: per lane the previous row's word, the previous
        row's raw counter and the samples added by rollovers so far (a counter smaller than the
        previous row's rolled over: `modulus` more from then on).
    cursor
        int64 (n_lanes, 32), updated in place: byte address where each (lane, line)'s next
        edge (its unwrapped sample, int64) is stored.
    limit
        int64 (n_lanes, 32): byte address just past each (lane, line) buffer.
    modulus
        2**counter_bits.

    Returns
    -------
    done
        int64 (n_lanes,): rows decoded per lane. A lane stops when one of its buffers is full
        (`cursor == limit`); the caller gives that line a new buffer and calls again for the
        rest.
    bad
        int64 (n_lanes,): first decoded row (0-based, within the lane's rows) whose counter is
        >= `modulus`, or -1.
    """
    n_lanes = lanes.shape[0]
    done = np.zeros(n_lanes, dtype=np.int64)
    bad = np.full(n_lanes, -1, dtype=np.int64)
    for lane in prange(n_lanes):
        done[lane], bad[lane] = decode_lane(
            words, lanes[lane, 0], lanes[lane, 1], state[lane], cursor[lane], limit[lane], modulus
        )
    return done, bad
