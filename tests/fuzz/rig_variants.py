"""Corrupted copies of a synthetic rig session folder (`ingest.synth.write_rig_session`).

Each variant is a copy of the template whose session.json names a session id of its own
(`fz-r<number>`), then damaged: truncated or byte-flipped files, deleted files, files of the wrong
type or shape (.npy dtypes, text in numeric CSV columns, JSON of the wrong kind), out-of-range
samples and clusters, hostile ids and names.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from ingest.synth import SizeSpec, generate_session, write_rig_session
from tests.fuzz.variant import Variant, flip_bytes, truncate

#: The template: two probes (Open Ephys 0.4 and >= 0.6 layouts), sync, TaskControl file.
SIZE = SizeSpec(n_probes=2, units_per_probe=4, channels_per_probe=16, duration_s=60.0,
                mean_rate_hz=2.0, n_trials=4)  # fmt: skip
PROBE_A = "523681_20200906_probeA_sorted/continuous/Neuropix-3a-100.0"
PROBE_B = "523681_20200906_probeB_sorted"
TTL_A = "523681_20200906_probeA_sorted/events/Neuropix-3a-100.0/TTL_1"
TTL_B = f"{PROBE_B}/events/Neuropix-PXI-100.ProbeB-AP/TTL"
#: Files the decoder reads, relative to the session folder (the task file is found by glob).
FILES = (
    "523681_20200906.sync",
    "session.json",
    f"{PROBE_A}/spike_times.npy",
    f"{PROBE_A}/spike_clusters.npy",
    f"{PROBE_A}/amplitudes.npy",
    f"{PROBE_A}/metrics.csv",
    f"{PROBE_A}/cluster_group.tsv",
    f"{PROBE_A}/channel_map.npy",
    f"{PROBE_A}/channel_positions.npy",
    f"{PROBE_A}/ccf_regions.csv",
    f"{PROBE_A}/params.py",
    "523681_20200906_probeA_sorted/probe_info.json",
    f"{TTL_A}/event_timestamps.npy",
    f"{TTL_A}/channel_states.npy",
    f"{PROBE_B}/spike_times.npy",
    f"{PROBE_B}/spike_clusters.npy",
    f"{PROBE_B}/metrics.csv",
    f"{TTL_B}/sample_numbers.npy",
    f"{TTL_B}/states.npy",
    f"{PROBE_B}/sync_messages.txt",
)
BAD_IDS = ("../../x", "x'; DROP TABLE sessions; --", "ïd", "a" * 129, "", "a..b")


def write_template(folder: Path, session_id: str = "fz-rig-template") -> Path:
    """The template rig session folder (seeded: the same bytes every time)."""
    session = generate_session(session_id, seed=3, size=SIZE)
    return write_rig_session(session, folder / session_id, barcode_interval_s=3.0).folder


class RigVariants:
    """Writes variants of the template folder into `folder`, numbering their session ids."""

    def __init__(self, template: Path, folder: Path, seed: int) -> None:
        self.template = template
        self.folder = folder
        self.rng = np.random.default_rng(seed)
        self.count = 0
        folder.mkdir(parents=True, exist_ok=True)
        self.task = next(template.glob("ChangeDetection_*.hdf5")).name

    def all(self) -> list[Variant]:
        """Every variant, in a fixed order."""
        return [
            *self.truncated(),
            *self.flipped(),
            *self.deleted(),
            *self.retyped(),
            *self.values(),
            *self.hostile(),
        ]

    def copy(self, *, session_id: str | None = None, folder_name: str | None = None):
        """A copy of the template whose session.json names a new id; (folder, id)."""
        self.count += 1
        sid = f"fz-r{self.count:04d}" if session_id is None else session_id
        target = self.folder / f"{self.count:04d}" / (folder_name or sid)
        shutil.copytree(self.template, target)
        info = json.loads((target / "session.json").read_text())
        info["session_id"] = sid
        (target / "session.json").write_text(json.dumps(info))
        return target, sid

    def edited(self, kind: str, what: str, edit: Callable[[Path], None], **expect) -> Variant:
        folder, sid = self.copy()
        edit(folder)
        return Variant(folder, kind, what, session_id=sid, **expect)

    # --- kinds ---------------------------------------------------------------------------------

    def truncated(self) -> list[Variant]:
        files = [*FILES, self.task]
        return [
            self.edited("truncate", f"{name} cut to {fraction:.0%}", _cut(name, fraction))
            for name in files
            for fraction in ((0.0, 0.6) if name.endswith((".npy", ".sync", ".hdf5")) else (0.5,))
        ]

    def flipped(self) -> list[Variant]:
        files = [*FILES, self.task]
        picks = self.rng.choice(len(files), size=24, replace=True)
        return [
            self.edited("flip", f"{files[i]}: {n} bytes flipped", _flip(files[i], n, self.rng))
            for i, n in zip(picks, [1, 4, 32] * 8, strict=True)
        ]

    def deleted(self) -> list[Variant]:
        files = [*FILES, self.task]
        out = [self.edited("delete", f"{name} deleted", _delete(name)) for name in files]
        out.append(
            self.edited("delete", "spike_clusters.npy of probe A deleted",
                        _delete(f"{PROBE_A}/spike_clusters.npy"), expect="fail",
                        fragment="spike_clusters.npy is missing")
        )  # fmt: skip
        return out

    def retyped(self) -> list[Variant]:
        out = []
        arrays = (
            f"{PROBE_A}/spike_times.npy",
            f"{PROBE_B}/spike_clusters.npy",
            f"{PROBE_A}/amplitudes.npy",
            f"{TTL_A}/event_timestamps.npy",
            f"{TTL_B}/sample_numbers.npy",
            f"{PROBE_A}/channel_positions.npy",
        )
        for name in arrays:
            for how in NPY_RETYPES:
                out.append(self.edited("retype", f"{name} {how.__name__}", _npy(name, how)))
        out.append(
            self.edited("retype", "metrics.csv: text in the numeric column snr",
                        _csv_cell(f"{PROBE_A}/metrics.csv", "snr", "n/a; see notes"),
                        expect="fail", fragment="metrics.csv")
        )  # fmt: skip
        out.append(
            self.edited("retype", "metrics.csv: text in cluster_ids",
                        _csv_cell(f"{PROBE_A}/metrics.csv", "cluster_ids", "seven"),
                        expect="fail", fragment="cluster ids must be integers")
        )  # fmt: skip
        out.append(
            self.edited("retype", "cluster_group.tsv: text cluster ids",
                        _write(f"{PROBE_A}/cluster_group.tsv", "cluster_id\tgroup\nx\tgood\n"),
                        expect="fail", fragment="cluster_group.tsv")
        )  # fmt: skip
        for text, fragment in (
            ('{"session_id": 5}', ""),
            ('["a list"]', ""),
            ("not json {", "session.json"),
            ('{"probes": [1, 2]}', ""),
        ):
            out.append(
                self.edited("retype", f"session.json = {text}", _write("session.json", text),
                            expect="fail" if fragment else "any", fragment=fragment)
            )  # fmt: skip
        out.append(self.edited("retype", "sync data as float", _sync_data(np.float64)))
        out.append(self.edited("retype", "sync data 1-D", _sync_data(None)))
        return out

    def values(self) -> list[Variant]:
        spikes = f"{PROBE_A}/spike_times.npy"
        clusters = f"{PROBE_A}/spike_clusters.npy"
        return [
            self.edited("value", "a negative sample index", _npy_set(spikes, 3, -1_000_000_000),
                        expect="fail", fragment="is negative: Kilosort counts samples from 0"),
            self.edited("value", "a sample index of 2**40 (~1 year at 30 kHz)",
                        _npy_set(spikes, 3, 2**40), expect="fail",
                        fragment="is more than 172800 s (2 days) from the session start"),
            self.edited("value", "a cluster missing from cluster_group.tsv",
                        _npy_set(clusters, 3, 99_999), expect="land",
                        fragment="cluster_group.tsv has no row for 1 cluster with spikes (99999; "
                        "1 spike): kept, quality null"),
            self.edited("value", "a cluster id of 100000 (beyond the unit id stride)",
                        _npy_set(clusters, 3, 100_000), expect="fail",
                        fragment="cluster ids must be in [0, 100000)"),
            self.edited("value", "NaN amplitudes", _npy_all(f"{PROBE_A}/amplitudes.npy", np.nan)),
            self.edited("value", "inf amplitudes", _npy_all(f"{PROBE_A}/amplitudes.npy", np.inf)),
            self.edited("value", "TTL timestamps reversed",
                        _npy(f"{TTL_A}/event_timestamps.npy", lambda a: a[::-1].copy())),
            self.edited("value", "sync rows shuffled", _sync_shuffle(self.rng)),
            self.edited("value", "spike samples unsorted",
                        _npy(spikes, lambda a: a[::-1].copy()), expect="land"),
        ]  # fmt: skip

    def hostile(self) -> list[Variant]:
        out = []
        for sid in BAD_IDS:
            folder, _ = self.copy(session_id=sid, folder_name=f"bad-{self.count + 1}")
            out.append(Variant(folder, "hostile", f"session.json session_id {sid!r}",
                               expect="fail", fragment="is not a valid session id"))  # fmt: skip
        for name, expect in (("x'; DROP TABLE sessions; --", "fail"), ("fz-folder-ok", "land")):
            folder, _ = self.copy(session_id="unused", folder_name=name)
            info = json.loads((folder / "session.json").read_text())
            del info["session_id"]
            (folder / "session.json").write_text(json.dumps(info))
            refused = "is not a valid session id" if expect == "fail" else ""
            sid = name if expect == "land" else None
            what = f"session id from folder name {name!r}"
            out.append(
                Variant(folder, "hostile", what, expect=expect, session_id=sid, fragment=refused)
            )
        for column in ("x'; DROP TABLE units; --", "ünï"):
            out.append(
                self.edited("hostile", f"metrics.csv column {column!r}",
                            _csv_rename(f"{PROBE_B}/metrics.csv", "snr", column), expect="land")
            )  # fmt: skip
        out.append(
            self.edited("hostile", "quality label with quotes and unicode",
                        _write(f"{PROBE_A}/cluster_group.tsv",
                               "cluster_id\tgroup\n1\tgo'od\n5\tbön\n6\t; DROP\n"),
                        expect="land", column=("units", "quality", "go'od"))
        )  # fmt: skip
        return out


# --- edits ------------------------------------------------------------------------------------


def _cut(name: str, fraction: float) -> Callable[[Path], None]:
    return lambda folder: truncate(folder / name, fraction) and None


def _flip(name: str, n: int, rng: np.random.Generator) -> Callable[[Path], None]:
    offsets_seed = int(rng.integers(0, 2**31))

    def edit(folder: Path) -> None:
        path = folder / name
        local = np.random.default_rng(offsets_seed)
        flip_bytes(path, local.integers(0, path.stat().st_size, n), local)

    return edit


def _delete(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text) and None


def as_fractional(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) + 0.5


def as_strings(a: np.ndarray) -> np.ndarray:
    return np.array([f"s{i}" for i in range(len(a))])


def as_three_columns(a: np.ndarray) -> np.ndarray:
    flat = a.reshape(len(a), -1)[:, :1]
    return np.hstack([flat, flat, flat])


def as_empty(a: np.ndarray) -> np.ndarray:
    return a[:0]


def as_bool(a: np.ndarray) -> np.ndarray:
    return a.astype(bool)


NPY_RETYPES = (as_fractional, as_strings, as_three_columns, as_empty, as_bool)


def _npy(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    """Rewrite the array in `name` as `change` makes it."""

    def edit(folder: Path) -> None:
        path = folder / name
        np.save(path, change(np.load(path)))

    return edit


def _npy_set(name: str, index: int, value: int) -> Callable[[Path], None]:
    def one(array: np.ndarray) -> np.ndarray:
        data = array.astype(np.int64)
        data.reshape(-1)[index] = value
        return data

    return _npy(name, one)


def _npy_all(name: str, value: float) -> Callable[[Path], None]:
    return _npy(name, lambda array: np.full(array.shape, value))


def _csv_cell(name: str, column: str, text: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / name
        lines = path.read_text().splitlines()
        header = [h.strip('"') for h in lines[0].split(",")]
        cells = lines[1].split(",")
        cells[header.index(column)] = text
        lines[1] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")

    return edit


def _csv_rename(name: str, column: str, new: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / name
        text = path.read_text()
        path.write_text(text.replace(f'"{column}"', f'"{new}"', 1))

    return edit


def _sync_data(dtype) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        with h5py.File(folder / "523681_20200906.sync", "r+") as fh:
            data = fh["data"][()]
            del fh["data"]
            fh["data"] = data.astype(dtype) if dtype is not None else data[:, 0]

    return edit


def _sync_shuffle(rng: np.random.Generator) -> Callable[[Path], None]:
    seed = int(rng.integers(0, 2**31))

    def edit(folder: Path) -> None:
        with h5py.File(folder / "523681_20200906.sync", "r+") as fh:
            data = fh["data"][()]
            fh["data"][...] = data[np.random.default_rng(seed).permutation(len(data))]

    return edit
