"""Open Ephys TTL events of a probe: the barcode line's edges in seconds on the probe clock.

Two layouts (FORMATS.md 2.3):

- Open Ephys 0.4: `events/<device>/TTL_1/event_timestamps.npy` (int64 samples) and
  `channel_states.npy` (int16: +line for a rising edge, -line for a falling one).
- Open Ephys >= 0.6: `events/<stream>/TTL/sample_numbers.npy`, `states.npy` (same sign
  convention) and `timestamps.npy` (seconds, synchronised by the GUI when it was set up to;
  not used here), with `sync_messages.txt` in the recording folder.

Sample convention
-----------------
Open Ephys event sample numbers count on the same acquisition counter as the continuous data,
which does not start at 0: the first sample of `continuous.dat` has sample number
`continuous/<stream>/sample_numbers.npy[0]` (>= 0.6; `timestamps.npy[0]` in the 0.4 binary
format), and `sync_messages.txt` gives the same start sample per stream
(`Start Time for <device> (<id>) - <stream> @ <rate> Hz: <sample>`; 0.4:
`Processor: <name> Id: <id> subProcessor: <n> start time: <sample>@<rate>Hz`). Kilosort's
`spike_times.npy` index `continuous.dat` from 0, so event samples are made relative to the
continuous data's first sample: `sample - start`. The start comes from the continuous
sample numbers when present, else from `sync_messages.txt`, else it is 0 (the Allen sorted
folders, whose `event_timestamps.npy` already count from the continuous data's start: their
first event, a state-0 marker, is at sample 0). `TtlEvents.start_source` records which.
Edge times on the probe clock are `relative_sample / sample_rate` seconds.

Examples
--------
>>> ttl = read_ttl_events("probeA_sorted", sample_rate=30000.0)  # doctest: +SKIP
>>> rising, falling = ttl.edges(line=1)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ingest.rig._npy import load_npy
from schemas import DecodeError

Layout = Literal["0.4", ">=0.6"]
_LAYOUT_FILES: dict[Layout, tuple[str, str]] = {
    "0.4": ("event_timestamps.npy", "channel_states.npy"),
    ">=0.6": ("sample_numbers.npy", "states.npy"),
}
_SYNC_NEW = re.compile(
    r"Start Time for (?P<device>.+?) \((?P<id>\d+)\) - (?P<stream>\S+) @ (?P<rate>[\d.]+) Hz: "
    r"(?P<start>-?\d+)"
)
_SYNC_OLD = re.compile(
    r"Processor: (?P<device>.+?) Id: (?P<id>\d+) subProcessor: (?P<stream>\d+) start time: "
    r"(?P<start>-?\d+)@(?P<rate>[\d.]+)Hz"
)


@dataclass(frozen=True)
class TtlEvents:
    """A probe's TTL events: samples relative to the continuous data's start, signed states.

    Attributes
    ----------
    folder
        The TTL folder read.
    layout
        '0.4' or '>=0.6'.
    stream
        The device/stream folder name (e.g. 'Neuropix-3a-100.0', 'Neuropix-PXI-100.ProbeA-AP').
    samples
        int64 event samples minus `start_sample`.
    states
        int64 signed line numbers (+line rising, -line falling; 0 = no edge).
    sample_rate
        Nominal rate of the stream (Hz) used for seconds.
    start_sample
        Sample number of the continuous data's first sample (subtracted).
    start_source
        Where `start_sample` came from: 'continuous', 'sync_messages.txt' or 'none'.
    """

    folder: Path
    layout: Layout
    stream: str
    samples: np.ndarray
    states: np.ndarray
    sample_rate: float
    start_sample: int
    start_source: str

    def edges(self, line: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Rising and falling edge times (s on the probe clock) of one TTL line.

        Allen rigs wire the barcode to line 1 (states +1 / -1), the default.
        """
        return edges_from_states(self.samples, self.states, line, self.sample_rate)


def edges_from_states(
    samples: np.ndarray, states: np.ndarray, line: int, sample_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rising and falling times (s) of `line` from event samples and signed states.

    Arrays may be (N,) or (N, 1). Only states equal to +line / -line count.

    Examples
    --------
    >>> edges_from_states(np.array([30, 60]), np.array([1, -1]), 1, 30.0)
    (array([1.]), array([2.]))
    """
    samples = np.asarray(samples).ravel()
    states = np.asarray(states).ravel()
    if len(samples) != len(states):
        msg = f"{len(samples)} event samples but {len(states)} states"
        raise ValueError(msg)
    times = samples.astype(np.float64) / float(sample_rate)
    return times[states == line], times[states == -line]


def read_ttl_events(
    path: str | Path,
    *,
    stream: str | None = None,
    sample_rate: float | None = None,
) -> TtlEvents:
    """Read a probe's TTL events from a folder holding them (either layout).

    Parameters
    ----------
    path
        A sorting or recording folder with `events/` below it, an `events/` folder, a stream's
        folder, or the TTL folder itself.
    stream
        The stream folder to use when there are several (exact name or a unique substring,
        e.g. 'ProbeA-AP').
    sample_rate
        The stream's nominal rate; by default from `sync_messages.txt`, `structure.oebin` or an
        Allen `probe_info.json`, and a DecodeError if none says.

    Raises DecodeError (naming the file) when no or several TTL folders match, a file is
    missing, or the arrays' lengths differ.
    """
    path = Path(path)
    folder = _find_ttl_folder(path, stream)
    new_files = (folder / f for f in _LAYOUT_FILES[">=0.6"])
    layout: Layout = ">=0.6" if all(f.exists() for f in new_files) else "0.4"
    sample_file, state_file = (folder / name for name in _LAYOUT_FILES[layout])
    samples = _load_vector(sample_file)
    states = _load_vector(state_file)
    if len(samples) != len(states):
        msg = f"{len(samples)} samples in {sample_file.name} but {len(states)} states"
        raise DecodeError(msg, file=state_file, field="length")
    stream_name = folder.parent.name
    recording = _recording_folder(folder)
    sync = _read_sync_messages(recording / "sync_messages.txt") if recording else {}
    start, source = _start_sample(recording, stream_name, sync)
    rate = sample_rate or _stream_rate(path, folder, recording, stream_name, sync)
    if rate is None:
        msg = "no sample rate for the stream: pass sample_rate"
        raise DecodeError(msg, file=folder, field="sample_rate")
    return TtlEvents(
        folder=folder,
        layout=layout,
        stream=stream_name,
        samples=samples.astype(np.int64) - start,
        states=states.astype(np.int64),
        sample_rate=float(rate),
        start_sample=start,
        start_source=source,
    )


# --- internals -------------------------------------------------------------------------------


def _find_ttl_folder(path: Path, stream: str | None) -> Path:
    if not path.is_dir():
        msg = "no such folder"
        raise DecodeError(msg, file=path)
    if path.name.startswith("TTL") and _has_layout(path):
        return path
    patterns = ("TTL*", "*/TTL*", "events/*/TTL*", "*/*/events/*/TTL*")
    found = sorted({p for pat in patterns for p in path.glob(pat) if p.is_dir() and _has_layout(p)})
    if stream is not None:
        found = [p for p in found if p.parent.name == stream] or [
            p for p in found if stream in p.parent.name
        ]
    if len(found) == 1:
        return found[0]
    if not found:
        msg = "no Open Ephys TTL event folder (events/<stream>/TTL or TTL_1)"
        raise DecodeError(msg, file=path, field="events")
    names = [str(p.relative_to(path)) for p in found]
    msg = f"several TTL event folders {names}; choose one with stream="
    raise DecodeError(msg, file=path, field="events")


def _has_layout(folder: Path) -> bool:
    return any(all((folder / f).exists() for f in files) for files in _LAYOUT_FILES.values())


def _load_vector(file: Path) -> np.ndarray:
    if not file.exists():
        msg = "missing"
        raise DecodeError(msg, file=file)
    array = load_npy(file)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or array.dtype.kind not in "iu":
        msg = f"expected a 1-d integer array, got {array.dtype} {array.shape}"
        raise DecodeError(msg, file=file, field="shape")
    return array


def _recording_folder(ttl_folder: Path) -> Path | None:
    """The folder holding `events/` (and, in Open Ephys recordings, `continuous/` etc.)."""
    events = ttl_folder.parent.parent
    return events.parent if events.name == "events" else None


def _read_sync_messages(file: Path) -> dict[str, tuple[int, float]]:
    """{stream folder name: (start sample, rate)} from a sync_messages.txt, if present."""
    if not file.exists():
        return {}
    out = {}
    for line in file.read_text(errors="replace").splitlines():
        m = _SYNC_NEW.search(line) or _SYNC_OLD.search(line)
        if m:
            name = f"{m['device'].replace(' ', '_')}-{m['id']}.{m['stream']}"
            out[name] = (int(m["start"]), float(m["rate"]))
    return out


def _start_sample(
    recording: Path | None, stream: str, sync: dict[str, tuple[int, float]]
) -> tuple[int, str]:
    if recording is not None:
        cont = recording / "continuous" / stream
        for name in ("sample_numbers.npy", "timestamps.npy"):
            file = cont / name
            if file.exists():
                try:
                    first = load_npy(file, mmap_mode="r")
                except DecodeError:  # damaged: the next source is tried
                    continue
                if first.size and first.dtype.kind in "iu":
                    return int(first.ravel()[0]), "continuous"
    key = _sync_key(stream, sync)
    if key is not None:
        return sync[key][0], "sync_messages.txt"
    return 0, "none"


def _sync_key(stream: str, sync: dict[str, tuple[int, float]]) -> str | None:
    if stream in sync:
        return stream
    hits = [k for k in sync if k.replace("_", " ") == stream.replace("_", " ")]
    return hits[0] if len(hits) == 1 else None


def _stream_rate(
    path: Path,
    folder: Path,
    recording: Path | None,
    stream: str,
    sync: dict[str, tuple[int, float]],
) -> float | None:
    key = _sync_key(stream, sync)
    if key is not None:
        return sync[key][1]
    if recording is not None and (recording / "structure.oebin").exists():
        info = _load_json(recording / "structure.oebin")
        for entry in info.get("continuous", []) if isinstance(info, dict) else []:
            if str(entry.get("folder_name", "")).strip("/") == stream:
                return float(entry["sample_rate"])
    for candidate in (path, *path.parents[:3], *folder.parents[:4]):
        info_file = candidate / "probe_info.json"
        if info_file.exists():
            rate = _probe_info_rate(_load_json(info_file), stream)
            if rate:
                return rate
    return None


def _probe_info_rate(info: object, stream: str) -> float | None:
    probe = info.get("probe") if isinstance(info, dict) else None
    subs = probe.get("subprocessors", []) if isinstance(probe, dict) else []
    for sub in subs:
        if isinstance(sub, dict) and sub.get("name") == stream and "sample_rate" in sub:
            return float(sub["sample_rate"])
    return None


def _load_json(file: Path) -> object:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        msg = f"not readable JSON: {exc}"
        raise DecodeError(msg, file=file) from None
