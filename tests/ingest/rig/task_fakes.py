"""Synthetic TaskControl (Dynamic Routing) HDF5 files with known ground truth.

`write_task_file` writes the datasets FORMATS.md 2.4 lists, laid out as real files are: frame
indices for every event, trial arrays one entry longer than `trialEndFrame` (the unfinished last
trial), text as bytes, a digital encoder with cumulative counts and a few failed (NaN) reads.
The returned `TaskTruth` holds what a correct decoder must produce from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

FRAME_RATE = 60
COUNTS_PER_REV = 8192
WHEEL_RADIUS_CM = 4.69
#: Running speed profile: (start time s, speed cm/s); each segment lasts until the next.
SPEED_PROFILE = ((0.0, 0.0), (30.0, 25.0), (70.0, -10.0))


@dataclass
class TaskTruth:
    """Ground truth of one synthetic TaskControl file (frames are indices into frame times)."""

    path: Path
    frame_intervals: np.ndarray
    own_times: np.ndarray
    sync_times: np.ndarray
    n_trials: int
    start_frames: np.ndarray
    stim_start_frames: np.ndarray
    end_frames: np.ndarray
    stimulus: list[str]
    block: np.ndarray
    block_stim_rewarded: list[str]
    response: np.ndarray
    response_frames: np.ndarray  # float, NaN when no response
    rewarded: np.ndarray
    auto_rewarded: np.ndarray
    quiescent_frames: int
    response_window: tuple[int, int]
    opto_onset_frames: np.ndarray  # relative to stim start, NaN when no opto
    opto_dur: np.ndarray
    lick_frames: np.ndarray  # as written, with duplicates
    true_lick_frames: np.ndarray  # what de-duplication must keep
    reward_frames: np.ndarray
    manual_reward_frames: np.ndarray
    counts: np.ndarray  # as written, NaN for failed reads
    missing_reads: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def times(self, frame_times: np.ndarray | None = None) -> np.ndarray:
        """Frame times the decoder should use: the sync times given, else the file's own."""
        return self.own_times if frame_times is None else frame_times

    def speed_at(self, t: np.ndarray) -> np.ndarray:
        """The true running speed (cm/s) at times `t` on the file's own clock."""
        starts = np.array([s for s, _ in SPEED_PROFILE])
        speeds = np.array([v for _, v in SPEED_PROFILE])
        return speeds[np.searchsorted(starts, t, side="right") - 1]


def write_task_file(
    path: Path,
    *,
    seed: int = 0,
    n_frames: int = 7201,
    omit: tuple[str, ...] = (),
    text_as_bytes: bool = True,
) -> TaskTruth:
    """Write a synthetic TaskControl file at `path`; `omit` drops datasets by name."""
    rng = np.random.default_rng(seed)
    intervals = 1.0 / FRAME_RATE + rng.uniform(-0.001, 0.001, n_frames - 1)
    intervals[1234] = 2.0 / FRAME_RATE  # one dropped frame
    own = np.concatenate([[0.0], np.cumsum(intervals)])
    sync = 12.345 + own * (1.0 + 2e-5) + rng.uniform(-2e-4, 2e-4, n_frames)

    n = 10
    start = 300 + 600 * np.arange(n + 1)  # + the unfinished trial
    stim_start = start + 120
    end = start[:n] + 420
    stimulus = ["vis1", "sound1", "catch", "vis2", "vis1", "sound1", "vis1", "sound2", "catch"]
    stimulus = [*stimulus, "sound1", "vis1"]
    block = np.array([1] * 5 + [2] * 6)
    rewarded_stim = ["vis1", "sound1"]
    response = np.array([1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0], dtype=bool)
    response_frames = np.where(response, stim_start + 20, np.nan)
    auto = np.zeros(n + 1, dtype=bool)
    auto[[0, 5]] = True
    is_go = np.array([s == rewarded_stim[b - 1] for s, b in zip(stimulus, block, strict=True)])
    rewarded = (is_go & response) | auto
    opto = np.full(n + 1, np.nan)
    opto[[3, 7]] = [0.0, 5.0]
    opto_dur = np.where(np.isnan(opto), np.nan, 1.0)

    reward_frames = np.sort(
        np.concatenate(
            [stim_start[:n][auto[:n]] + 6, response_frames[:n][rewarded[:n] & ~auto[:n]]]
        )
    ).astype(np.int64)
    manual_in_rewards = np.array([5000])  # inside no trial (between trials 7 and 8)
    manual_only = np.array([6950])  # an older script: manual reward not in rewardFrames
    all_rewards = np.sort(np.concatenate([reward_frames, manual_in_rewards]))

    true_licks = np.array([100, 450, 470, 1200, 1500, 2000, 2600, 3000, 4100, 5500, 7000])
    dups = np.concatenate([true_licks[[1, 3, 5]] + 1, true_licks[[1, 5]] + 2, [7001]])
    lick_frames = np.sort(np.concatenate([true_licks, dups]))

    counts, missing = _encoder_counts(own, rng)
    truth = TaskTruth(
        path=Path(path),
        frame_intervals=intervals,
        own_times=own,
        sync_times=sync,
        n_trials=n,
        start_frames=start[:n],
        stim_start_frames=stim_start[:n],
        end_frames=end,
        stimulus=stimulus[:n],
        block=block[:n],
        block_stim_rewarded=rewarded_stim,
        response=response[:n],
        response_frames=response_frames[:n],
        rewarded=rewarded[:n],
        auto_rewarded=auto[:n],
        quiescent_frames=90,
        response_window=(6, 60),
        opto_onset_frames=opto[:n],
        opto_dur=opto_dur[:n],
        lick_frames=lick_frames,
        true_lick_frames=true_licks,
        reward_frames=all_rewards,
        manual_reward_frames=np.concatenate([manual_in_rewards, manual_only]),
        counts=counts,
        missing_reads=missing,
        extras={
            "trialRepeat": np.array([0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0], dtype=bool),
            "trialVisStimContrast": np.linspace(0.0, 1.0, n + 1),
            "trialGalvoVoltage": np.arange(2 * (n + 1), dtype=np.float64).reshape(n + 1, 2),
        },
    )
    text = (lambda s: s.encode()) if text_as_bytes else str
    datasets = {
        "frameIntervals": intervals,
        "frameRate": FRAME_RATE,
        "startTime": text("20240301_120000"),
        "rigName": text("NP3"),
        "taskVersion": text("stage 5 ori AMN moving"),
        "trialStartFrame": start,
        "trialStimStartFrame": stim_start,
        "trialEndFrame": end,
        "trialStim": np.array([text(s) for s in stimulus], dtype=_text_dtype(text_as_bytes)),
        "trialBlock": block,
        "blockStimRewarded": np.array(
            [text(s) for s in rewarded_stim], dtype=_text_dtype(text_as_bytes)
        ),
        "trialResponse": response,
        "trialResponseFrame": response_frames,
        "trialRewarded": rewarded,
        "trialAutoRewarded": auto,
        "quiescentFrames": 90,
        "responseWindow": np.array([6, 60]),
        "trialOptoOnsetFrame": opto,
        "trialOptoDur": opto_dur,
        "trialsPerBlock": 5,  # a scalar named trial*: not a per-trial column
        "lickFrames": lick_frames,
        "rewardFrames": all_rewards,
        "manualRewardFrames": truth.manual_reward_frames,
        "rotaryEncoder": text("digital"),
        "rotaryEncoderCount": counts,
        "rotaryEncoderCountsPerRev": COUNTS_PER_REV,
        "wheelRadius": WHEEL_RADIUS_CM,
        **truth.extras,
    }
    with h5py.File(path, "w") as h5:
        for name, value in datasets.items():
            if name not in omit:
                h5.create_dataset(name, data=value)
        h5.create_group("optoParams")  # groups are ignored
    return truth


def _encoder_counts(times: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative counts of the piecewise-constant speed profile, with three failed reads."""
    starts = np.array([s for s, _ in SPEED_PROFILE])
    speeds = np.array([v for _, v in SPEED_PROFILE])
    seg_len = np.diff(np.append(starts, np.inf))
    i = np.searchsorted(starts, times, side="right") - 1
    before = np.concatenate([[0.0], np.cumsum(speeds[:-1] * seg_len[:-1])])
    distance_cm = before[i] + speeds[i] * (times - starts[i])
    counts = distance_cm / (2 * np.pi * WHEEL_RADIUS_CM) * COUNTS_PER_REV + 1000.0
    missing = np.sort(rng.choice(np.arange(2500, 3500), size=3, replace=False))
    counts[missing] = np.nan
    return counts, missing


def _text_dtype(as_bytes: bool):
    return "S16" if as_bytes else h5py.string_dtype()
