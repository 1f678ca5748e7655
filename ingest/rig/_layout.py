"""Where the pieces of a raw rig session folder are: names only, nothing opened (docs/rig.md).

Layout (FORMATS.md 2, the layout the synthetic writer `ingest.synth.rig` produces)::

    <session>/                                   e.g. 668755_2023-08-31/
      session.json                               optional metadata (schema: `_metadata.py`)
      <anything>.sync | <anything>_sync.h5 | <anything>.sync.h5      the sync file (at most one)
      <task>_<subject>_<YYYYMMDD>_<HHMMSS>.hdf5  TaskControl behaviour file (at most one)
      <anything>.pkl | .pkl.gz | .pickle         camstim pickle: loaded only when the user named it
      <...probeX...>_sorted/                     one folder per probe (or any folder holding
                                                 spike_times.npy, or continuous/<stream>/ with it)

A probe folder holds the Kilosort/phy output (found below it by `sorting.find_sorting_folder`)
and the probe's Open Ephys TTL events (`events/<stream>/TTL_1` or `events/<stream>/TTL`).
Only the session folder's direct entries are looked at, so a folder of session folders is not
itself a session.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ingest.rig.sorting import find_sorting_folder, find_up
from schemas import DecodeError

SYNC_SUFFIXES = (".sync", "_sync.h5", ".sync.h5")
PICKLE_SUFFIXES = (".pkl", ".pkl.gz", ".pickle")
SESSION_JSON = "session.json"
#: TaskControl file names: <task>_<subject>_<YYYYMMDD>_<HHMMSS>.hdf5
TASK_NAME = re.compile(r"^(?P<task>.+)_(?P<subject>[^_]+)_(?P<date>\d{8})_(?P<time>\d{6})\.hdf5$")
_PROBE_LETTER = re.compile(r"probe[_-]?([A-Za-z0-9]+?)(?=$|[_.\-])", re.IGNORECASE)
_OPEN_EPHYS_FOLDERS = ("continuous", "events")
_TTL_PATTERNS = ("TTL*", "*/TTL*", "events/*/TTL*", "*/*/events/*/TTL*")
_TTL_FILES = (("sample_numbers.npy", "states.npy"), ("event_timestamps.npy", "channel_states.npy"))
#: Files of a sorting folder that `sorting.read_sorting` reads (when present).
_SORTING_FILES = (
    "spike_times.npy",
    "spike_clusters.npy",
    "amplitudes.npy",
    "params.py",
    "metrics.csv",
    "channel_map.npy",
    "channel_positions.npy",
)


@dataclass(frozen=True)
class ProbeDir:
    """One probe's folder and its name in the session (e.g. 'probeA')."""

    name: str
    folder: Path


@dataclass(frozen=True)
class RigLayout:
    """The pieces found in a session folder (paths; nothing is read yet)."""

    folder: Path
    session_json: Path | None
    sync: Path | None
    task: Path | None
    pickles: tuple[Path, ...]
    probes: tuple[ProbeDir, ...]


def is_sync_file(name: str) -> bool:
    """Whether a file name is a sync file's (`*.sync`, `*_sync.h5`, `*.sync.h5`)."""
    return name.lower().endswith(SYNC_SUFFIXES)


def is_pickle(name: str) -> bool:
    """Whether a file name is a pickle's (`*.pkl`, `*.pkl.gz`, `*.pickle`)."""
    return name.lower().endswith(PICKLE_SUFFIXES)


def is_probe_folder(folder: Path) -> bool:
    """A probe folder: named `*_sorted`, or holding spike_times.npy itself or in continuous/*/."""
    if folder.name.lower().endswith("_sorted"):
        return True
    if (folder / "spike_times.npy").is_file():
        return True
    continuous = folder / "continuous"
    return continuous.is_dir() and any(continuous.glob("*/spike_times.npy"))


def looks_like_session(path: Path) -> bool:
    """A folder with a sync file, a TaskControl file or a probe folder directly inside it.

    Open Ephys's own `continuous/` and `events/` folders (inside a probe folder) never are.
    """
    path = Path(path)
    if not path.is_dir() or path.name in _OPEN_EPHYS_FOLDERS:
        return False
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    files = [e.name for e in entries if e.is_file()]
    if any(is_sync_file(n) or TASK_NAME.match(n) for n in files):
        return True
    dirs = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    return any(is_probe_folder(path / d) for d in dirs)


def find_layout(path: Path) -> RigLayout:
    """The pieces of the session folder `path`; DecodeError when a piece is ambiguous."""
    path = Path(path)
    if not path.is_dir():
        msg = "not a folder"
        raise DecodeError(msg, file=path)
    entries = sorted(os.scandir(path), key=lambda e: e.name)
    files = [path / e.name for e in entries if e.is_file()]
    dirs = [path / e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    sync = _at_most_one([f for f in files if is_sync_file(f.name)], path, "sync file")
    task = _at_most_one([f for f in files if TASK_NAME.match(f.name)], path, "TaskControl file")
    json_file = path / SESSION_JSON
    return RigLayout(
        folder=path,
        session_json=json_file if json_file.is_file() else None,
        sync=sync,
        task=task,
        pickles=tuple(f for f in files if is_pickle(f.name)),
        probes=_probe_dirs([d for d in dirs if is_probe_folder(d)]),
    )


def probe_name(folder_name: str) -> str:
    """The probe's name from its folder: 'probeA' from '..._probeA_sorted', else the stem.

    Examples
    --------
    >>> probe_name("725254892_388523_20180726_probeA_sorted"), probe_name("imec0_sorted")
    ('probeA', 'imec0')
    """
    stem = re.sub(r"_sorted$", "", folder_name, flags=re.IGNORECASE)
    hits = _PROBE_LETTER.findall(stem)
    return f"probe{hits[-1]}" if hits else stem


def ttl_folders(probe_folder: Path) -> list[Path]:
    """Open Ephys TTL event folders below a probe folder (either layout)."""
    found = {
        p
        for pattern in _TTL_PATTERNS
        for p in probe_folder.glob(pattern)
        if p.is_dir() and any(all((p / f).is_file() for f in files) for files in _TTL_FILES)
    }
    return sorted(found)


def choose_ttl_folder(probe_folder: Path, sorting_folder: Path) -> Path | None:
    """The probe's TTL folder: the only one, else the one of the sorted stream, else the AP one.

    None when the probe folder has no TTL events; DecodeError when several remain ambiguous.
    """
    found = ttl_folders(probe_folder)
    if len(found) <= 1:
        return found[0] if found else None
    same_stream = [p for p in found if p.parent.name == sorting_folder.name]
    ap_band = [p for p in found if p.parent.name.upper().endswith(("-AP", ".0"))]
    for candidates in (same_stream, ap_band):
        if len(candidates) == 1:
            return candidates[0]
    names = [str(p.relative_to(probe_folder)) for p in found]
    msg = f"several TTL event folders {names}; keep the probe's AP-band events only"
    raise DecodeError(msg, file=probe_folder, field="events")


def sorting_inputs(probe_folder: Path) -> list[Path]:
    """The files `sorting.read_sorting(probe_folder)` reads."""
    folder = find_sorting_folder(probe_folder)
    files = [folder / name for name in _SORTING_FILES]
    files += [f for f in folder.glob("cluster_*.tsv") if f.name != "cluster_info.tsv"]
    files += [f for f in (find_up(folder, probe_folder, n) for n in _UP_FILES) if f is not None]
    return sorted({f for f in files if f.is_file()})


def ttl_inputs(ttl_folder: Path) -> list[Path]:
    """The files `openephys.read_ttl_events(ttl_folder, sample_rate=...)` reads.

    Besides the event arrays: the recording's sync_messages.txt and the continuous stream's
    sample_numbers.npy / timestamps.npy (only their first value is used, but a changed start
    sample changes every event time, so they are hashed whole).
    """
    files = [ttl_folder / f for pair in _TTL_FILES for f in pair]
    events = ttl_folder.parent.parent
    if events.name == "events":
        recording = events.parent
        files.append(recording / "sync_messages.txt")
        stream = recording / "continuous" / ttl_folder.parent.name
        files += [stream / "sample_numbers.npy", stream / "timestamps.npy"]
    return sorted({f for f in files if f.is_file()})


_UP_FILES = ("ccf_regions.csv", "probe_info.json")


def _at_most_one(found: list[Path], folder: Path, what: str) -> Path | None:
    if len(found) > 1:
        names = [f.name for f in found]
        msg = f"several {what}s {names}: a session folder holds one; move the others out"
        raise DecodeError(msg, file=folder, field=what.replace(" ", "_"))
    return found[0] if found else None


def _probe_dirs(folders: list[Path]) -> tuple[ProbeDir, ...]:
    """Probe folders with their names, in name order; full stems when short names collide."""
    names = [probe_name(f.name) for f in folders]
    if len(set(names)) != len(names):
        names = [re.sub(r"_sorted$", "", f.name, flags=re.IGNORECASE) for f in folders]
    if len(set(names)) != len(names):
        msg = f"probe folders {[f.name for f in folders]} do not have distinct names"
        raise DecodeError(msg, file=folders[0].parent, field="probes")
    pairs = sorted(zip(names, folders, strict=True))
    return tuple(ProbeDir(name, folder) for name, folder in pairs)
