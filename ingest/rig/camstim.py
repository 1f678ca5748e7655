"""Camstim behaviour pickle (Allen change-detection task) -> trials, licks, rewards, running speed.

SECURITY: loading a pickle can run arbitrary code. `decode_camstim` unpickles a file only when
the user named it (`DecodeOptions.pickles`); otherwise it raises a DecodeError before opening
the file. Never point nplake at pickles you did not make or do not trust.

Layout (FORMATS.md 2.5): ``items['behavior']`` holds `intervalsms` (frame intervals, ms),
`trial_log` (one dict per trial: `events` as ``[name, 'enter'|'exit'|'', time, frame]``,
`trial_params`, `rewards` as ``(volume, time, frame)``, `licks` as ``(time, frame)``,
`stimulus_changes` as ``((from_group, from_name), (to_group, to_name), time, frame)``, ...),
`lick_sensors[i]['lick_events']` (frames), `encoders[0]['dx']` (wheel rotation per frame, deg),
`rewards[0]`, `params`, `stimuli`.

Conventions:

- Times come from FRAME INDICES only. A frame's time is ``frame_times[frame]`` (sync vsyncs,
  master clock; count must equal ``len(intervalsms) + 1``) or, without sync,
  ``concatenate([0], cumsum(intervalsms)) / 1000`` — the pickle's own clock, 0 = first frame.
  The seconds camstim wrote next to each event are ignored: they run on yet another clock
  (about 6.24 s ahead of the frame clock in the example file).
- Trials: one row per `trial_log` entry; `trial_index` is its position. start/stop are the
  `trial_start` / `trial_end` event frames. `change_time` is the `stimulus_changed` event
  (NaN when the stimulus did not change); catch trials carry `sham_change_time` instead.
  `initial_image_name` is the image before the change, or for trials without a change the
  image shown at trial start (from the stimulus `set_log`); `change_image_name` is null when
  nothing changed. `response_time` is the frame of the `hit`, `false_alarm` or
  `early_response` event (the lick the task acted on). Every `trial_params` key becomes a
  column under its own name (prefixed ``trial_params_`` when it would clash with a derived
  column, e.g. `trial_params_change_time`, the scheduled change). `lick_times` and the full
  event list (`event_names`, `event_times`) are list columns.
- Licks: every lick sensor's `lick_events`, not de-duplicated (camstim already debounces);
  source = "camstim:lick_sensor" (sensor 0) or "camstim:lick_sensor_<i>".
- Rewards: the rewards of `trial_log` (volume in mL as camstim logs it); auto_rewarded is the
  trial's ``trial_params['auto_reward']`` (the Allen SDK convention); source = "camstim".
  (``rewards[0]['reward_times']``, the solenoid's own log, is one frame later than `trial_log`
  for earned rewards in the example file; `trial_log` is used, as the Allen SDK does.)
- Running speed: `encoders[0]['dx']` (degrees per frame, one more read than frames in real
  files: the last is dropped, as the Allen SDK does) -> cm/s at the Allen running radius
  `RUNNING_RADIUS_CM` (a 6.5-inch-diameter wheel, radius 8.255 cm, with the mouse at 2/3 of
  the radius: 5.503 cm; AllenSDK `extract_running_speed` wheel_radius=8.255 cm and
  `running_processing.deg_to_dist`), then the 4 Hz zero-phase low-pass of `_wheel.py`.
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.base import DecodeOptions
from ingest.rig import _wheel
from ingest.rig.task import (
    BehaviourTables,
    frame_clock,
    frames_to_times,
    licks_table,
    rewards_table,
    running_table,
)
from schemas import DecodeError
from schemas.conform import normalized_type

#: Radius of the Allen running wheel (cm): a 6.5-inch diameter (AllenSDK default 8.255 cm).
ALLEN_WHEEL_RADIUS_CM = 6.5 * 2.54 / 2
#: Where on the wheel the mouse runs, as a fraction of the radius (AllenSDK: 2/3).
ALLEN_SUBJECT_POSITION = 2.0 / 3.0
#: Radius at which wheel rotation becomes running speed (cm): 5.503 cm.
RUNNING_RADIUS_CM = ALLEN_WHEEL_RADIUS_CM * ALLEN_SUBJECT_POSITION
LICK_SOURCE = "camstim:lick_sensor"
REWARD_SOURCE = "camstim"

_GZIP_MAGIC = b"\x1f\x8b"
_UNPICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    OSError,
    ImportError,
    AttributeError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
)
#: Columns derived here; a trial_params key with one of these names gets a prefix.
_DERIVED = frozenset(
    {
        "trial_index",
        "start_time",
        "stop_time",
        "start_frame",
        "stop_frame",
        "change_frame",
        "change_time",
        "sham_change_frame",
        "sham_change_time",
        "initial_image_name",
        "change_image_name",
        "response_time",
        "response_window_start_time",
        "response_window_stop_time",
        "hit",
        "miss",
        "false_alarm",
        "correct_reject",
        "aborted",
        "auto_rewarded",
        "reward_time",
        "reward_volume",
        "success",
        "cumulative_rewards",
        "cumulative_volume",
        "lick_times",
        "event_names",
        "event_times",
    }
)
#: Outcome columns: the event whose presence sets them.
_OUTCOMES = {
    "hit": "hit",
    "miss": "miss",
    "false_alarm": "false_alarm",
    "correct_reject": "rejection",
    "aborted": "abort",
    "auto_rewarded": "auto_reward",
}
_RESPONSE_EVENTS = ("hit", "false_alarm", "early_response")


def decode_camstim(
    path: str | Path, *, options: DecodeOptions, frame_times: np.ndarray | None = None
) -> BehaviourTables:
    """Decode a camstim behaviour pickle the user named into trials, licks, rewards, running.

    Parameters
    ----------
    path
        The `.pkl` (optionally gzip-compressed) file.
    options
        Must list `path` in `pickles`, else DecodeError and the file is not unpickled.
    frame_times
        Time (s, master clock) of every frame from the sync vsyncs; None puts times on the
        pickle's own frame clock (cumulative `intervalsms` from 0).

    Examples
    --------
    >>> opts = DecodeOptions(pickles=(pkl,))  # doctest: +SKIP
    >>> decode_camstim(pkl, options=opts).trials.num_rows  # doctest: +SKIP
    953
    """
    path = Path(path)
    data = load_pickle(path, options)
    behavior = _behavior(data, path)
    notes: list[str] = []
    intervals = np.asarray(_require(behavior, "intervalsms", path), dtype=np.float64).ravel()
    times = frame_clock(
        intervals / 1000.0, frame_times, file=path, field=_field("intervalsms"), notes=notes
    )
    trial_log = _require(behavior, "trial_log", path)
    if not isinstance(trial_log, list | tuple):
        msg = f"expected a list of trials, found {type(trial_log).__name__}"
        raise DecodeError(msg, file=path, field=_field("trial_log"))
    gathered = _gather(trial_log, path)
    trials = _trials(gathered, behavior, times, path, notes)
    rewards = _rewards(gathered, behavior, times, path, notes)
    licks = _licks(behavior, times, path, notes)
    running = _running(behavior, times, path, notes)
    return BehaviourTables(trials, licks, rewards, running, times, notes, _metadata(data))


def load_pickle(path: Path, options: DecodeOptions) -> Any:
    """Unpickle `path` (gzip or plain, Python-2 safe) — only if the user named it."""
    if not options.allows_pickle(path):
        msg = (
            f"not loading the pickle {path}: loading a pickle can run arbitrary code, so nplake "
            "only loads pickles you name explicitly. If you trust this file, pass it as "
            f"DecodeOptions(pickles=(Path({str(path)!r}),)) or "
            f"ingest.decode(..., pickles=[{str(path)!r}])"
        )
        raise DecodeError(msg, file=path)
    if not path.is_file():
        msg = "no such file"
        raise DecodeError(msg, file=path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        try:
            if compressed:
                with gzip.GzipFile(fileobj=raw) as stream:
                    return pickle.load(stream, encoding="latin1")
            return pickle.load(raw, encoding="latin1")
        except _UNPICKLE_ERRORS as exc:
            msg = f"cannot unpickle ({type(exc).__name__}: {exc})"
            raise DecodeError(msg, file=path) from None


# --------------------------------------------------------------------------- gathering


def _gather(trial_log: list, path: Path) -> dict[str, Any]:
    """One pass over `trial_log`, collecting per-trial columns and flattened ragged values."""
    cols: dict[str, list] = {name: [] for name in ("start", "stop", "change", "sham")}
    for name in ("response", "window_start", "window_stop", "success", "cum_rewards"):
        cols[name] = []
    cols.update(cum_volume=[], index=[], initial=[], changed_to=[])
    outcome: dict[str, list[bool]] = {name: [] for name in _OUTCOMES}
    params: list[Mapping] = []
    ragged: dict[str, list] = {
        "lick_frames": [],
        "n_licks": [],
        "event_names": [],
        "event_frames": [],
        "n_events": [],
        "reward_frames": [],
        "reward_volumes": [],
        "n_rewards": [],
    }
    for i, trial in enumerate(trial_log):
        if not isinstance(trial, Mapping):
            msg = f"trial {i} is a {type(trial).__name__}, not a dict"
            raise DecodeError(msg, file=path, field=_field("trial_log"))
        try:
            _gather_trial(i, trial, path, cols, outcome, params, ragged)
        except (TypeError, IndexError, ValueError, AttributeError) as exc:
            msg = f"trial {i} has an unexpected layout ({type(exc).__name__}: {exc})"
            raise DecodeError(msg, file=path, field=_field(f"trial_log[{i}]")) from None
    return {"cols": cols, "outcome": outcome, "params": params, "ragged": ragged}


def _gather_trial(
    i: int,
    trial: Mapping,
    path: Path,
    cols: dict[str, list],
    outcome: dict[str, list[bool]],
    params: list[Mapping],
    ragged: dict[str, list],
) -> None:
    """Append one trial's values to the column lists."""
    first = _events(trial, i, path, ragged)
    for key, label in (("start", "trial_start"), ("stop", "trial_end")):
        if label not in first:
            msg = f"trial {i} has no {label!r} event"
            raise DecodeError(msg, file=path, field=_field(f"trial_log[{i}].events"))
        cols[key].append(first[label])
    change = _first_change(trial)
    cols["change"].append(first.get("stimulus_changed", change[2]))
    cols["sham"].append(first.get("sham_change", np.nan))
    cols["initial"].append(change[0])
    cols["changed_to"].append(change[1])
    response = [first[e] for e in _RESPONSE_EVENTS if e in first]
    cols["response"].append(response[0] if response else np.nan)
    cols["window_start"].append(first.get("response_window:enter", np.nan))
    cols["window_stop"].append(first.get("response_window:exit", np.nan))
    for name, event in _OUTCOMES.items():
        outcome[name].append(event in first)
    cols["index"].append(trial.get("index", i))
    cols["success"].append(trial.get("success"))
    cols["cum_rewards"].append(trial.get("cumulative_rewards"))
    cols["cum_volume"].append(trial.get("cumulative_volume"))
    trial_params = trial.get("trial_params") or {}
    if not isinstance(trial_params, Mapping):
        msg = f"trial_params is a {type(trial_params).__name__}, not a dict"
        raise TypeError(msg)
    params.append(trial_params)
    licks = [lick[1] for lick in trial.get("licks") or ()]
    ragged["lick_frames"].extend(licks)
    ragged["n_licks"].append(len(licks))
    rewards = list(trial.get("rewards") or ())
    ragged["reward_volumes"].extend(r[0] for r in rewards)
    ragged["reward_frames"].extend(r[2] for r in rewards)
    ragged["n_rewards"].append(len(rewards))


def _events(trial: Mapping, i: int, path: Path, ragged: dict[str, list]) -> dict[str, float]:
    """First frame of each event of a trial ("name" or "name:enter"); appends the full list."""
    first: dict[str, float] = {}
    events = trial.get("events") or ()
    for event in events:
        if len(event) != 4:
            msg = f"trial {i}: an event has {len(event)} fields, expected 4"
            raise DecodeError(msg, file=path, field=_field(f"trial_log[{i}].events"))
        name, kind, _, frame = event
        key = f"{name}:{kind}" if kind else str(name)
        first.setdefault(key, frame)
        ragged["event_names"].append(key)
        ragged["event_frames"].append(frame)
    ragged["n_events"].append(len(events))
    return first


def _first_change(trial: Mapping) -> tuple[str | None, str | None, float]:
    """(from image, to image, frame) of the trial's first stimulus change, or Nones and NaN."""
    changes = trial.get("stimulus_changes") or ()
    if not changes:
        return None, None, np.nan
    before, after, _, frame = changes[0]
    return str(before[1]), str(after[1]), frame


# --------------------------------------------------------------------------- tables


def _trials(
    gathered: dict, behavior: Mapping, times: np.ndarray, path: Path, notes: list[str]
) -> pa.Table:
    """The trials table from the gathered columns."""
    c = gathered["cols"]
    n = len(c["start"])
    index = np.asarray(c["index"])
    if n and not np.array_equal(index, np.arange(n)):
        notes.append(f"{path.name}: trial_log 'index' differs from trial order; order used")
    field = _field("trial_log")
    out: dict[str, pa.Array] = {"trial_index": pa.array(np.arange(n, dtype=np.int64))}
    for name, key in (("start", "start"), ("stop", "stop")):
        t, _ = frames_to_times(np.asarray(c[key], float), times, file=path, field=field)
        out[f"{name}_time"] = pa.array(t)
        out[f"{name}_frame"] = pa.array(np.asarray(c[key], dtype=np.int64))
    for name, key in (("change", "change"), ("sham_change", "sham")):
        frames = np.asarray(c[key], dtype=np.float64)
        t, ok = frames_to_times(frames, times, file=path, field=field)
        out[f"{name}_frame"] = pa.array(np.where(ok, frames, 0).astype(np.int64), mask=~ok)
        out[f"{name}_time"] = pa.array(t)
    initial = _initial_images(c["initial"], np.asarray(c["start"]), behavior)
    out["initial_image_name"] = pa.array(initial, pa.string())
    out["change_image_name"] = pa.array(c["changed_to"], pa.string())
    for name, key in (
        ("response_time", "response"),
        ("response_window_start_time", "window_start"),
        ("response_window_stop_time", "window_stop"),
    ):
        frames = np.asarray(c[key], dtype=np.float64)
        out[name] = pa.array(frames_to_times(frames, times, file=path, field=field)[0])
    for name, values in gathered["outcome"].items():
        out[name] = pa.array(values, pa.bool_())
    out.update(_reward_columns(gathered["ragged"], times, path))
    out["success"] = pa.array(c["success"], pa.bool_())
    out["cumulative_rewards"] = pa.array(c["cum_rewards"], pa.int64())
    out["cumulative_volume"] = pa.array(c["cum_volume"], pa.float64())
    out.update(_param_columns(gathered["params"], path, notes))
    out.update(_ragged_columns(gathered["ragged"], times, path))
    return pa.table(out)


def _initial_images(from_changes: list, start_frames: np.ndarray, behavior: Mapping) -> list:
    """Image before the change; without a change, the image set last before the trial start."""
    log = _set_log(behavior)
    if log is None or not len(start_frames):
        return from_changes
    frames, names = log
    i = np.searchsorted(frames, start_frames, side="right") - 1
    shown = np.where(i >= 0, names[np.clip(i, 0, None)], None)
    return [a if a is not None else b for a, b in zip(from_changes, shown.tolist(), strict=True)]


def _set_log(behavior: Mapping) -> tuple[np.ndarray, np.ndarray] | None:
    """(frames, values) of the one stimulus `set_log`, or None when absent or ambiguous."""
    stimuli = behavior.get("stimuli") or {}
    logs = [s.get("set_log") for s in stimuli.values() if isinstance(s, Mapping)]
    logs = [log for log in logs if log]
    if len(logs) != 1:
        return None
    frames = np.asarray([entry[3] for entry in logs[0]], dtype=np.int64)
    names = np.asarray([str(entry[1]) for entry in logs[0]], dtype=object)
    order = np.argsort(frames, kind="stable")
    return frames[order], names[order]


def _reward_columns(ragged: dict, times: np.ndarray, path: Path) -> dict[str, pa.Array]:
    """reward_time (first reward of the trial, NaN when none) and reward_volume (sum, mL)."""
    counts = np.asarray(ragged["n_rewards"], dtype=np.int64)
    frames = np.asarray(ragged["reward_frames"], dtype=np.float64)
    t, _ = frames_to_times(frames, times, file=path, field=_field("trial_log.rewards"))
    volumes = np.asarray(ragged["reward_volumes"], dtype=np.float64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
    has = counts > 0
    first = np.full(len(counts), np.nan)
    first[has] = t[starts[has]]
    total = np.zeros(len(counts))
    np.add.at(total, np.repeat(np.arange(len(counts)), counts), volumes)
    return {"reward_time": pa.array(first), "reward_volume": pa.array(total)}


def _ragged_columns(ragged: dict, times: np.ndarray, path: Path) -> dict[str, pa.Array]:
    """lick_times, event_names and event_times as list columns (seconds)."""
    out = {}
    lick_t, _ = frames_to_times(
        np.asarray(ragged["lick_frames"], float), times, file=path, field=_field("trial_log.licks")
    )
    out["lick_times"] = _list_array(lick_t, ragged["n_licks"], pa.float64())
    out["event_names"] = _list_array(ragged["event_names"], ragged["n_events"], pa.string())
    event_t, _ = frames_to_times(
        np.asarray(ragged["event_frames"], float), times, file=path, field=_field("trial_log")
    )
    out["event_times"] = _list_array(event_t, ragged["n_events"], pa.float64())
    return out


def _list_array(values, counts: list[int], value_type: pa.DataType) -> pa.ListArray:
    """A list column from flattened values and per-row counts."""
    offsets = np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, value_type))


def _param_columns(params: list[Mapping], path: Path, notes: list[str]) -> dict[str, pa.Array]:
    """One column per trial_params key (null where a trial lacks it)."""
    keys = list(dict.fromkeys(k for p in params for k in p))
    out = {}
    for key in keys:
        name = f"trial_params_{key}" if key in _DERIVED else str(key)
        values = [p.get(key) for p in params]
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            array = None
        if array is None or normalized_type(array.type) is None:
            array = pa.array([None if v is None else repr(v) for v in values], pa.string())
            notes.append(f"{path.name}: trial_params[{key!r}] stored as text (mixed values)")
        out[name] = array
    return out


def _rewards(
    gathered: dict, behavior: Mapping, times: np.ndarray, path: Path, notes: list[str]
) -> pa.Table:
    """One row per reward in trial_log; auto_rewarded from the trial's auto_reward param."""
    ragged = gathered["ragged"]
    counts = np.asarray(ragged["n_rewards"], dtype=np.int64)
    frames = np.asarray(ragged["reward_frames"], dtype=np.float64)
    t, _ = frames_to_times(frames, times, file=path, field=_field("trial_log.rewards"))
    auto = [p.get("auto_reward") for p in gathered["params"]]
    auto_per_reward = pa.array(auto, pa.bool_()).take(
        pa.array(np.repeat(np.arange(len(counts)), counts))
    )
    volumes = np.asarray(ragged["reward_volumes"], dtype=np.float64)
    logged = _reward_count(behavior)
    if logged is not None and logged != len(frames):
        notes.append(
            f"{path.name}: rewards[0] counts {logged} rewards, trial_log {len(frames)}; "
            "trial_log used"
        )
    return rewards_table(t, volumes, auto_per_reward, np.full(len(t), REWARD_SOURCE))


def _reward_count(behavior: Mapping) -> int | None:
    """rewards[0]['reward_count'] when present."""
    rewards = behavior.get("rewards") or ()
    if not rewards or not isinstance(rewards[0], Mapping):
        return None
    count = rewards[0].get("reward_count")
    return None if count is None else int(count)


def _licks(behavior: Mapping, times: np.ndarray, path: Path, notes: list[str]) -> pa.Table:
    """Every lick sensor's events as licks (sensor 0 -> 'camstim:lick_sensor')."""
    sensors = behavior.get("lick_sensors") or ()
    tables = []
    for i, sensor in enumerate(sensors):
        field = _field(f"lick_sensors[{i}].lick_events")
        if not isinstance(sensor, Mapping):
            msg = f"a lick sensor is a {type(sensor).__name__}, not a dict"
            raise DecodeError(msg, file=path, field=field)
        frames = np.asarray(sensor.get("lick_events", ()), dtype=np.float64).ravel()
        t, ok = frames_to_times(frames, times, file=path, field=field)
        source = LICK_SOURCE if i == 0 else f"{LICK_SOURCE}_{i}"
        tables.append(licks_table(t[ok], source))
    if not tables:
        notes.append(f"{path.name}: no lick sensors; licks table empty")
        return licks_table(np.zeros(0), LICK_SOURCE)
    return pa.concat_tables(tables)


def _running(behavior: Mapping, times: np.ndarray, path: Path, notes: list[str]) -> pa.Table:
    """Running speed from encoder 0's dx (degrees per frame) at the Allen running radius."""
    encoders = behavior.get("encoders") or ()
    dx = encoders[0].get("dx") if encoders and isinstance(encoders[0], Mapping) else None
    if dx is None or len(dx) == 0:
        notes.append(f"{path.name}: no wheel encoder dx; running_speed empty")
        return running_table(np.zeros(0), np.zeros(0))
    dx = np.asarray(dx, dtype=np.float64).ravel()
    if len(dx) == len(times) + 1:
        dx = dx[:-1]
        notes.append(f"{path.name}: encoder dx has one read more than frames; last dropped")
    if len(dx) != len(times):
        msg = f"{len(dx)} encoder reads for {len(times)} frames"
        raise DecodeError(msg, file=path, field=_field("encoders[0].dx"))
    t, speed = _wheel.speed_from_degrees(dx, times, radius_cm=RUNNING_RADIUS_CM)
    return running_table(t, speed)


# --------------------------------------------------------------------------- helpers


def _behavior(data: Any, path: Path) -> Mapping:
    """items['behavior'] of an unpickled camstim file."""
    items = data.get("items") if isinstance(data, Mapping) else None
    behavior = items.get("behavior") if isinstance(items, Mapping) else None
    if not isinstance(behavior, Mapping):
        msg = "not a camstim behaviour pickle (no items['behavior'] dict)"
        raise DecodeError(msg, file=path, field="items.behavior")
    return behavior


def _require(behavior: Mapping, key: str, path: Path) -> Any:
    if key not in behavior or behavior[key] is None:
        msg = "required entry is missing"
        raise DecodeError(msg, file=path, field=_field(key))
    return behavior[key]


def _field(name: str) -> str:
    return f"items.behavior.{name}"


def _metadata(data: Mapping) -> dict[str, str]:
    """Session-level text of the pickle: start/stop time, rig, mouse, stage, ..."""
    out = {}
    for key in ("start_time", "stop_time", "rig_id", "comp_id", "session_uuid"):
        value = data.get(key)
        if value is not None:
            out[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    params = data["items"]["behavior"].get("params") or {}
    for key in ("mouse_id", "stage", "task_id", "user_id"):
        if params.get(key) is not None:
            out[key] = str(params[key])
    return out
