"""Behaviour of the synthetic rig session: the sync lines it drives and its behaviour files.

`plan` turns the session's task (master-clock times) into frame indices, as a TaskControl or
camstim file stores them; `sync_lines` gives the sync lines the task drives (vsync, photodiode,
running flag, a camera, the lick sensor) as sample indices; `write_taskcontrol` and
`write_camstim` write the behaviour files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ingest.synth import _rig_files as files
from ingest.synth.model import LOCAL_TZ

if TYPE_CHECKING:
    from ingest.synth.model import SyntheticSession

COUNTS_PER_REV = 8192
WHEEL_RADIUS_CM = 4.69
#: Camstim's running radius (cm): 2/3 of the 6.5-inch Allen wheel's radius.
CAMSTIM_RADIUS_CM = 6.5 * 2.54 / 2 * 2 / 3
RESPONSE_WINDOW_FRAMES = (9, 45)
LICK_DEDUP_S = 0.05
#: A lick closer than this (sync samples) to the previous one is not written on the sync line.
MIN_LICK_GAP_SAMPLES = 3


@dataclass(frozen=True, eq=False)
class BehaviourPlan:
    """The task as frame indices, and the times a decoder must give them."""

    master_frames: np.ndarray  # frame times on the master clock
    intervals: np.ndarray  # frameIntervals (s)
    frame_times: np.ndarray  # what decoded times use: master frames, or the task's own clock
    start_frames: np.ndarray
    stop_frames: np.ndarray
    change_frames: np.ndarray  # float, NaN without a change
    response_frames: np.ndarray  # float, NaN without a response
    reward_frames: np.ndarray
    lick_frames: np.ndarray
    sync_licks: np.ndarray  # lick times written on the sync lick line
    no_sync: bool

    def lick_times(self, task_file: bool) -> np.ndarray:
        """The licks table's times: sync licks, else the task's lick frames on its own clock."""
        if not self.no_sync:
            return self.sync_licks
        t = np.sort(self.frame_times[self.lick_frames])
        if not task_file:  # camstim keeps every lick event
            return t
        keep = np.r_[True, np.diff(t) > LICK_DEDUP_S] if t.size else np.zeros(0, bool)
        return t[keep]

    def lick_source(self, task_file: bool) -> str:
        """The licks table's `source` value."""
        if not self.no_sync:
            return "sync:lick_sensor"
        return "task_file" if task_file else "camstim:lick_sensor"


def plan(session: SyntheticSession, no_sync: bool) -> BehaviourPlan:
    """Frame indices of the session's trials, licks and rewards."""
    task = session.task
    frames = task.frame_times
    trials = task.trials
    start = _exact_frames(frames, trials.start_time, "trial start")
    stop = _exact_frames(frames, trials.stop_time, "trial stop")
    change = np.full(len(start), np.nan)
    has = ~np.isnan(trials.change_time)
    change[has] = _exact_frames(frames, trials.change_time[has], "change")
    response = np.full(len(start), np.nan)
    answered = ~np.isnan(trials.response_time)
    response[answered] = _shown(frames, trials.response_time[answered])
    intervals = np.diff(frames)
    own = np.concatenate([[0.0], np.cumsum(intervals)])
    r = np.round(task.lick_times * files.SYNC_RATE_HZ).astype(np.int64)
    keep = np.r_[True, np.diff(r) >= MIN_LICK_GAP_SAMPLES] if r.size else np.zeros(0, bool)
    return BehaviourPlan(
        master_frames=frames,
        intervals=intervals,
        frame_times=own if no_sync else frames,
        start_frames=start,
        stop_frames=stop,
        change_frames=change,
        response_frames=response,
        reward_frames=_shown(frames, task.reward_times),
        lick_frames=task.lick_frames,
        sync_licks=r[keep] / files.SYNC_RATE_HZ,
        no_sync=no_sync,
    )


def sync_lines(session: SyntheticSession, p: BehaviourPlan, sync_end: float) -> dict[int, tuple]:
    """(rise, fall) sync samples of every line but the barcode line, by line number."""
    freq = files.SYNC_RATE_HZ
    labels = files.SYNC_LABELS
    frames = session.task.frame_times

    def samples(t: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(t) * freq).astype(np.int64)

    flips = samples(frames[::60] + 0.0045)
    cam = samples(0.1 + np.arange(int((sync_end - 0.2) * 30)) / 30.0)
    r = samples(p.sync_licks)
    gaps = np.diff(r, append=r[-1] + 2000) if r.size else r
    return {
        labels.index("vsync_stim"): (samples(frames - 0.004), samples(frames)),
        labels.index("stim_photodiode"): (flips[0::2], flips[1::2]),
        labels.index("stim_running"): (samples(frames[:1] - 0.05), samples(frames[-1:] + 0.05)),
        labels.index("beh_cam_exposing"): (cam, cam + 300),
        labels.index("lick_sensor"): (r, r + np.minimum(1000, gaps // 2)),
    }


def write_taskcontrol(session: SyntheticSession, folder: Path, p: BehaviourPlan) -> Path:
    """A TaskControl-style HDF5 of the change-detection task (every event a frame index)."""
    task, trials = session.task, session.task.trials
    local = _local(session)
    speed = task.running_speed
    distance = np.concatenate([[0.0], np.cumsum(speed[1:] * p.intervals)])
    counts = np.round(1000.0 + distance / (2 * np.pi * WHEEL_RADIUS_CM) * COUNTS_PER_REV)
    datasets = {
        "frameIntervals": p.intervals,
        "frameRate": 60,
        "startTime": f"{local:%Y%m%d_%H%M%S}",
        "rigName": session.rig,
        "taskVersion": session.session_type,
        "subjectName": session.subject.subject_id,
        "trialStartFrame": p.start_frames,
        "trialEndFrame": p.stop_frames,
        "trialStimStartFrame": p.change_frames,
        "trialStim": [str(x) for x in trials.change_image_name],
        "trialInitialImage": [str(x) for x in trials.initial_image_name],
        "trialResponse": trials.hit | trials.false_alarm,
        "trialResponseFrame": p.response_frames,
        "trialRewarded": ~np.isnan(trials.reward_time),
        "trialAutoRewarded": trials.auto_rewarded,
        "trialCatch": trials.catch,
        "trialAborted": trials.aborted,
        "responseWindow": np.array(RESPONSE_WINDOW_FRAMES),
        "lickFrames": p.lick_frames,
        "rewardFrames": p.reward_frames,
        "rotaryEncoder": "digital",
        "rotaryEncoderCount": counts,
        "rotaryEncoderCountsPerRev": COUNTS_PER_REV,
        "wheelRadius": WHEEL_RADIUS_CM,
    }
    name = f"ChangeDetection_{session.subject.subject_id}_{local:%Y%m%d_%H%M%S}.hdf5"
    return files.write_task(folder / name, datasets)


def write_camstim(session: SyntheticSession, folder: Path, p: BehaviourPlan) -> Path:
    """A camstim-like behaviour pickle of the same task (a list of per-trial dicts)."""
    task, trials = session.task, session.task.trials
    dx = np.r_[0.0, task.running_speed[1:] * p.intervals / (2 * np.pi * CAMSTIM_RADIUS_CM) * 360]
    volume = np.where(np.isnan(trials.reward_time), 0.0, trials.reward_volume)
    reward_frames = np.full(len(trials), -1)
    rewarded = ~np.isnan(trials.reward_time)
    reward_frames[rewarded] = _shown(p.master_frames, trials.reward_time[rewarded])
    log = [
        _camstim_trial(i, trials, p, reward_frames, volume, np.cumsum(rewarded), np.cumsum(volume))
        for i in range(len(trials))
    ]
    local = _local(session).replace(tzinfo=None)
    data = {
        "start_time": local,
        "rig_id": session.rig,
        "comp_id": "synthetic",
        "items": {
            "behavior": {
                "intervalsms": p.intervals * 1000.0,
                "trial_log": log,
                "lick_sensors": [{"lick_events": p.lick_frames}],
                "encoders": [{"dx": dx, "vsig": np.zeros_like(dx), "vin": np.zeros_like(dx)}],
                "rewards": [{"reward_count": int(rewarded.sum())}],
                "params": {"mouse_id": session.subject.subject_id, "stage": session.session_type},
                "stimuli": {},
            }
        },
    }
    return files.write_pickle(folder / f"{session.session_id}.behavior.pkl", data)


def _camstim_trial(i, trials, p, reward_frames, volume, cum_rewards, cum_volume) -> dict:
    """One `trial_log` entry: events, licks, rewards, stimulus change, params."""

    def ev(name: str, frame: float) -> list:
        return [name, "", float(p.master_frames[int(frame)]), int(frame)]

    start, stop = int(p.start_frames[i]), int(p.stop_frames[i])
    events = [ev("trial_start", start)]
    changed = not np.isnan(p.change_frames[i])
    if changed:
        events.append(ev("stimulus_changed", p.change_frames[i]))
    outcome = {
        "hit": trials.hit[i],
        "miss": trials.miss[i],
        "false_alarm": trials.false_alarm[i],
        "rejection": trials.correct_reject[i],
        "abort": trials.aborted[i],
        "auto_reward": trials.auto_rewarded[i],
    }
    for name, happened in outcome.items():
        if happened:
            frame = p.response_frames[i] if name in ("hit", "false_alarm") else start
            events.append(ev(name, frame))
    events.append(ev("trial_end", stop))
    lick_t = trials.licks_of(i)
    lick_f = _shown(p.master_frames, lick_t)
    change = []
    if changed:
        before = ("im", str(trials.initial_image_name[i]))
        after = ("im", str(trials.change_image_name[i]))
        change = [(before, after, float(trials.change_time[i]), int(p.change_frames[i]))]
    rewards = []
    if reward_frames[i] >= 0:
        rf = int(reward_frames[i])
        rewards = [(float(volume[i]), float(p.master_frames[rf]), rf)]
    return {
        "index": i,
        "events": events,
        "licks": [(float(t), int(f)) for t, f in zip(lick_t, lick_f, strict=True)],
        "rewards": rewards,
        "stimulus_changes": change,
        "trial_params": {
            "auto_reward": bool(trials.auto_rewarded[i]),
            "catch": bool(trials.catch[i]),
        },
        "success": bool(trials.hit[i]),
        "cumulative_rewards": int(cum_rewards[i]),
        "cumulative_volume": float(cum_volume[i]),
    }


def _exact_frames(frames: np.ndarray, times: np.ndarray, what: str) -> np.ndarray:
    """Indices of times that are frame times (a ValueError otherwise)."""
    i = np.searchsorted(frames, times)
    if np.any(i >= len(frames)) or np.any(frames[np.minimum(i, len(frames) - 1)] != times):
        msg = f"some {what} times are not frame times"
        raise ValueError(msg)
    return i.astype(np.int64)


def _shown(frames: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The frame on screen at each time (the last frame flipped at or before it)."""
    return np.maximum(np.searchsorted(frames, times, side="right") - 1, 0).astype(np.int64)


def _local(session: SyntheticSession) -> dt.datetime:
    return session.session_start_time.astimezone(LOCAL_TZ)
