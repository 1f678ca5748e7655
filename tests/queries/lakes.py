"""One small lake shared by the query and analysis tests, and an independent h5py reference.

The lake holds two tiny synthetic sessions (every edge case of `ingest.synth`: units without
spikes, spikes at t = 0 and at the end, NaN metrics, NaN change times, licks on the first and
last frame) and the three real NWB files of ../shared/realdata/nwb. It is built once per test
session (about 3 s).

The reference reads the SOURCE NWB files with h5py and counts with numpy: it never goes
through the lake, its decoder, DuckDB or the analysis kernels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

import lake
from ingest.synth import write_corpus
from tests.conftest import REALDATA

SYNTH_SEED = 11
N_SYNTH = 2
_BUILT: dict[str, object] = {}


@dataclass(frozen=True)
class SharedLake:
    lake: lake.Lake
    files: dict[str, Path]  # session_id -> source NWB file
    synthetic: tuple[str, ...]  # session ids of the synthetic sessions
    real: tuple[str, ...]

    def session_of(self, path: Path) -> str:
        """The session id of a source file (the lake records resolved paths: ../shared may be a
        symlink)."""
        target = path.resolve()
        return next(sid for sid, source in self.files.items() if source.resolve() == target)


def shared_lake(tmp_path_factory) -> SharedLake:
    """The shared lake (built on first use in this test session)."""
    if "lake" not in _BUILT:
        root = tmp_path_factory.mktemp("queries-lake")
        paths = write_corpus(root / "nwb", N_SYNTH, seed=SYNTH_SEED, size="tiny")
        real = sorted((REALDATA / "nwb").glob("*.nwb"))
        lk = lake.open(root / "lake")
        report = lk.ingest([*paths, *real])
        assert report.ok, str(report)
        rows = lk.sessions().select("session_id", "source_uri").rows()
        files = {sid: Path(uri) for sid, uri in rows}
        resolved = {p.resolve() for p in paths}
        synthetic = tuple(sorted(s for s, p in files.items() if p.resolve() in resolved))
        _BUILT["lake"] = SharedLake(
            lk, files, synthetic, tuple(sorted(set(files) - set(synthetic)))
        )
    return _BUILT["lake"]  # type: ignore[return-value]


# --------------------------------------------------------------------------- the reference
def nwb_spikes(path: Path) -> dict[int, np.ndarray]:
    """unit id -> spike times, straight from /units (ragged spike_times + index)."""
    with h5py.File(path, "r") as f:
        ids = f["units/id"][:].astype(np.int64)
        ends = f["units/spike_times_index"][:].astype(np.int64)
        times = f["units/spike_times"][:].astype(np.float64)
    starts = np.concatenate([[0], ends[:-1]])
    return {int(u): np.sort(times[a:b]) for u, a, b in zip(ids, starts, ends, strict=True)}


def nwb_events(path: Path, event: str) -> tuple[np.ndarray, np.ndarray]:
    """(event_index, time) of an event, finite times only, as the events view defines them."""
    with h5py.File(path, "r") as f:
        kind, _, rest = event.partition(".")
        if kind == "trials":
            index = f["intervals/trials/id"][:].astype(np.int64)
            times = f[f"intervals/trials/{rest}"][:].astype(np.float64)
        elif kind == "intervals":
            index = f[f"intervals/{rest}/id"][:].astype(np.int64)
            times = f[f"intervals/{rest}/start_time"][:].astype(np.float64)
        else:
            times, sources = _series_times(f, "lick" if kind == "licks" else "rewards")
            keep = np.isfinite(times)
            times, sources = times[keep], sources[keep]
            order = np.lexsort((sources, times))
            return np.arange(len(times), dtype=np.int64), times[order]
    keep = np.isfinite(times)
    return index[keep], times[keep]


def _series_times(f: h5py.File, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps of the lick series (any series named *lick*) or of the reward volumes."""
    found: list[tuple[str, np.ndarray]] = []

    def visit(name: str, obj) -> None:
        leaf = name.rsplit("/", 1)[-1]
        if not isinstance(obj, h5py.Group) or "timestamps" not in obj:
            return
        if what == "lick" and "lick" in leaf.lower():
            found.append((leaf, obj["timestamps"][:]))
        if what == "rewards" and name == "processing/rewards/volume":
            found.append(("rewards", obj["timestamps"][:]))

    f.visititems(visit)
    if not found:
        return np.empty(0), np.empty(0, dtype=object)
    times = np.concatenate([t.astype(np.float64) for _, t in found])
    sources = np.concatenate([np.full(len(t), s, dtype=object) for s, t in found])
    return times, sources.astype(str)


def ref_counts(times: np.ndarray, event_times: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """counts[j, k] = spikes in [t_j + offsets[k], t_j + offsets[k + 1]) (searchsorted, 'left')."""
    edges = event_times[:, None] + offsets[None, :]
    return np.diff(np.searchsorted(times, edges, side="left"), axis=1)


def bins(start: float, width: float, n: int) -> np.ndarray:
    """Edge offsets start + k * width, k = 0..n, float64 (the documented formula)."""
    return start + np.arange(n + 1).astype(np.float64) * width


def effective_stops(trial_ids: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """stop where finite, else the next trial's start in (start, id) order; NaN for the last."""
    order = np.lexsort((trial_ids, start))
    following = np.full(len(start), np.nan)
    following[order[:-1]] = start[order[1:]]
    return np.where(np.isfinite(stop), stop, following)


def per_trial_counts(
    trial_ids: np.ndarray, start: np.ndarray, end: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """Per trial (file order): the times in [start, end) of the latest trial started at or before
    them (a NaN end holds nothing)."""
    order = np.lexsort((trial_ids, start))
    owner = np.searchsorted(start[order], times, side="right") - 1
    safe = np.clip(owner, 0, None)
    inside = (owner >= 0) & (times < end[order][safe])  # NaN end: False
    counts = np.zeros(len(start), dtype=np.int64)
    np.add.at(counts, order[safe[inside]], 1)
    return counts


def nwb_trials(path: Path) -> dict[str, np.ndarray] | None:
    """id, start_time, stop_time and every other 1-d numeric column of /intervals/trials."""
    with h5py.File(path, "r") as f:
        if "intervals/trials" not in f:
            return None
        group = f["intervals/trials"]
        return {
            name: group[name][:]
            for name in group
            if isinstance(group[name], h5py.Dataset)
            and group[name].ndim == 1
            and group[name].dtype.kind in "fiu"
        }


def nwb_unit_anatomy(path: Path) -> dict[str, np.ndarray]:
    """Per unit (sorted by id): its peak electrode's group, channel, area, CCF and probe position.

    The peak electrode is Allen's `peak_channel_id` when the file has it, else the first electrode
    of the unit's `electrodes` region; the channel is `local_index`, else the electrode's rank
    within its group in table order; the depth along the probe is `probe_vertical_position`,
    else `rel_y`, else NaN (the file has no electrode positions).
    """
    with h5py.File(path, "r") as f:
        units = f["units"]
        elec = f["general/extracellular_ephys/electrodes"]
        ids = units["id"][:].astype(np.int64)
        electrode_ids = elec["id"][:].astype(np.int64)
        if "peak_channel_id" in units:
            wanted = units["peak_channel_id"][:].astype(np.int64)
            rows = np.array([np.flatnonzero(electrode_ids == w)[0] for w in wanted])
        elif "electrodes_index" in units:
            ends = units["electrodes_index"][:].astype(np.int64)
            rows = units["electrodes"][:][np.concatenate([[0], ends[:-1]])]
        else:
            rows = units["electrodes"][:]
        group = np.array([f[ref].name.rsplit("/", 1)[-1] for ref in elec["group"][:]])
        if "local_index" in elec:
            channel = elec["local_index"][:].astype(np.int64)
        else:  # rank within the group, in table order
            order = np.argsort(group, kind="stable")
            _, first, inverse = np.unique(group[order], return_index=True, return_inverse=True)
            channel = np.empty(len(group), dtype=np.int64)
            channel[order] = np.arange(len(group)) - first[inverse]
        nan = np.full(len(electrode_ids), np.nan)
        vertical = _first_column(elec, ("probe_vertical_position", "rel_y"), nan)
        horizontal = _first_column(elec, ("probe_horizontal_position", "rel_x"), nan)
        out = {
            "unit_id": ids,
            "probe": group[rows],
            "peak_channel": channel[rows],
            "peak_channel_electrode_id": electrode_ids[rows],
            "structure_acronym": elec["location"][:].astype(str)[rows],
            "ccf_ap": elec["x"][:][rows].astype(np.float64),
            "ccf_dv": elec["y"][:][rows].astype(np.float64),
            "ccf_ml": elec["z"][:][rows].astype(np.float64),
            "probe_vertical_position": vertical[rows].astype(np.float64),
            "probe_horizontal_position": horizontal[rows].astype(np.float64),
        }
    order = np.argsort(ids)
    return {k: v[order] for k, v in out.items()}


def _first_column(group: h5py.Group, names: tuple[str, ...], default: np.ndarray) -> np.ndarray:
    return next((group[c][:] for c in names if c in group), default)


def nwb_session_columns(path: Path) -> dict[str, object]:
    """Session and subject columns as a reader of /general would take them (None: absent)."""
    with h5py.File(path, "r") as f:

        def text(name: str) -> str | None:
            return f[name][()].decode() if name in f else None

        subject = {
            k: text(f"general/subject/{k}")
            for k in ("subject_id", "species", "sex", "genotype", "strain")
        }
        start = dt.datetime.fromisoformat(text("session_start_time"))
        age = text("general/subject/age")
    days = None
    if age is not None:
        number, unit = float(age[1:-1]), age[-1]
        days = number * {"D": 1.0, "Y": 365.25}[unit]  # the forms these files use
    return {
        **subject,
        "session_type": _general_stimulus(path),
        "session_start_time": start.astimezone(dt.UTC),
        "age_in_days": days,
    }


def _general_stimulus(path: Path) -> str | None:
    with h5py.File(path, "r") as f:
        return f["general/stimulus"][()].decode() if "general/stimulus" in f else None
