"""The change-detection task of a synthetic session: frames, flashes, trials, licks, running.

Timeline on the master clock (seconds): the stimulus display starts at 2 % of the session and
stops at 98 %; each frame is 1/60 s with tiny jitter. A short spontaneous epoch (gray screen)
precedes and follows the change-detection epoch. During the task an image flashes every 45
frames (750 ms: 250 ms image + 500 ms gray). Trials are consecutive runs of flashes; in a trial
the image changes at a flash (go), or would have (catch: no change), unless the mouse licked
before that flash (aborted). The response window is [0.15, 0.75) s after the (sham) change.

Every behavioural time (frames, licks, rewards and everything derived from them) lies on the
100 kHz sync grid: `time = count / 100_000.0` with an integer count, the value a sync decoder
computes for the same edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SYNC_RATE_HZ = 100_000.0
FRAME_RATE_HZ = 60.0
FRAMES_PER_FLASH = 45  # 750 ms
FRAMES_IMAGE_ON = 15  # 250 ms
RESPONSE_WINDOW_S = (0.15, 0.75)
#: Allen image sets of the VBN release (8 natural images each).
IMAGE_SETS: dict[str, tuple[str, ...]] = {
    "G": ("im012_r", "im036_r", "im044_r", "im047_r", "im078_r", "im083_r", "im111_r", "im115_r"),
    "H": ("im005_r", "im024_r", "im034_r", "im083_r", "im087_r", "im104_r", "im111_r", "im114_r"),
}
OMITTED = "omitted"


@dataclass(frozen=True, eq=False)
class Trials:
    """One entry per trial (VBN change detection); ragged `lick_times` as flat values + ends."""

    start_time: np.ndarray
    stop_time: np.ndarray
    initial_image_name: np.ndarray  # str
    change_image_name: np.ndarray  # str (= initial image when nothing changed)
    is_change: np.ndarray  # bool
    change_time: np.ndarray  # float64, NaN for catch and aborted trials
    go: np.ndarray
    catch: np.ndarray
    hit: np.ndarray
    miss: np.ndarray
    false_alarm: np.ndarray
    correct_reject: np.ndarray
    aborted: np.ndarray
    auto_rewarded: np.ndarray
    response_time: np.ndarray  # first lick in the response window, NaN when none
    reward_time: np.ndarray  # NaN when unrewarded
    reward_volume: np.ndarray  # mL, 0 when unrewarded
    trial_length: np.ndarray  # stop_time - start_time
    lick_times: np.ndarray  # flat, float64
    lick_ends: np.ndarray  # int64 end offsets per trial

    def __len__(self) -> int:
        """Number of trials."""
        return len(self.start_time)

    def licks_of(self, i: int) -> np.ndarray:
        """Lick times of trial `i`."""
        start = int(self.lick_ends[i - 1]) if i > 0 else 0
        return self.lick_times[start : int(self.lick_ends[i])]


@dataclass(frozen=True, eq=False)
class Presentations:
    """One entry per flash of the change-detection epoch (an Allen `*_presentations` table)."""

    start_time: np.ndarray
    stop_time: np.ndarray
    start_frame: np.ndarray  # int64, index into frame_times
    image_name: np.ndarray  # str, 'omitted' for an omitted flash
    is_change: np.ndarray
    flashes_since_change: np.ndarray  # int64
    omitted: np.ndarray

    def __len__(self) -> int:
        """Number of flashes."""
        return len(self.start_time)


@dataclass(frozen=True, eq=False)
class Intervals:
    """A small interval table: start/stop times and tags per row."""

    start_time: np.ndarray
    stop_time: np.ndarray
    tags: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        """Number of intervals."""
        return len(self.start_time)


@dataclass(frozen=True, eq=False)
class Task:
    """Everything behavioural in a session, on the master clock."""

    frame_times: np.ndarray  # 60 Hz display frames (vsync)
    epochs: Intervals  # tags = (epoch name,)
    presentations: Presentations
    trials: Trials
    lick_times: np.ndarray  # all licks, sorted
    lick_frames: np.ndarray  # int64, frame shown at each lick
    reward_times: np.ndarray
    reward_volume: np.ndarray  # mL
    reward_auto: np.ndarray  # bool
    running_times: np.ndarray  # = frame_times
    running_speed: np.ndarray  # cm/s

    @property
    def change_times(self) -> np.ndarray:
        """Times of every image change (go and auto-rewarded trials), sorted."""
        return self.presentations.start_time[self.presentations.is_change]


def on_sync_grid(t: np.ndarray) -> np.ndarray:
    """Times rounded to the 100 kHz sync clock: integer count / SYNC_RATE_HZ."""
    return np.round(np.asarray(t) * SYNC_RATE_HZ) / SYNC_RATE_HZ


def make_task(
    rng: np.random.Generator,
    *,
    duration_s: float,
    n_trials: int,
    images: tuple[str, ...],
    reward_volume_ml: float,
) -> Task:
    """Frames, epochs, flashes, trials with licks and rewards, and running speed."""
    frame_times = _frame_times(rng, duration_s)
    n_frames = len(frame_times)
    task_first = int(0.03 * n_frames)
    n_flashes = int(0.94 * n_frames) // FRAMES_PER_FLASH
    if n_flashes < 3 * n_trials:
        msg = (
            f"{n_trials} trials need at least {3 * n_trials} flashes of 750 ms, but a "
            f"{duration_s:g} s session has {n_flashes}: lengthen duration_s or lower n_trials"
        )
        raise ValueError(msg)
    task_last = task_first + n_flashes * FRAMES_PER_FLASH  # first frame after the task
    onset_frames = task_first + FRAMES_PER_FLASH * np.arange(n_flashes)
    epochs = Intervals(
        start_time=frame_times[[0, task_first, task_last]],
        stop_time=frame_times[[task_first, task_last, n_frames - 1]],
        tags=(("spontaneous",), ("change_detection_behavior",), ("spontaneous",)),
    )

    plan = _plan_trials(rng, n_flashes, n_trials)
    flash_t = frame_times[onset_frames]
    trial_start = flash_t[plan.first_flash]
    trial_stop = np.append(trial_start[1:], frame_times[task_last])
    sham_t = flash_t[plan.first_flash + plan.change_offset]

    presentations, initial, changed = _flashes(rng, plan, frame_times, onset_frames, images)
    licks_per_trial, outcome = _trial_licks(rng, plan, trial_start, trial_stop, sham_t)
    trials = _trials(
        plan,
        outcome,
        licks_per_trial,
        trial_start,
        trial_stop,
        sham_t,
        initial,
        changed,
        reward_volume_ml,
    )

    spont = _spontaneous_licks(rng, epochs, frame_times)
    all_licks = np.unique(np.concatenate([trials.lick_times, spont]))
    lick_frames = np.searchsorted(frame_times, all_licks, side="right") - 1
    rewarded = ~np.isnan(trials.reward_time)
    return Task(
        frame_times=frame_times,
        epochs=epochs,
        presentations=presentations,
        trials=trials,
        lick_times=all_licks,
        lick_frames=lick_frames.astype(np.int64),
        reward_times=trials.reward_time[rewarded],
        reward_volume=trials.reward_volume[rewarded],
        reward_auto=trials.auto_rewarded[rewarded],
        running_times=frame_times,
        running_speed=_running_speed(rng, frame_times),
    )


def _frame_times(rng: np.random.Generator, duration_s: float) -> np.ndarray:
    """Display frame times from 2 % to 98 % of the session, 60 Hz with ~20 µs jitter."""
    first, last = 0.02 * duration_s, 0.98 * duration_s
    n = int((last - first) * FRAME_RATE_HZ) + 1
    t = first + np.arange(n) / FRAME_RATE_HZ + rng.normal(0.0, 20e-6, n)
    return on_sync_grid(t)


@dataclass(frozen=True, eq=False)
class _Plan:
    """Trial skeleton: first flash, length in flashes, (sham) change offset and trial type."""

    first_flash: np.ndarray
    n_flashes: np.ndarray
    change_offset: np.ndarray  # flashes after the first one
    kind: np.ndarray  # 'go', 'auto', 'catch' or 'aborted'


def _plan_trials(rng: np.random.Generator, n_flashes: int, n_trials: int) -> _Plan:
    """Split the task's flashes into trials of >= 3 flashes and draw each trial's type."""
    weights = rng.gamma(4.0, 1.0, n_trials)
    lengths = 3 + rng.multinomial(n_flashes - 3 * n_trials, weights / weights.sum())
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    change_offset = 1 + (rng.random(n_trials) * (lengths - 2)).astype(np.int64)
    u = rng.random(n_trials)
    kind = np.where(u < 0.2, "aborted", np.where(u < 0.32, "catch", "go")).astype(object)
    # Every session shows each case: auto-rewarded first go trials, catch and aborted trials.
    kind[0] = "go"
    if n_trials >= 4:
        kind[1], kind[2] = "catch", "aborted"
    go_idx = np.flatnonzero(kind == "go")
    kind[go_idx[:3]] = "auto"
    return _Plan(first, lengths, change_offset, kind.astype(str))


def _flashes(
    rng: np.random.Generator,
    plan: _Plan,
    frame_times: np.ndarray,
    onset_frames: np.ndarray,
    images: tuple[str, ...],
) -> tuple[Presentations, np.ndarray, np.ndarray]:
    """Image per flash, changes, omissions; the initial and changed image per trial."""
    n_flashes = len(onset_frames)
    changes = plan.kind == "go"
    changes |= plan.kind == "auto"
    change_flash = (plan.first_flash + plan.change_offset)[changes]
    # Image index held from each change on: a random other image each time.
    steps = rng.integers(1, len(images), size=change_flash.size)
    first_image = int(rng.integers(0, len(images)))
    held = (first_image + np.concatenate([[0], np.cumsum(steps)])) % len(images)
    n_changes_before = np.searchsorted(change_flash, np.arange(n_flashes), side="right")
    image_idx = held[n_changes_before]
    is_change = np.zeros(n_flashes, dtype=bool)
    is_change[change_flash] = True

    last_change = np.where(is_change, np.arange(n_flashes), -1)
    last_change = np.maximum.accumulate(last_change)
    since = np.where(last_change >= 0, np.arange(n_flashes) - last_change, np.arange(n_flashes))

    # Omitted flashes (~5 %): never the first flash, never a (sham) change or its neighbours.
    sham_flash = plan.first_flash + plan.change_offset
    protected = np.zeros(n_flashes + 1, dtype=bool)
    protected[0] = True
    for shift in (-1, 0, 1):
        protected[np.clip(sham_flash + shift, 0, n_flashes)] = True
    omitted = (rng.random(n_flashes) < 0.05) & ~protected[:n_flashes]

    names = np.asarray(images)[image_idx].astype(object)
    names[omitted] = OMITTED
    start = frame_times[onset_frames]
    stop = frame_times[onset_frames + FRAMES_IMAGE_ON]
    trial_initial = np.asarray(images)[image_idx[plan.first_flash]]
    trial_changed = np.asarray(images)[image_idx[np.minimum(sham_flash, n_flashes - 1)]]
    presentations = Presentations(
        start_time=start,
        stop_time=stop,
        start_frame=onset_frames.astype(np.int64),
        image_name=names.astype(str),
        is_change=is_change,
        flashes_since_change=since.astype(np.int64),
        omitted=omitted,
    )
    return presentations, trial_initial, trial_changed


def _trial_licks(
    rng: np.random.Generator,
    plan: _Plan,
    start: np.ndarray,
    stop: np.ndarray,
    sham_t: np.ndarray,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Licks of every trial and its outcome ('hit', 'miss', 'fa', 'cr', 'auto', 'aborted')."""
    lo, hi = RESPONSE_WINDOW_S
    licks: list[np.ndarray] = []
    outcome = np.empty(len(start), dtype=object)
    for i, kind in enumerate(plan.kind):
        last = stop[i] - 0.02
        if kind == "aborted":
            first = rng.uniform(start[i] + 0.1, sham_t[i] - 0.05)
            t = first + np.cumsum(np.r_[0.0, rng.uniform(0.12, 0.18, rng.integers(0, 3))])
            outcome[i] = "aborted"
        elif kind == "auto":
            first = sham_t[i] + rng.uniform(0.25, 0.5)
            t = first + np.cumsum(np.r_[0.0, rng.uniform(0.12, 0.18, rng.integers(2, 8))])
            outcome[i] = "auto"
        elif kind == "go" and rng.random() < 0.75:
            first = sham_t[i] + np.clip(rng.lognormal(np.log(0.42), 0.25), lo + 0.01, hi - 0.01)
            t = first + np.cumsum(np.r_[0.0, rng.uniform(0.12, 0.18, rng.integers(3, 9))])
            outcome[i] = "hit"
        elif kind == "catch" and rng.random() < 0.25:
            first = sham_t[i] + rng.uniform(lo + 0.01, hi - 0.01)
            t = first + np.cumsum(np.r_[0.0, rng.uniform(0.12, 0.18, rng.integers(0, 3))])
            outcome[i] = "fa"
        else:
            t = np.empty(0)
            outcome[i] = "miss" if kind == "go" else "cr"
        t = on_sync_grid(t)
        licks.append(t[t < last])
    return licks, outcome


def _trials(
    plan: _Plan,
    outcome: np.ndarray,
    licks: list[np.ndarray],
    start: np.ndarray,
    stop: np.ndarray,
    sham_t: np.ndarray,
    initial: np.ndarray,
    changed: np.ndarray,
    reward_volume_ml: float,
) -> Trials:
    """The trials table from the plan, the outcomes and the licks."""
    lo, hi = RESPONSE_WINDOW_S
    kind = plan.kind
    is_change = (kind == "go") | (kind == "auto")
    first_in_window = np.array(
        [
            t[(t >= s + lo) & (t < s + hi)][0] if np.any((t >= s + lo) & (t < s + hi)) else np.nan
            for t, s in zip(licks, sham_t, strict=True)
        ]
    )
    response = np.where(kind == "aborted", np.nan, first_in_window)
    hit = outcome == "hit"
    auto = kind == "auto"
    reward_time = np.where(hit, response, np.where(auto, sham_t, np.nan))
    lengths = np.array([len(t) for t in licks], dtype=np.int64)
    return Trials(
        start_time=start,
        stop_time=stop,
        initial_image_name=initial,
        change_image_name=np.where(is_change, changed, initial),
        is_change=is_change,
        change_time=np.where(is_change, sham_t, np.nan),
        go=kind == "go",
        catch=kind == "catch",
        hit=hit,
        miss=outcome == "miss",
        false_alarm=outcome == "fa",
        correct_reject=outcome == "cr",
        aborted=kind == "aborted",
        auto_rewarded=auto,
        response_time=response,
        reward_time=reward_time,
        reward_volume=np.where(np.isnan(reward_time), 0.0, reward_volume_ml),
        trial_length=stop - start,
        lick_times=np.concatenate([np.empty(0), *licks]),
        lick_ends=np.cumsum(lengths),
    )


def _spontaneous_licks(
    rng: np.random.Generator, epochs: Intervals, frame_times: np.ndarray
) -> np.ndarray:
    """Sparse licks in the spontaneous epochs, plus one at the first and one at the last frame."""
    parts = [frame_times[[0, -1]]]
    for i in (0, 2):
        a, b = epochs.start_time[i], epochs.stop_time[i]
        n = rng.poisson(0.1 * (b - a))
        parts.append(on_sync_grid(rng.uniform(a, b, n)))
    t = np.concatenate(parts)
    return t[(t >= frame_times[0]) & (t <= frame_times[-1]) & ~_in_task(t, epochs)]


def _in_task(t: np.ndarray, epochs: Intervals) -> np.ndarray:
    return (t >= epochs.start_time[1]) & (t < epochs.stop_time[1])


def _running_speed(rng: np.random.Generator, frame_times: np.ndarray) -> np.ndarray:
    """Smooth running speed (cm/s) at every frame: slow running bouts plus small fast jitter."""
    duration = frame_times[-1] - frame_times[0]
    slow_t = frame_times[0] + np.arange(int(duration) + 2, dtype=np.float64)
    slow = _smooth(rng.normal(size=slow_t.size), sigma=6.0)
    slow /= slow.std() or 1.0
    bouts = np.interp(frame_times, slow_t, 28.0 * np.clip(slow + 0.4, 0.0, None))
    fast = _smooth(rng.normal(size=frame_times.size), sigma=6.0)
    fast /= fast.std() or 1.0
    return bouts + 1.5 * fast


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing (sigma in samples), edges reflected."""
    radius = int(4 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(x, radius, mode="reflect") if x.size > radius else np.pad(x, radius, "edge")
    return np.convolve(padded, kernel, mode="valid")
