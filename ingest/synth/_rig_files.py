"""File writers of the synthetic rig session (`rig.py` decides what goes in them).

Each function writes one kind of raw rig file in the layout of docs/rig.md: the Allen sync HDF5,
a Kilosort/phy folder with the Allen extras, Open Ephys TTL events (0.4 and >= 0.6 layouts), a
TaskControl HDF5 and a camstim-like pickle. All arrays are built vectorised; the camstim pickle
is a list of per-trial dicts by nature of the format.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

SYNC_RATE_HZ = 100_000.0
#: Barcode geometry (FORMATS.md 2.2, measured on real files).
BIT_WIDTH = 0.029
START_PULSE = 0.020
FIRST_BIT_OFFSET = 0.040
N_BITS = 32
BARCODE_DURATION = FIRST_BIT_OFFSET + N_BITS * BIT_WIDTH
#: Line labels of the synthetic sync file (Allen ecephys names), line 0 first.
SYNC_LABELS: tuple[str, ...] = (
    "barcode_ephys",
    "vsync_stim",
    "stim_photodiode",
    "stim_running",
    "beh_cam_exposing",
    "eye_cam_exposing",
    "face_cam_exposing",
    "lick_sensor",
    *("",) * 24,
)
#: CCF structure ids of the acronyms the synthetic anatomy uses.
STRUCTURE_IDS = {
    "VISp": 385, "VISl": 409, "VISal": 402, "VISrl": 417, "VISam": 394, "VISpm": 533,
    "CA1": 382, "CA3": 463, "DG": 726, "LP": 218, "LGd": 170, "APN": 215, "MRN": 128,
    "root": 997,
}  # fmt: skip


#: The barcode generator (an Arduino on Allen rigs) runs on a clock of its own: its bits are
#: this much longer than nominal, and each edge comes up to EDGE_JITTER_S early or late. So its
#: edges are not whole multiples of either recording clock's sample period, and rounding them
#: to samples leaves errors that differ from edge to edge, as on a real rig.
GENERATOR_SCALE = 1 + 23e-6
EDGE_JITTER_S = 2e-6


def barcode_edges(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rising and falling times (s) of Allen barcodes `values` starting at `starts`, sorted.

    A 20 ms start pulse, then bit k (LSB first) high during
    [start + 40 ms + k * 29 ms, + 29 ms) on the generator's clock (`GENERATOR_SCALE`); a run
    of 1 bits is one pulse. Each edge carries a jitter fixed by (value, edge), so every
    recording of one barcode sees the same edge times.
    """
    values = np.asarray(values, np.int64)
    bits = (values[:, None] >> np.arange(N_BITS)) & 1
    steps = np.diff(np.pad(bits, ((0, 0), (1, 1))), axis=1)
    row_r, k_r = np.nonzero(steps == 1)
    row_f, k_f = np.nonzero(steps == -1)
    starts = np.asarray(starts, np.float64)
    n = len(starts)
    scale = GENERATOR_SCALE

    def at(rows: np.ndarray, offset: np.ndarray, edge: np.ndarray) -> np.ndarray:
        return starts[rows] + offset * scale + _jitter(values[rows], edge)

    everyone = np.arange(n)
    rise = np.concatenate(
        [
            at(everyone, np.zeros(n), np.full(n, -2)),
            at(row_r, FIRST_BIT_OFFSET + k_r * BIT_WIDTH, 2 * k_r),
        ]
    )
    fall = np.concatenate(
        [
            at(everyone, np.full(n, START_PULSE), np.full(n, -1)),
            at(row_f, FIRST_BIT_OFFSET + k_f * BIT_WIDTH, 2 * k_f + 1),
        ]
    )
    return np.sort(rise), np.sort(fall)


def _jitter(values: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """A jitter in [-EDGE_JITTER_S, EDGE_JITTER_S) fixed by (barcode value, edge number)."""
    mixed = (values * 2654435761 + (edge + 3) * 40503) % 1_000_003
    return (mixed / 1_000_003 * 2 - 1) * EDGE_JITTER_S


def sync_rows(
    lines: Mapping[int, tuple[np.ndarray, np.ndarray]], *, counter_bits: int = 32
) -> np.ndarray:
    """Sync `data` rows (counter, word) from per-line (rise, fall) SAMPLE indices.

    Every line starts low in a baseline row at sample 0; toggles on one sample share a row.
    Raises ValueError when two rows are `2**counter_bits` samples or more apart (a reader could
    not unwrap the counter) or a line's edges do not alternate.
    """
    samples = [np.zeros(1, np.int64)]
    bits = [np.zeros(1, np.uint32)]
    for line, (rise, fall) in lines.items():
        rise, fall = np.asarray(rise, np.int64), np.asarray(fall, np.int64)
        t = np.concatenate([rise, fall])
        up = np.concatenate([np.ones(len(rise), bool), np.zeros(len(fall), bool)])
        seq = up[np.argsort(t, kind="stable")]
        if not seq[0::2].all() or seq[1::2].any():
            msg = f"line {line}: edges do not alternate rise/fall"
            raise ValueError(msg)
        samples.append(t)
        bits.append(np.full(len(t), np.uint32(1) << np.uint32(line), np.uint32))
    s = np.concatenate(samples)
    b = np.concatenate(bits)
    order = np.argsort(s, kind="stable")
    s, b = s[order], b[order]
    words = np.bitwise_xor.accumulate(b)
    last = np.r_[s[1:] != s[:-1], True]
    s, words = s[last], words[last]
    keep = np.r_[True, words[1:] != words[:-1]]
    s, words = s[keep], words[keep]
    if len(s) > 1 and int(np.diff(s).max()) >= 1 << counter_bits:
        msg = f"rows more than 2**{counter_bits} samples apart: the counter could not be unwrapped"
        raise ValueError(msg)
    return np.column_stack([(s % (1 << counter_bits)).astype(np.uint32), words.astype(np.uint32)])


def write_sync(path: Path, rows: np.ndarray, meta: Mapping) -> Path:
    """An Allen sync HDF5: `data` (N, 2) uint32 and `meta` as a Python-literal dict string."""
    with h5py.File(path, "w") as fh:
        fh.create_dataset("meta", data=np.bytes_(repr(dict(meta))))
        chunk = (min(len(rows), 1 << 16), 2) if len(rows) else None
        fh.create_dataset("data", data=rows.astype(np.uint32), chunks=chunk)
    return path


def sync_meta(*, counter_bits: int, total_samples: int, start: str, stop: str) -> dict:
    """The `meta` dict of the Allen sync writer (version 2.x)."""
    return {
        "ni_daq": {
            "device": "Dev1",
            "counter_output_freq": SYNC_RATE_HZ,
            "sample_rate": SYNC_RATE_HZ,
            "counter_bits": counter_bits,
            "event_bits": 32,
        },
        "start_time": start,
        "stop_time": stop,
        "line_labels": list(SYNC_LABELS),
        "timeouts": [],
        "version": "2.2.1",
        "sampling_type": "frequency",
        "file_version": "1.0.0",
        "total_samples": total_samples,
        "line_label_revision": 3,
    }


def write_phy(
    folder: Path,
    *,
    samples: np.ndarray,
    clusters: np.ndarray,
    amplitudes: np.ndarray,
    units: pa.Table,
    channels: pa.Table,
    sample_rate: float,
    column_vectors: bool,
) -> Path:
    """A Kilosort/phy folder: spikes in file order, cluster_group.tsv, metrics.csv, channels.

    `units` has cluster_id, quality, peak_chan and metric columns; `channels` has channel,
    horizontal/vertical position, ccf_ap/dv/ml, structure, valid. Arrays are (N, 1) when
    `column_vectors` (as the Allen pipeline wrote them), else (N,).
    """
    folder.mkdir(parents=True, exist_ok=True)
    shape = (-1, 1) if column_vectors else (-1,)
    np.save(folder / "spike_times.npy", np.asarray(samples, np.uint64).reshape(shape))
    np.save(folder / "spike_clusters.npy", np.asarray(clusters, np.uint32).reshape(shape))
    np.save(folder / "amplitudes.npy", np.asarray(amplitudes, np.float64).reshape(shape))
    ids = units.column("cluster_id").to_numpy()
    quality = units.column("quality").to_pylist()
    lines = ["cluster_id\tgroup", *(f"{i}\t{q}" for i, q in zip(ids, quality, strict=True))]
    (folder / "cluster_group.tsv").write_text("\n".join(lines) + "\n")
    metrics = units.drop_columns(["quality"])
    metrics = metrics.rename_columns(
        ["cluster_ids" if c == "cluster_id" else c for c in metrics.column_names]
    )
    metrics = metrics.add_column(0, "", pa.array(np.arange(units.num_rows)))
    pacsv.write_csv(metrics, folder / "metrics.csv")
    valid = channels.column("valid").to_numpy(zero_copy_only=False)
    used = channels.column("channel").to_numpy()[valid]
    pos = np.column_stack(
        [
            channels.column("horizontal").to_numpy()[valid],
            channels.column("vertical").to_numpy()[valid],
        ]
    )
    np.save(folder / "channel_map.npy", used.astype(np.int32))
    np.save(folder / "channel_positions.npy", pos.astype(np.float64))
    (folder / "params.py").write_text(
        "dat_path = 'continuous.dat'\nn_channels_dat = 384\ndtype = 'int16'\noffset = 0\n"
        f"sample_rate = {sample_rate!r}\nhp_filtered = False\n"
    )
    return folder


def write_ccf(path: Path, channels: pa.Table) -> Path:
    """An Allen ccf_regions.csv: unnamed channel index, region, structure_id, A/P, D/V, M/L, ..."""
    structure = channels.column("structure").to_pylist()
    table = pa.table(
        {
            "": channels.column("channel"),
            "region": structure,
            "structure_id": [STRUCTURE_IDS.get(s, 0) for s in structure],
            "A/P": channels.column("ccf_ap"),
            "D/V": channels.column("ccf_dv"),
            "M/L": channels.column("ccf_ml"),
            "horizontal_position": channels.column("horizontal"),
            "vertical_position": channels.column("vertical"),
            "is_valid": channels.column("valid"),
        }
    )
    pacsv.write_csv(table, path)
    return path


def write_probe_info(path: Path, *, stream: str, serial: str, rate: float, n_channels: int) -> Path:
    """An Allen/Open Ephys 0.4 probe_info.json (software, probe with subprocessors)."""
    info = {
        "software": {"name": "Open Ephys GUI", "version": "0.4.4"},
        "probe": {
            "phase": "3a",
            "serial number": serial,
            "subprocessors": [
                {"name": stream, "type": "AP band", "num channels": 384, "sample_rate": rate},
                {
                    "name": stream[:-1] + "1",
                    "type": "LFP band",
                    "num channels": 384,
                    "sample_rate": rate / 12,
                },
            ],
        },
        "surface_channel": max(n_channels - 10, 0),
        "air_channel": n_channels,
    }
    path.write_text(json.dumps(info, indent=1))
    return path


def write_ttl(
    probe_folder: Path,
    *,
    layout: str,
    stream: str,
    rise: np.ndarray,
    fall: np.ndarray,
    start_sample: int,
    rate: float,
) -> Path:
    """Barcode TTL edges (probe samples from the continuous start) on line 1, in `layout`.

    '0.4': events/<stream>/TTL_1/{event_timestamps, channel_states}.npy, samples counted from
    the continuous data's start (as Allen sorted folders hold them), a state-0 marker first.
    '>=0.6': events/<stream>/TTL/{sample_numbers, states, timestamps, full_words}.npy with
    absolute sample numbers (`start_sample` added) and sync_messages.txt giving that start.
    """
    t = np.concatenate([rise, fall]).astype(np.int64)
    state = np.concatenate([np.ones(len(rise)), -np.ones(len(fall))]).astype(np.int16)
    order = np.argsort(t, kind="stable")
    t, state = t[order], state[order]
    if layout == "0.4":
        folder = probe_folder / "events" / stream / "TTL_1"
        folder.mkdir(parents=True)
        np.save(folder / "event_timestamps.npy", np.r_[0, t].astype(np.int64))
        np.save(folder / "channel_states.npy", np.r_[0, state].astype(np.int16))
        return folder
    folder = probe_folder / "events" / stream / "TTL"
    folder.mkdir(parents=True)
    absolute = t + start_sample
    np.save(folder / "sample_numbers.npy", absolute)
    np.save(folder / "states.npy", state)
    np.save(folder / "timestamps.npy", absolute / rate)
    np.save(folder / "full_words.npy", (state > 0).astype(np.uint64))
    device, _, name = stream.partition(".")
    dev, _, proc = device.rpartition("-")
    (probe_folder / "sync_messages.txt").write_text(
        "Software Time (milliseconds since midnight Jan 1st 1970 UTC): 1600000000000\n"
        f"Start Time for {dev} ({proc}) - {name} @ {rate:g} Hz: {start_sample}\n"
    )
    return folder


def write_task(path: Path, datasets: Mapping[str, object]) -> Path:
    """A TaskControl HDF5: one top-level dataset per entry (text as bytes)."""
    with h5py.File(path, "w") as h5:
        for name, value in datasets.items():
            if isinstance(value, str):
                value = value.encode()
            elif isinstance(value, Sequence) and value and isinstance(value[0], str):
                value = np.array([v.encode() for v in value])
            h5.create_dataset(name, data=value)
    return path


def write_pickle(path: Path, data: object) -> Path:
    """A camstim-like pickle (protocol 2, as Python-2 camstim wrote them)."""
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    return path
