"""Builders of synthetic rig inputs with known truth, and plain-numpy reference decoders.

- `write_sync`: an Allen-format sync HDF5 (`data` (N, 2) uint32 + Python-literal `meta`).
- `random_sync_rows`: random event rows (counter, word), optionally rolling the counter over.
- `rows_from_edges`: sync rows from per-line edge times (what a DAQ would have written).
- `reference_edges`: the straightforward per-line numpy edge decoder the numba kernel is
  checked against (also the baseline the benchmarks compare with).
- `barcode_train`: rising/falling times of an Allen barcode signal for given values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

ALLEN_LABELS = (
    "barcode_ephys",
    "vsync_2p",
    "vsync_stim",
    "stim_photodiode",
    "stim_running",
    "beh_cam_exposing",
    "eye_cam_exposing",
    "face_cam_exposing",
    *("",) * 23,
    "lick_sensor",
)


def sync_meta(
    *,
    line_labels: Sequence[str] = ALLEN_LABELS,
    freq: float = 100_000.0,
    counter_bits: int | None = 32,
    total_samples: int | None = None,
) -> dict:
    """A meta dict shaped like the Allen sync writer's (version 2.x)."""
    ni_daq = {
        "device": "Dev1",
        "counter_output_freq": freq,
        "sample_rate": freq,
        "event_bits": 32,
    }
    if counter_bits is not None:
        ni_daq["counter_bits"] = counter_bits
    meta = {
        "ni_daq": ni_daq,
        "start_time": "2024-03-01 10:00:00.000000",
        "stop_time": "2024-03-01 12:00:00.000000",
        "line_labels": list(line_labels),
        "timeouts": [],
        "version": "2.2.1",
        "sampling_type": "frequency",
        "file_version": "1.0.0",
        "line_label_revision": 3,
    }
    if total_samples is not None:
        meta["total_samples"] = total_samples
    return meta


def write_sync(
    path: Path,
    rows: np.ndarray | None,
    *,
    meta: Mapping | str | None = None,
    chunks: bool | int = True,
    compression: str | None = None,
) -> Path:
    """Write a sync file: `rows` as `data` (uint32) and `meta` as a Python-literal string.

    `meta` may be a dict (written with repr, as the Allen writer does), a raw string (to write
    broken metadata), or None for `sync_meta()`. `rows=None` writes no `data` dataset.
    `chunks`: True for chunks of 65,536 rows, an int for chunks of that many rows, False for a
    contiguous dataset; `compression` (e.g. "gzip") filters the chunks.
    """
    if meta is None:
        meta = sync_meta()
    text = meta if isinstance(meta, str) else repr(dict(meta))
    with h5py.File(path, "w") as fh:
        fh.create_dataset("meta", data=np.bytes_(text))
        if rows is not None:
            rows = np.asarray(rows, dtype=np.uint32).reshape(-1, 2)
            size = 1 << 16 if chunks is True else int(chunks)
            chunked = (chunks or compression) and len(rows)
            chunk_shape = (min(len(rows), size or 1 << 16), 2) if chunked else None
            fh.create_dataset("data", data=rows, chunks=chunk_shape, compression=compression)
    return path


def random_sync_rows(
    rng: np.random.Generator,
    n_rows: int,
    *,
    counter_bits: int = 32,
    start: int = 0,
    max_step: int = 50,
    multi_bit_fraction: float = 0.1,
) -> np.ndarray:
    """Random event rows: counters increasing by 1..max_step (mod 2**counter_bits), words that
    change by one random bit per row, or by several bits in `multi_bit_fraction` of the rows."""
    steps = rng.integers(1, max_step + 1, n_rows, dtype=np.int64)
    steps[0] = 0
    counter = (start + np.cumsum(steps)) % (1 << counter_bits)
    flips = np.left_shift(np.uint32(1), rng.integers(0, 32, n_rows).astype(np.uint32))
    multi = rng.random(n_rows) < multi_bit_fraction
    flips[multi] |= rng.integers(0, 1 << 32, int(multi.sum()), dtype=np.uint64).astype(np.uint32)
    flips[0] = rng.integers(0, 1 << 32, dtype=np.uint64).astype(np.uint32)  # any start state
    words = np.bitwise_xor.accumulate(flips)
    return np.column_stack([counter.astype(np.uint32), words.astype(np.uint32)])


def rows_from_edges(
    edges: Mapping[int, tuple[np.ndarray, np.ndarray]],
    *,
    freq: float = 100_000.0,
    counter_bits: int = 32,
    t0: float = 0.0,
) -> np.ndarray:
    """Sync rows for per-line (rising_times, falling_times) in seconds, quantised to the clock.

    Every line starts low at a baseline row at `t0`; edges on the same sample share one row.
    Each line's edges must alternate rising/falling, starting with a rise.
    """
    samples, bits = [np.array([round(t0 * freq)], dtype=np.int64)], [np.array([0], np.uint32)]
    for line, (rise, fall) in edges.items():
        t = np.concatenate([np.asarray(rise, float), np.asarray(fall, float)])
        samples.append(np.round(t * freq).astype(np.int64))
        bits.append(np.full(len(t), np.uint32(1) << np.uint32(line), dtype=np.uint32))
    s = np.concatenate(samples)
    b = np.concatenate(bits)
    order = np.argsort(s, kind="stable")
    s, b = s[order], b[order]
    words = np.bitwise_xor.accumulate(b)
    last = np.r_[s[1:] != s[:-1], True]  # the word after all toggles of a sample
    s, words = s[last], words[last]
    keep = np.r_[True, words[1:] != words[:-1]]
    s, words = s[keep], words[keep]
    counter = (s % (1 << counter_bits)).astype(np.uint32)
    return np.column_stack([counter, words])


def reference_edges(rows: np.ndarray, counter_bits: int = 32, freq: float = 100_000.0) -> dict:
    """Edges of all lines decoded one line at a time with numpy: the kernel's reference.

    Returns a dict of columns (line, sample, time, rising) sorted by (line, sample).
    """
    rows = np.asarray(rows)
    raw = rows[:, 0].astype(np.int64)
    words = rows[:, 1].astype(np.int64) & 0xFFFFFFFF
    wraps = np.concatenate([[0], np.cumsum(np.diff(raw) < 0)])
    sample = raw + wraps * (1 << counter_bits)
    lines, samples, rising = [], [], []
    for line in range(32):
        bit = ((words >> line) & 1).astype(np.int8)
        change = np.diff(bit)
        idx = np.flatnonzero(change)
        lines.append(np.full(len(idx), line, dtype=np.int64))
        samples.append(sample[idx + 1])
        rising.append(change[idx] > 0)
    out_samples = np.concatenate(samples)
    return {
        "line": np.concatenate(lines),
        "sample": out_samples,
        "time": out_samples / freq,
        "rising": np.concatenate(rising),
    }


def barcode_train(
    values: Sequence[int],
    start_times: Sequence[float],
    *,
    bit_width: float = 0.029,
    start_pulse: float = 0.020,
    first_bit_offset: float = 0.040,
    n_bits: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Rising and falling edge times (s) of barcodes `values` starting at `start_times`.

    A start pulse, then bit k (LSB first) high during
    [start + first_bit_offset + k * bit_width, + bit_width); runs of 1 bits make one pulse.
    """
    rises, falls = [], []
    for value, t0 in zip(values, start_times, strict=True):
        bits = [(int(value) >> k) & 1 for k in range(n_bits)]
        rises.append(t0)
        falls.append(t0 + start_pulse)
        k = 0
        while k < n_bits:
            if bits[k]:
                j = k
                while j < n_bits and bits[j]:
                    j += 1
                rises.append(t0 + first_bit_offset + k * bit_width)
                falls.append(t0 + first_bit_offset + j * bit_width)
                k = j
            else:
                k += 1
    return np.array(rises), np.array(falls)


def write_openephys_recording(
    recording: Path,
    samples: np.ndarray,
    states: np.ndarray,
    *,
    stream: str = "Neuropix-PXI-100.ProbeA-AP",
    start_sample: int = 0,
    rate: float = 30_000.0,
    continuous_start: int | None = None,
    sync_messages: bool = True,
) -> Path:
    """An Open Ephys >= 0.6 recording folder with one stream's TTL events.

    `samples` are absolute sample numbers (as Open Ephys writes them). `continuous_start`
    writes `continuous/<stream>/sample_numbers.npy` starting there; `sync_messages` writes
    `sync_messages.txt` with `start_sample`.
    """
    ttl = recording / "events" / stream / "TTL"
    ttl.mkdir(parents=True)
    samples = np.asarray(samples, dtype=np.int64)
    np.save(ttl / "sample_numbers.npy", samples)
    np.save(ttl / "states.npy", np.asarray(states, dtype=np.int16))
    np.save(ttl / "timestamps.npy", samples / rate)
    np.save(ttl / "full_words.npy", np.zeros(len(samples), dtype=np.uint64))
    if continuous_start is not None:
        cont = recording / "continuous" / stream
        cont.mkdir(parents=True)
        np.save(cont / "sample_numbers.npy", continuous_start + np.arange(10, dtype=np.int64))
    if sync_messages:
        device, _, name = stream.partition(".")
        dev, _, proc = device.rpartition("-")
        (recording / "sync_messages.txt").write_text(
            "Software Time (milliseconds since midnight Jan 1st 1970 UTC): 1660147592066\n"
            f"Start Time for {dev} ({proc}) - {name} @ {rate:g} Hz: {start_sample}\n"
        )
    return recording


def write_phy_folder(
    folder: Path,
    *,
    spike_samples: np.ndarray,
    spike_clusters: np.ndarray | None,
    amplitudes: np.ndarray | None = None,
    labels: Mapping[int, str] | None = None,
    label_file: str = "cluster_group.tsv",
    params: str | None = None,
    channel_map: np.ndarray | None = None,
    channel_positions: np.ndarray | None = None,
) -> Path:
    """A minimal Kilosort/phy output folder."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "spike_times.npy", np.asarray(spike_samples, dtype=np.uint64))
    if spike_clusters is not None:
        np.save(folder / "spike_clusters.npy", np.asarray(spike_clusters, dtype=np.uint32))
    if amplitudes is not None:
        np.save(folder / "amplitudes.npy", np.asarray(amplitudes, dtype=np.float64))
    if labels is not None:
        column = "group" if label_file == "cluster_group.tsv" else "KSLabel"
        lines = [f"cluster_id\t{column}", *(f"{k}\t{v}" for k, v in labels.items())]
        (folder / label_file).write_text("\n".join(lines) + "\n")
    if params is not None:
        (folder / "params.py").write_text(params)
    if channel_map is not None:
        np.save(folder / "channel_map.npy", np.asarray(channel_map, dtype=np.int32))
    if channel_positions is not None:
        np.save(folder / "channel_positions.npy", np.asarray(channel_positions, dtype=np.float64))
    return folder
