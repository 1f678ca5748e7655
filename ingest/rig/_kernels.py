"""Numba kernels of the rig decoders: arrays in, arrays out, no I/O, no objects.

Sync edges (`sync.decode_edges` drives them, one chunk of rows at a time):

1. `count_blocks` — edges per (block, line) of a chunk: XOR of consecutive 32-bit words, one
   count per set bit. Blocks of rows are independent, so blocks run in parallel.
2. `scatter_blocks` — the same pass again, writing every edge into its (block, line) slot of a
   packed buffer (`(sample << 1) | rising`): each block's edges grouped by line, in row order.
   Counter rollovers inside a block are unwrapped there; the offset of earlier blocks' rollovers
   is added when gathering.
3. `gather_lines` — after all chunks: copy each line's slots of every block, in block order,
   into the output columns (sample, time = sample / freq, rising, line, label code). Lines run
   in parallel; the result is sorted by (line, sample).

The kernels are checked bit for bit against a plain numpy decoder in the tests
(`tests/ingest/rig/fakes.py: reference_edges`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Index of the lowest set bit of a 32-bit word, by de Bruijn multiplication.
_DEBRUIJN = np.array(
    [0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
     31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9],
    dtype=np.int64,
)  # fmt: skip
_DEBRUIJN_MAGIC = 0x077CB531
_WORD_MASK = 0xFFFFFFFF


@njit(cache=True, nogil=True, inline="always")
def _lowest_bit_index(low):  # pragma: no cover - compiled
    """Index (0-31) of the single set bit of `low`."""
    return _DEBRUIJN[((low * _DEBRUIJN_MAGIC) & _WORD_MASK) >> 27]


@njit(cache=True, nogil=True, parallel=True)
def count_blocks(rows, prev_word, block):  # pragma: no cover - compiled
    """Edges per (block, line) in one chunk of sync rows: an int64 (n_blocks, 32) array.

    `rows` is (n, 2) integers: column 0 the counter, column 1 the word of all 32 line states.
    A bit that differs from the previous row's (`prev_word` before the first row) is an edge.
    Block b covers rows `[b * block, (b + 1) * block)`.
    """
    n = rows.shape[0]
    n_blocks = (n + block - 1) // block
    counts = np.zeros((n_blocks, 32), dtype=np.int64)
    for b in prange(n_blocks):
        lo = b * block
        hi = min(n, lo + block)
        prev = prev_word if b == 0 else np.int64(rows[lo - 1, 1]) & _WORD_MASK
        for i in range(lo, hi):
            word = np.int64(rows[i, 1]) & _WORD_MASK
            x = word ^ prev
            prev = word
            while x != 0:
                low = x & -x
                counts[b, _lowest_bit_index(low)] += 1
                x ^= low
    return counts


@njit(cache=True, nogil=True, parallel=True)
def scatter_blocks(
    rows, prev_word, prev_raw, block, modulus, counts, packed
):  # pragma: no cover - compiled
    """Write every edge of a chunk into `packed`, grouped by (block, line), in row order.

    Each edge is stored as `(sample << 1) | rising`, where sample is the raw counter plus
    `modulus` (2**counter_bits) per rollover seen so far *within its block* (a counter smaller
    than the previous row's rolled over; `prev_raw` is the counter before the first row).
    `counts` comes from `count_blocks`; `packed` has room for `counts.sum()` edges.

    Returns
    -------
    wraps
        int64[n_blocks], rollovers inside each block: the gather adds `modulus` times the
        rollovers of all earlier blocks.
    bad
        Row of the first counter >= modulus in the chunk, or -1.
    """
    n = rows.shape[0]
    n_blocks = counts.shape[0]
    starts = np.empty(n_blocks, dtype=np.int64)
    at = 0
    for b in range(n_blocks):
        starts[b] = at
        for line in range(32):
            at += counts[b, line]
    wraps = np.zeros(n_blocks, dtype=np.int64)
    first_bad = np.full(n_blocks, -1, dtype=np.int64)
    for b in prange(n_blocks):
        lo = b * block
        hi = min(n, lo + block)
        if b == 0:
            prev = prev_word
            last_raw = prev_raw
        else:
            prev = np.int64(rows[lo - 1, 1]) & _WORD_MASK
            last_raw = np.int64(rows[lo - 1, 0])
        pos = np.empty(32, dtype=np.int64)
        p = starts[b]
        for line in range(32):
            pos[line] = p
            p += counts[b, line]
        offset = 0
        n_wraps = 0
        for i in range(lo, hi):
            raw = np.int64(rows[i, 0])
            if raw < last_raw:
                offset += modulus
                n_wraps += 1
            if raw >= modulus and first_bad[b] < 0:
                first_bad[b] = i
            last_raw = raw
            word = np.int64(rows[i, 1]) & _WORD_MASK
            x = word ^ prev
            prev = word
            if x == 0:
                continue
            key = (raw + offset) << 1
            while x != 0:
                low = x & -x
                line = _lowest_bit_index(low)
                j = pos[line]
                packed[j] = key | ((word & low) != 0)
                pos[line] = j + 1
                x ^= low
        wraps[b] = n_wraps
    bad = -1
    for b in range(n_blocks):
        if first_bad[b] >= 0:
            bad = first_bad[b]
            break
    return wraps, bad


@njit(cache=True, nogil=True, parallel=True)
def gather_lines(
    counts, offsets, packed, cursor, freq, codes, samples, times, rising, lines, labels
):  # pragma: no cover - compiled
    """Append one chunk's edges to the (line, sample)-ordered output columns.

    `counts` (n_blocks, 32) and `packed` as `scatter_blocks` left them; `offsets[b]` is the
    sample offset of block b (modulus times the rollovers before it). `cursor[line]` is where
    the line's next edge goes in the outputs; it is advanced in place. Each edge gets its
    sample, time = sample / freq, rising flag, line number and `codes[line]` (a label code).
    """
    n_blocks = counts.shape[0]
    src = np.empty((n_blocks, 32), dtype=np.int64)
    at = 0
    for b in range(n_blocks):
        for line in range(32):
            src[b, line] = at
            at += counts[b, line]
    for line in prange(32):
        out = cursor[line]
        code = codes[line]
        for b in range(n_blocks):
            offset = offsets[b]
            first = src[b, line]
            for k in range(first, first + counts[b, line]):
                value = packed[k]
                sample = (value >> 1) + offset
                samples[out] = sample
                times[out] = sample / freq
                rising[out] = (value & 1) != 0
                lines[out] = line
                labels[out] = code
                out += 1
        cursor[line] = out
