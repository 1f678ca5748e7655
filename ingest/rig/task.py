"""TaskControl behaviour HDF5 (Dynamic Routing task) -> trials, licks, rewards, running speed.

Every event in a TaskControl file is a FRAME INDEX (FORMATS.md 2.4). A frame's time is

- with a sync file: the `vsync_stim` falling edge of that frame, passed in as `frame_times`
  (seconds on the master clock); their count must equal the task's frame count,
  ``len(frameIntervals) + 1``, or decoding fails naming `frameIntervals`;
- without one: ``concatenate([0], cumsum(frameIntervals))`` — the task file's own clock, whose
  zero is the first frame flip. Times are then NOT on a master clock; a note says so.

Conventions (shared with `camstim.py` where they apply):

- Trials: one row per completed trial. The trial count is ``len(trialEndFrame)``; trial arrays
  one entry longer hold the unfinished last trial, which is dropped (noted). `block` is the
  file's 1-based `trialBlock`; `rewarded_stimulus` is ``blockStimRewarded[block - 1]``.
  Frames that are NaN or negative (-1) mean "none": their times are NaN and frames null.
  `trialOptoOnsetFrame` counts from the trial's stimulus start frame when the file has
  `trialStimStartFrame` (Dynamic Routing), else it is an absolute frame (opto-tagging scripts).
  Every other per-trial dataset (name starting with "trial", one entry per trial) is kept as
  an extra column under its own name; 2-d ones become list columns.
- Licks: `lickFrames` -> times, then de-duplicated: a detection less than or equal to 50 ms
  after the previous detection continues a run, and only the first of each run is kept
  (the rule of the Dynamic Routing analysis code). source = "task_file". Lick times from the
  sync `lick_sensor` rising edges, when given, are used instead, as they are
  (source = "sync:lick_sensor").
- Rewards: `rewardFrames`; a reward also listed in `manualRewardFrames` (spacebar reward by the
  experimenter) gets source "task_file:manual" and auto_rewarded null (neither automatic nor
  earned); manual frames missing from `rewardFrames` (older scripts) are added as such rows.
  Other rewards: source "task_file", auto_rewarded = `trialAutoRewarded` of the trial whose
  [start, end] frames contain the reward frame (null outside trials). `volume` is null:
  TaskControl stores solenoid open times (`rewardSize`, `solenoidOpenTime`, seconds), which
  are not volumes.
- Running speed: digital encoder only (`rotaryEncoder` == "digital"): `rotaryEncoderCount`
  (cumulative, one read per frame, NaN for a failed read; no wrap-around) ->
  ``diff(count) / rotaryEncoderCountsPerRev * 2 pi wheelRadius / frame interval`` (cm/s), the
  4 Hz zero-phase low-pass of `_wheel.py`, stamped with the later frame of each pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest._hdf5 import open_h5, read_text, text_array
from ingest.rig import _wheel
from schemas import DecodeError
from schemas.tables import LICKS, REWARDS, RUNNING_SPEED

#: Licks closer than this to the previous detection are one lick (s).
LICK_DEDUP_S = 0.05
TASK_LICK_SOURCE = "task_file"
SYNC_LICK_SOURCE = "sync:lick_sensor"
TASK_REWARD_SOURCE = "task_file"
MANUAL_REWARD_SOURCE = "task_file:manual"

#: Per-trial datasets turned into named columns (everything else "trial*" is kept as is).
_CONSUMED = frozenset(
    {
        "trialStartFrame",
        "trialEndFrame",
        "trialStimStartFrame",
        "trialStim",
        "trialBlock",
        "trialResponse",
        "trialResponseFrame",
        "trialRewarded",
        "trialAutoRewarded",
    }
)


@dataclass(frozen=True)
class BehaviourTables:
    """What a behaviour decoder returns: four Arrow tables without session_id, and context.

    `frame_times` are the frame times used (s); `notes` are remarks for the ingest summary;
    `metadata` holds session-level text the file carries (start time, rig, task version, ...).
    """

    trials: pa.Table
    licks: pa.Table
    rewards: pa.Table
    running_speed: pa.Table
    frame_times: np.ndarray
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


def decode_task(
    path: str | Path,
    *,
    frame_times: np.ndarray | None = None,
    lick_times_from_sync: np.ndarray | None = None,
) -> BehaviourTables:
    """Decode a TaskControl HDF5 file into trials, licks, rewards and running speed.

    Parameters
    ----------
    path
        The TaskControl `.hdf5` file.
    frame_times
        Time (s, master clock) of every frame, from the sync `vsync_stim` falling edges; None
        puts times on the task file's own clock (cumulative frame intervals from 0).
    lick_times_from_sync
        Rising edges (s, master clock) of the sync `lick_sensor` line; used instead of
        `lickFrames` when given. Needs `frame_times` from the same sync file (ValueError
        otherwise: the tables would mix two clocks).

    Examples
    --------
    >>> tables = decode_task(task_file)  # doctest: +SKIP
    >>> tables.trials.column("start_time")  # doctest: +SKIP
    """
    path = Path(path)
    if lick_times_from_sync is not None and frame_times is None:
        msg = "lick_times_from_sync are on the sync clock: pass that sync file's frame_times too"
        raise ValueError(msg)
    notes: list[str] = []
    with open_h5(path) as h5:
        intervals = _dataset(h5, "frameIntervals", path, required=True)
        times = frame_clock(
            np.asarray(intervals, dtype=np.float64).ravel(),
            frame_times,
            file=path,
            field="frameIntervals",
            notes=notes,
        )
        trials = _trials(h5, path, times, notes)
        licks = _licks(h5, path, times, lick_times_from_sync, notes)
        rewards = _rewards(h5, path, times, trials, notes)
        running = _running(h5, path, times, notes)
        metadata = _metadata(h5)
    return BehaviourTables(trials, licks, rewards, running, times, notes, metadata)


# --------------------------------------------------------------------------- frame clock


def frame_clock(
    intervals_s: np.ndarray,
    frame_times: np.ndarray | None,
    *,
    file: Path,
    field: str,
    notes: list[str],
) -> np.ndarray:
    """Frame times: the given sync times (checked against the task's frame count) or our own.

    The task's frame count is ``len(intervals_s) + 1``. Without `frame_times` the clock is
    ``concatenate([0], cumsum(intervals_s))``.
    """
    n_frames = len(intervals_s) + 1
    if frame_times is None:
        if not np.all(np.isfinite(intervals_s)) or np.any(intervals_s <= 0):
            msg = "frame intervals must be finite and positive"
            raise DecodeError(msg, file=file, field=field)
        notes.append(
            f"{file.name}: no sync frame times; times are on the behaviour file's own clock "
            f"(0 = first frame, cumulative {field}), not the master clock"
        )
        return np.concatenate([[0.0], np.cumsum(intervals_s)])
    times = np.asarray(frame_times, dtype=np.float64)
    if times.ndim != 1 or len(times) != n_frames:
        msg = (
            f"the task file has {n_frames} frames (len({field}) + 1 = {len(intervals_s)} + 1) "
            f"but the sync file has {times.size} vsync falling edges"
        )
        raise DecodeError(msg, file=file, field=field)
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        msg = "sync frame times must be finite and strictly increasing"
        raise DecodeError(msg, file=file, field=field)
    return times


def frames_to_times(
    frames: np.ndarray, times: np.ndarray, *, file: Path, field: str
) -> tuple[np.ndarray, np.ndarray]:
    """Times of frame indices; NaN or negative frames mean "none" and give NaN.

    Returns (times, valid). A fractional or out-of-range frame is a DecodeError.
    """
    f = np.asarray(frames, dtype=np.float64)
    valid = np.isfinite(f) & (f >= 0)
    out = np.full(f.shape, np.nan)
    idx = f[valid]
    if np.any(idx != np.floor(idx)):
        msg = "frame indices must be whole numbers"
        raise DecodeError(msg, file=file, field=field)
    if idx.size and idx.max() >= len(times):
        msg = f"frame index {int(idx.max())} is beyond the last frame ({len(times) - 1})"
        raise DecodeError(msg, file=file, field=field)
    out[valid] = times[idx.astype(np.int64)]
    return out, valid


# --------------------------------------------------------------------------- trials


def _trials(h5: h5py.File, path: Path, times: np.ndarray, notes: list[str]) -> pa.Table:
    """One row per completed trial, with every per-trial dataset of the file."""
    start = np.asarray(_dataset(h5, "trialStartFrame", path, required=True)).ravel()
    end = _dataset(h5, "trialEndFrame", path)
    n = len(start) if end is None else len(np.ravel(end))
    if len(start) not in (n, n + 1):
        msg = f"{len(start)} trial starts for {n} trial ends"
        raise DecodeError(msg, file=path, field="trialStartFrame")
    if len(start) == n + 1:
        notes.append(f"{path.name}: the last trial is unfinished (no trialEndFrame); dropped")
    odd = [k for k in sorted(_CONSUMED) if k in h5 and _per_trial(h5, k, n) is None]
    if odd:
        notes.append(f"{path.name}: {odd} are not one entry per trial; their columns are left out")
    start_time, start_ok = frames_to_times(start[:n], times, file=path, field="trialStartFrame")
    if not start_ok.all():
        msg = "every trial needs a start frame"
        raise DecodeError(msg, file=path, field="trialStartFrame")
    if end is None:
        stop_frames = np.append(start[1:n], len(times) - 1).astype(np.float64)
        notes.append(f"{path.name}: no trialEndFrame; a trial ends where the next one starts")
    else:
        stop_frames = np.asarray(end, dtype=np.float64).ravel()
    stop_time, stop_ok = frames_to_times(stop_frames, times, file=path, field="trialEndFrame")
    if not stop_ok.all():
        msg = "every trial needs an end frame"
        raise DecodeError(msg, file=path, field="trialEndFrame")
    cols: dict[str, pa.Array] = {
        "trial_index": pa.array(np.arange(n, dtype=np.int64)),
        "start_time": pa.array(start_time),
        "stop_time": pa.array(stop_time),
        "start_frame": pa.array(start[:n].astype(np.int64)),
        "stop_frame": pa.array(stop_frames.astype(np.int64)),
    }
    stim_start = _per_trial(h5, "trialStimStartFrame", n)
    if stim_start is not None:
        cols.update(_frame_columns("stim_start", stim_start, times, path, "trialStimStartFrame"))
    cols.update(_stimulus_columns(h5, path, n, notes))
    cols.update(_response_columns(h5, path, n, times))
    cols.update(_window_columns(h5, path, stim_start, times))
    cols.update(_opto_columns(h5, path, n, stim_start, times))
    cols.update(_extra_columns(h5, path, n, set(cols), notes))
    return pa.table(cols)


def _frame_columns(
    prefix: str, frames: np.ndarray, times: np.ndarray, path: Path, field: str
) -> dict[str, pa.Array]:
    """`<prefix>_frame` (null when none) and `<prefix>_time` (NaN when none)."""
    t, ok = frames_to_times(frames, times, file=path, field=field)
    ints = np.where(ok, np.nan_to_num(np.asarray(frames, dtype=np.float64)), 0).astype(np.int64)
    return {f"{prefix}_frame": pa.array(ints, mask=~ok), f"{prefix}_time": pa.array(t)}


def _stimulus_columns(h5: h5py.File, path: Path, n: int, notes: list[str]) -> dict[str, pa.Array]:
    """stimulus, block (1-based as in the file) and the block's rewarded stimulus."""
    cols: dict[str, pa.Array] = {}
    stim = _per_trial(h5, "trialStim", n)
    if stim is not None:
        cols["stimulus"] = pa.array(text_array(stim), pa.string())
    block = _per_trial(h5, "trialBlock", n)
    if block is None:
        return cols
    block = np.asarray(block, dtype=np.int64)
    cols["block"] = pa.array(block)
    rewarded = _dataset(h5, "blockStimRewarded", path)
    if rewarded is None:
        return cols
    names = np.array(text_array(np.ravel(rewarded)), dtype=object)
    if n and (block.min() < 1 or block.max() > len(names)):
        notes.append(
            f"{path.name}: trialBlock values {block.min()}..{block.max()} do not index the "
            f"{len(names)} blockStimRewarded entries (1-based); rewarded_stimulus left null"
        )
        cols["rewarded_stimulus"] = pa.nulls(n, pa.string())
    else:
        cols["rewarded_stimulus"] = pa.array(names[block - 1].tolist(), pa.string())
    return cols


def _response_columns(h5: h5py.File, path: Path, n: int, times: np.ndarray) -> dict[str, pa.Array]:
    """response, response_frame/time, rewarded, auto_rewarded, quiescent_frames."""
    cols: dict[str, pa.Array] = {}
    for name, source in (("response", "trialResponse"), ("rewarded", "trialRewarded")):
        values = _per_trial(h5, source, n)
        if values is not None:
            cols[name] = _bool_array(values)
    frames = _per_trial(h5, "trialResponseFrame", n)
    if frames is not None:
        cols.update(_frame_columns("response", frames, times, path, "trialResponseFrame"))
    auto = _per_trial(h5, "trialAutoRewarded", n)
    if auto is not None:
        cols["auto_rewarded"] = _bool_array(auto)
    quiescent = _dataset(h5, "quiescentFrames", path)
    if quiescent is not None:
        q = np.asarray(quiescent, dtype=np.float64)
        q = np.full(n, float(q)) if q.ndim == 0 else q.ravel()[:n]
        if len(q) == n:
            ok = np.isfinite(q)
            cols["quiescent_frames"] = pa.array(np.where(ok, q, 0).astype(np.int64), mask=~ok)
    return cols


def _window_columns(
    h5: h5py.File, path: Path, stim_start: np.ndarray | None, times: np.ndarray
) -> dict[str, pa.Array]:
    """Response window start/stop times: stimulus start frame + `responseWindow` frames."""
    window = np.ravel(h5["responseWindow"][()]) if "responseWindow" in h5 else None
    if window is None or stim_start is None or len(window) != 2:
        return {}
    cols = {}
    for name, offset in zip(("start", "stop"), window, strict=True):
        frames = np.asarray(stim_start, dtype=np.float64) + float(offset)
        frames = np.where(frames < len(times), frames, np.nan)
        t, _ = frames_to_times(frames, times, file=path, field="responseWindow")
        cols[f"response_window_{name}_time"] = pa.array(t)
    return cols


def _opto_columns(
    h5: h5py.File, path: Path, n: int, stim_start: np.ndarray | None, times: np.ndarray
) -> dict[str, pa.Array]:
    """opto_onset_time / opto_stop_time (earliest onset, latest offset over opto devices)."""
    onset = _per_trial(h5, "trialOptoOnsetFrame", n)
    if onset is None:
        return {}
    onset = np.asarray(onset, dtype=np.float64).reshape(n, -1)
    if stim_start is not None:
        onset = onset + np.asarray(stim_start, dtype=np.float64).reshape(n, 1)
    onset = np.where(onset < len(times), onset, np.nan)
    t, _ = frames_to_times(onset, times, file=path, field="trialOptoOnsetFrame")
    all_nan = np.all(np.isnan(t), axis=1)
    first = np.where(all_nan, np.nan, np.nanmin(np.where(all_nan[:, None], 0.0, t), axis=1))
    cols = {"opto_onset_time": pa.array(first)}
    dur = _per_trial(h5, "trialOptoDur", n)
    if dur is not None:
        dur = np.broadcast_to(np.asarray(dur, dtype=np.float64).reshape(n, -1), t.shape)
        ends = t + dur
        none = np.all(np.isnan(ends), axis=1)
        last = np.where(none, np.nan, np.nanmax(np.where(none[:, None], 0.0, ends), axis=1))
        cols["opto_stop_time"] = pa.array(last)
    return cols


def _extra_columns(
    h5: h5py.File, path: Path, n: int, taken: set[str], notes: list[str]
) -> dict[str, pa.Array]:
    """Every other top-level per-trial dataset ("trial*"), under its own name."""
    cols: dict[str, pa.Array] = {}
    skipped = []
    for name, obj in h5.items():
        if not name.startswith("trial") or name in _CONSUMED or name in taken:
            continue
        if not isinstance(obj, h5py.Dataset) or obj.ndim == 0 or obj.shape[0] not in (n, n + 1):
            skipped.append(name)
            continue
        cols[name] = _arrow_column(obj[()][:n])
    if skipped:
        notes.append(
            f"{path.name}: trial datasets {sorted(skipped)} are not one entry per trial; "
            "not in the trials table"
        )
    return cols


# --------------------------------------------------------------------------- licks, rewards


def dedup_licks(times: np.ndarray, min_interval: float = LICK_DEDUP_S) -> np.ndarray:
    """Mask keeping the first detection of each run of detections <= `min_interval` apart.

    Examples
    --------
    >>> dedup_licks(np.array([1.0, 1.02, 1.04, 2.0])).tolist()
    [True, False, False, True]
    """
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0:
        return np.zeros(0, dtype=bool)
    return np.concatenate([[True], np.diff(times) > min_interval])


def licks_table(times: np.ndarray, source: str) -> pa.Table:
    """The licks table (time, source), sorted by time."""
    times = np.sort(np.asarray(times, dtype=np.float64))
    return pa.table(
        {"time": pa.array(times), "source": pa.array(np.full(len(times), source, dtype=object))},
        schema=_schema(LICKS, ("time", "source")),
    )


def rewards_table(
    times: np.ndarray, volume: np.ndarray | None, auto: pa.Array, source: np.ndarray
) -> pa.Table:
    """The rewards table (time, volume, auto_rewarded, source), sorted by time."""
    order = np.argsort(times, kind="stable")
    n = len(order)
    volumes = pa.nulls(n, pa.float64()) if volume is None else pa.array(volume[order])
    table = pa.table(
        {
            "time": pa.array(np.asarray(times, dtype=np.float64)[order]),
            "volume": volumes,
            "auto_rewarded": auto.take(pa.array(order)) if n else pa.nulls(0, pa.bool_()),
            "source": pa.array(np.asarray(source, dtype=object)[order].tolist(), pa.string()),
        }
    )
    return table.cast(_schema(REWARDS, ("time", "volume", "auto_rewarded", "source")))


def running_table(times: np.ndarray, speed: np.ndarray) -> pa.Table:
    """The running_speed table (time, speed)."""
    return pa.table(
        {"time": pa.array(times, pa.float64()), "speed": pa.array(speed, pa.float64())},
        schema=_schema(RUNNING_SPEED, ("time", "speed")),
    )


def _licks(
    h5: h5py.File,
    path: Path,
    times: np.ndarray,
    from_sync: np.ndarray | None,
    notes: list[str],
) -> pa.Table:
    """Licks from the sync lick line when given, else de-duplicated `lickFrames`."""
    frames = _dataset(h5, "lickFrames", path)
    n_task = 0 if frames is None else np.size(frames)
    if from_sync is not None:
        notes.append(
            f"{path.name}: {len(from_sync)} licks from the sync lick_sensor line used; "
            f"the task file's {n_task} lickFrames were not"
        )
        return licks_table(np.asarray(from_sync, dtype=np.float64), SYNC_LICK_SOURCE)
    if frames is None:
        notes.append(f"{path.name}: no lickFrames; licks table empty")
        return licks_table(np.zeros(0), TASK_LICK_SOURCE)
    t, ok = frames_to_times(np.ravel(frames), times, file=path, field="lickFrames")
    t = np.sort(t[ok])
    keep = dedup_licks(t)
    if (~keep).any():
        notes.append(
            f"{path.name}: {int((~keep).sum())} of {len(t)} lickFrames were within "
            f"{LICK_DEDUP_S * 1000:.0f} ms of the previous detection; merged"
        )
    return licks_table(t[keep], TASK_LICK_SOURCE)


def _rewards(
    h5: h5py.File, path: Path, times: np.ndarray, trials: pa.Table, notes: list[str]
) -> pa.Table:
    """Task and manual rewards; auto_rewarded from the enclosing trial's trialAutoRewarded."""
    reward = _dataset(h5, "rewardFrames", path)
    manual = _dataset(h5, "manualRewardFrames", path)
    reward = np.zeros(0) if reward is None else np.asarray(reward, np.float64).ravel()
    manual = np.zeros(0) if manual is None else np.asarray(manual, np.float64).ravel()
    extra_manual = manual[~np.isin(manual, reward)]
    frames = np.concatenate([reward, extra_manual])
    is_manual = np.isin(frames, manual)
    t, ok = frames_to_times(frames, times, file=path, field="rewardFrames")
    frames, t, is_manual = frames[ok], t[ok], is_manual[ok]
    if len(frames) == 0:
        notes.append(f"{path.name}: no rewardFrames; rewards table empty")
    else:
        notes.append(
            f"{path.name}: reward volumes unknown (the file holds solenoid open times); "
            "rewards.volume is null"
        )
    auto = pc.if_else(pa.array(is_manual), pa.scalar(None, pa.bool_()), _auto_flags(frames, trials))
    source = np.where(is_manual, MANUAL_REWARD_SOURCE, TASK_REWARD_SOURCE)
    return rewards_table(t, None, auto, source)


def _auto_flags(frames: np.ndarray, trials: pa.Table) -> pa.Array:
    """The `trialAutoRewarded` of the trial containing each frame; null outside trials."""
    n = len(frames)
    if "auto_rewarded" not in trials.column_names or trials.num_rows == 0 or n == 0:
        return pa.nulls(n, pa.bool_())
    start = trials.column("start_frame").to_numpy()
    stop = trials.column("stop_frame").to_numpy()
    auto = np.asarray(trials.column("auto_rewarded").to_pylist(), dtype=object)
    i = np.searchsorted(start, frames, side="right") - 1
    inside = (i >= 0) & (frames <= stop[np.clip(i, 0, None)])
    values = np.where(inside, auto[np.clip(i, 0, None)], None)
    return pa.array(values.tolist(), pa.bool_())


# --------------------------------------------------------------------------- running


def _running(h5: h5py.File, path: Path, times: np.ndarray, notes: list[str]) -> pa.Table:
    """Running speed from the digital rotary encoder, or an empty table with a note."""
    empty = running_table(np.zeros(0), np.zeros(0))
    kind = read_text(h5, "rotaryEncoder")
    counts = _dataset(h5, "rotaryEncoderCount", path)
    if counts is None or (kind is not None and kind != "digital"):
        notes.append(f"{path.name}: no digital rotary encoder counts; running_speed empty")
        return empty
    per_rev = _dataset(h5, "rotaryEncoderCountsPerRev", path)
    radius = _dataset(h5, "wheelRadius", path)
    if per_rev is None or radius is None:
        notes.append(
            f"{path.name}: rotaryEncoderCountsPerRev or wheelRadius missing; running_speed empty"
        )
        return empty
    counts = np.asarray(counts, dtype=np.float64).ravel()
    counts, t = _match_reads(counts, times, path, notes)
    if np.isfinite(counts).sum() < 2:
        notes.append(f"{path.name}: fewer than two encoder reads; running_speed empty")
        return empty
    t, speed, n_missing = _wheel.speed_from_counts(
        counts, t, counts_per_rev=float(np.ravel(per_rev)[0]), radius_cm=float(np.ravel(radius)[0])
    )
    if n_missing:
        notes.append(f"{path.name}: {n_missing} failed encoder reads interpolated")
    return running_table(t, speed)


def _match_reads(
    counts: np.ndarray, times: np.ndarray, path: Path, notes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Encoder reads and frame times of equal length (one read more or fewer is trimmed)."""
    n = min(len(counts), len(times))
    if abs(len(counts) - len(times)) > 1:
        msg = f"{len(counts)} encoder reads for {len(times)} frames"
        raise DecodeError(msg, file=path, field="rotaryEncoderCount")
    if len(counts) != len(times):
        notes.append(
            f"{path.name}: {len(counts)} encoder reads for {len(times)} frames; "
            f"the first {n} of each used"
        )
    return counts[:n], times[:n]


# --------------------------------------------------------------------------- helpers


def _dataset(h5: h5py.File, name: str, path: Path, *, required: bool = False):
    """The value of top-level dataset `name`, None when absent (DecodeError if required)."""
    obj = h5.get(name)
    if not isinstance(obj, h5py.Dataset):
        if required:
            msg = "required dataset is missing"
            raise DecodeError(msg, file=path, field=name)
        return None
    return obj[()]


def _per_trial(h5: h5py.File, name: str, n: int) -> np.ndarray | None:
    """A per-trial dataset cut to `n` trials, or None when absent or of another length."""
    obj = h5.get(name)
    if not isinstance(obj, h5py.Dataset) or obj.ndim == 0 or obj.shape[0] not in (n, n + 1):
        return None
    return obj[()][:n]


def _bool_array(values: np.ndarray) -> pa.Array:
    """Booleans from bool or numeric data; NaN becomes null."""
    values = np.asarray(values)
    if values.dtype == bool:
        return pa.array(values)
    f = values.astype(np.float64)
    return pa.array(np.nan_to_num(f) != 0, mask=~np.isfinite(f))


def _arrow_column(values: np.ndarray) -> pa.Array:
    """An HDF5 per-trial array as Arrow: text decoded, 2-d as lists."""
    values = np.asarray(values)
    if values.dtype.kind in "SOU":
        if values.ndim == 1:
            return pa.array(text_array(values), pa.string())
        return pa.array([text_array(row) for row in values], pa.list_(pa.string()))
    if values.ndim == 1:
        return pa.array(values)
    return pa.array(list(values.reshape(len(values), -1)))


def _schema(spec, names: tuple[str, ...]) -> pa.Schema:
    """The spec's fields `names` (with units and descriptions) as a schema."""
    return pa.schema([spec.column(n).field() for n in names])


def _metadata(h5: h5py.File) -> dict[str, str]:
    """Session-level text datasets of the file, when present."""
    keys = {
        "startTime": "start_time",
        "rigName": "rig",
        "taskVersion": "task_version",
        "subjectName": "subject_id",
    }
    out = {}
    for source, name in keys.items():
        value = read_text(h5, source)
        if value is not None:
            out[name] = value
    frame_rate = read_text(h5, "frameRate")
    if frame_rate is not None:
        out["frame_rate"] = frame_rate
    return out
