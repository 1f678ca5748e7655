"""The generative model: `generate_session` draws a `SyntheticSession` holding its ground truth.

A synthetic session imitates an Allen Visual Behavior Neuropixels (VBN) recording: Neuropixels
probes through visual cortex, hippocampus and thalamus/midbrain, sorted units with Allen quality
metrics, Poisson spike trains with image-change, flash and lick responses, and the
change-detection task (frames, flashes, trials, licks, rewards, running). Everything is in
memory, on the master clock in seconds, and independent of any file format: `nwb.py` writes it as
NWB, a rig writer can write the same session as raw rig files.

Edge cases are there on purpose (see `EdgeCases`): units without spikes, a spike at exactly
t = 0.0 and one on the last sample before the session end, a 'good' unit with NaN metrics,
catch and aborted trials whose change_time is NaN, trials without licks (empty ragged rows),
licks on the first and the last display frame, omitted flashes, one invalid-times interval.

Same `session_id`, `seed` and size give identical arrays; generation is numpy-vectorised (no
Python loop over units or spikes), so the realistic size (~50 M spikes) takes seconds.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from ingest.synth._anatomy import Channels, Probes, make_channels, make_probes
from ingest.synth._spikes import EventResponse, Spikes, generate_spikes
from ingest.synth._task import (
    IMAGE_SETS,
    Intervals,
    Task,
    make_task,
    on_sync_grid,
)
from ingest.synth._units import (
    CHANGE_WINDOW_S,
    FLASH_WINDOW_S,
    LICK_WINDOW_S,
    Units,
    make_units,
    with_spike_metrics,
)
from schemas.ids import validate_session_id

SizeName = Literal["tiny", "small", "realistic"]

#: Genotypes of the VBN release (wild type and two Cre lines crossed with Ai32).
GENOTYPES: tuple[str, ...] = (
    "wt/wt",
    "Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
    "Vip-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
)
#: The rigs' local time zone (Pacific daylight time), as a fixed offset.
LOCAL_TZ = dt.timezone(dt.timedelta(hours=-7))


@dataclass(frozen=True)
class SizeSpec:
    """How big a synthetic session is.

    `mean_rate_hz` is the mean baseline firing rate over units (log-normal across units);
    event-locked responses add a few percent of spikes on top.
    """

    n_probes: int
    units_per_probe: int
    channels_per_probe: int
    duration_s: float
    mean_rate_hz: float
    n_trials: int

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.n_probes <= 26:
            problems.append(f"n_probes={self.n_probes} (1..26)")
        if self.units_per_probe < 3:
            problems.append(f"units_per_probe={self.units_per_probe} (>= 3)")
        if not 8 <= self.channels_per_probe <= 384:
            problems.append(f"channels_per_probe={self.channels_per_probe} (8..384)")
        if not self.duration_s >= 20.0:
            problems.append(f"duration_s={self.duration_s} (>= 20)")
        if not self.mean_rate_hz > 0.0:
            problems.append(f"mean_rate_hz={self.mean_rate_hz} (> 0)")
        if self.n_trials < 4:
            problems.append(f"n_trials={self.n_trials} (>= 4)")
        if problems:
            msg = "invalid SizeSpec: " + ", ".join(problems)
            raise ValueError(msg)


#: Presets: tiny for tests, small for quick benchmarks, realistic = one VBN session.
SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec(2, 10, 32, 60.0, 12.0, 20),
    "small": SizeSpec(6, 50, 384, 600.0, 6.0, 80),
    "realistic": SizeSpec(6, 333, 384, 3600.0, 6.5, 450),
}


@dataclass(frozen=True)
class SubjectInfo:
    """The mouse: id, species, sex, genotype, strain and date of birth (tz-aware)."""

    subject_id: str
    sex: str
    genotype: str
    date_of_birth: dt.datetime
    species: str = "Mus musculus"
    strain: str = "C57BL/6J"

    def age_days(self, at: dt.datetime) -> int:
        """Whole days from birth to `at` (calendar days in the local time zone)."""
        return (
            at.astimezone(LOCAL_TZ).date() - self.date_of_birth.astimezone(LOCAL_TZ).date()
        ).days

    def age(self, at: dt.datetime) -> str:
        """Age at `at` as an ISO-8601 duration, e.g. 'P158D'."""
        return f"P{self.age_days(at)}D"


def random_subject(rng: np.random.Generator, session_start_time: dt.datetime) -> SubjectInfo:
    """A VBN-like mouse, 90-260 days old at `session_start_time`."""
    days = int(rng.integers(90, 261))
    birth_day = session_start_time.astimezone(LOCAL_TZ).date() - dt.timedelta(days=days)
    return SubjectInfo(
        subject_id=str(int(rng.integers(500_000, 600_000))),
        sex=str(rng.choice(["M", "F"])),
        genotype=str(rng.choice(GENOTYPES)),
        date_of_birth=dt.datetime.combine(birth_day, dt.time(0, 0), tzinfo=LOCAL_TZ),
    )


@dataclass(frozen=True)
class EdgeCases:
    """Where the deliberate edge cases of a session are (ids and times)."""

    zero_spike_units: tuple[int, ...]  # unit ids without a single spike
    spike_at_start_unit: int  # unit id with a spike at exactly t = 0.0
    spike_at_end_unit: int  # unit id with a spike on the last sample before duration_s
    nan_metric_unit: int  # 'good' unit with spikes whose isi_violations/amplitude_cutoff are NaN
    nan_change_trials: tuple[int, ...]  # trial indices whose change_time is NaN
    lickless_trials: tuple[int, ...]  # trial indices with an empty lick_times list
    edge_licks: tuple[float, float]  # licks on the first and on the last display frame


@dataclass(frozen=True, eq=False)
class SyntheticSession:
    """One synthetic session and its ground truth, all times in seconds on the master clock.

    The session spans [0, duration_s): spikes lie in it, behaviour lies in [2 %, 98 %] of it.
    `units` rows, `spikes` (flat, unit after unit) and the NWB units table share one order in
    which unit ids increase. `channels` rows are the NWB electrodes rows.
    """

    session_id: str
    seed: int
    size: SizeSpec
    session_start_time: dt.datetime
    session_type: str
    session_description: str
    rig: str
    institution: str
    lab: str
    experimenter: tuple[str, ...]
    subject: SubjectInfo
    image_set: str
    probes: Probes
    channels: Channels
    units: Units
    spikes: Spikes
    task: Task
    invalid_times: Intervals
    edge_cases: EdgeCases

    @property
    def duration_s(self) -> float:
        """Length of the recording; firing_rate = spike_count / duration_s."""
        return self.size.duration_s

    def unit_probe_names(self) -> np.ndarray:
        """The probe name of every unit (Units order)."""
        return self.probes.name[self.units.probe_index]

    def unit_rows_of_probe(self, probe: str) -> np.ndarray:
        """Rows (Units order) of the units recorded on `probe`."""
        p = int(np.flatnonzero(self.probes.name == probe)[0])
        return np.flatnonzero(self.units.probe_index == p)

    def summary(self) -> dict[str, float | int]:
        """Counts and exact sums (math.fsum) for quick comparisons with decoded tables."""
        return dict(self._summary)

    @cached_property
    def _summary(self) -> dict[str, float | int]:
        # Computed once: fsum over ~50 M spike times takes seconds at the realistic size.
        sp, task, trials = self.spikes, self.task, self.task.trials
        counts = sp.counts
        return {
            "duration_s": self.duration_s,
            "n_probes": len(self.probes),
            "n_channels": len(self.channels),
            "n_units": len(self.units),
            "n_units_without_spikes": int(np.sum(counts == 0)),
            "n_spikes": len(sp.times),
            "spike_time_sum": math.fsum(sp.times),
            "spike_amplitude_sum": math.fsum(sp.amplitudes),
            "first_spike_time": float(sp.times.min()) if len(sp.times) else math.nan,
            "last_spike_time": float(sp.times.max()) if len(sp.times) else math.nan,
            "n_trials": len(trials),
            "n_trials_nan_change_time": int(np.isnan(trials.change_time).sum()),
            "n_trial_licks": len(trials.lick_times),
            "n_licks": len(task.lick_times),
            "lick_time_sum": math.fsum(task.lick_times),
            "n_rewards": len(task.reward_times),
            "reward_time_sum": math.fsum(task.reward_times),
            "n_running": len(task.running_times),
            "running_speed_sum": math.fsum(task.running_speed),
            "n_frames": len(task.frame_times),
            "n_presentations": len(task.presentations),
            "n_intervals": len(task.epochs) + len(self.invalid_times) + _n_opto(self),
            "n_stimulus_presentations": len(task.presentations),
        }


def generate_session(
    session_id: str,
    *,
    seed: int,
    size: SizeName | SizeSpec = "tiny",
    subject: SubjectInfo | None = None,
    session_start_time: dt.datetime | None = None,
    image_set: Literal["G", "H"] | None = None,
) -> SyntheticSession:
    """Draw one synthetic VBN-like session with its ground truth.

    Parameters
    ----------
    session_id
        The session's id (validated like every session id of the lake).
    seed
        Seed of the random generator: the same arguments give identical arrays.
    size
        A preset name ("tiny", "small", "realistic") or a `SizeSpec`.
    subject, session_start_time, image_set
        Fix these instead of drawing them (a corpus gives one mouse several sessions).

    Examples
    --------
    >>> s = generate_session("1000000001", seed=1)
    >>> s.summary()["n_units"] == len(s.units)
    True
    """
    validate_session_id(session_id)
    spec = _size_spec(size)
    rng = np.random.default_rng(seed)
    start = session_start_time or _random_start(rng)
    if start.tzinfo is None:
        msg = f"session_start_time {start.isoformat()} has no time zone; pass a tz-aware datetime"
        raise ValueError(msg)
    subject = subject or random_subject(rng, start)
    image_set = image_set or str(rng.choice(sorted(IMAGE_SETS)))
    volume_ul = int(rng.choice([3, 5]))

    probes = make_probes(rng, spec.n_probes)
    channels = make_channels(rng, probes, spec.channels_per_probe)
    units = make_units(rng, channels, spec.n_probes, spec.units_per_probe, spec.mean_rate_hz)
    task = make_task(
        rng,
        duration_s=spec.duration_s,
        n_trials=spec.n_trials,
        images=IMAGE_SETS[image_set],
        reward_volume_ml=volume_ul / 1000.0,
    )
    spikes, presence = _spikes(rng, spec, probes, units, task)
    units = with_spike_metrics(units, spikes.counts, presence, spec.duration_s)
    return SyntheticSession(
        session_id=session_id,
        seed=seed,
        size=spec,
        session_start_time=start,
        session_type=f"EPHYS_1_images_{image_set}_{volume_ul}uL_reward",
        session_description=(
            "Synthetic Visual Behavior Neuropixels session (change detection with natural "
            f"images, set {image_set}) generated by nplake ingest.synth, seed {seed}"
        ),
        rig="NP.1",
        institution="Synthetic Institute for Brain Science",
        lab="nplake synthetic lab",
        experimenter=("Doe, Jane",),
        subject=subject,
        image_set=image_set,
        probes=probes,
        channels=channels,
        units=units,
        spikes=spikes,
        task=task,
        invalid_times=_invalid_times(rng, spec.duration_s, probes),
        edge_cases=_edge_cases(units, spikes, task),
    )


def _size_spec(size: SizeName | SizeSpec) -> SizeSpec:
    if isinstance(size, SizeSpec):
        return size
    if size not in SIZES:
        msg = f"unknown size {size!r}; use one of {sorted(SIZES)} or a SizeSpec"
        raise ValueError(msg)
    return SIZES[size]


def _random_start(rng: np.random.Generator) -> dt.datetime:
    """An afternoon in summer 2020, local time, millisecond precision (like Allen's)."""
    day = dt.date(2020, 6, 1) + dt.timedelta(days=int(rng.integers(0, 120)))
    ms = int(rng.integers(13 * 3_600_000, 16 * 3_600_000))
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=LOCAL_TZ) + dt.timedelta(milliseconds=ms)


def _spikes(
    rng: np.random.Generator, spec: SizeSpec, probes: Probes, units: Units, task: Task
) -> tuple[Spikes, np.ndarray]:
    """Spike trains of all units: baseline, change, flash and lick responses, edge spikes."""
    n = len(units)
    flashes = task.presentations
    shown = flashes.start_time[~flashes.omitted]
    responses = (
        EventResponse(
            task.change_times, units.change_gain, units.change_latency, np.full(n, CHANGE_WINDOW_S)
        ),
        EventResponse(shown, units.flash_gain, units.flash_latency, np.full(n, FLASH_WINDOW_S)),
        EventResponse(
            task.lick_times,
            units.lick_gain,
            np.full(n, LICK_WINDOW_S[0]),
            np.full(n, LICK_WINDOW_S[1] - LICK_WINDOW_S[0]),
        ),
    )
    return generate_spikes(
        rng,
        unit_probe=units.probe_index,
        baseline_rate=units.baseline_rate,
        amplitude_v=units.amplitude_v,
        sampling_rate=probes.sampling_rate,
        duration_s=spec.duration_s,
        responses=responses,
        forced=((0, 0), (n - 1, -1)),
    )


def _invalid_times(rng: np.random.Generator, duration_s: float, probes: Probes) -> Intervals:
    """One invalid interval on one probe, in the middle third of the session."""
    p = int(rng.integers(0, len(probes)))
    start = on_sync_grid(rng.uniform(duration_s / 3, 2 * duration_s / 3))
    stop = on_sync_grid(start + max(1.0, 0.002 * duration_s))
    tags = ("EcephysProbe", str(int(probes.probe_id[p])), str(probes.name[p]))
    return Intervals(start_time=np.array([start]), stop_time=np.array([stop]), tags=(tags,))


def _edge_cases(units: Units, spikes: Spikes, task: Task) -> EdgeCases:
    counts = spikes.counts
    trials = task.trials
    lick_counts = np.diff(trials.lick_ends, prepend=0)
    m = units.metrics
    nan_metric = np.flatnonzero(
        np.isnan(m["isi_violations"])
        & np.isnan(m["amplitude_cutoff"])
        & (units.quality == "good")
        & (counts > 0)
    )
    return EdgeCases(
        zero_spike_units=tuple(int(u) for u in units.unit_id[counts == 0]),
        spike_at_start_unit=int(units.unit_id[0]),
        spike_at_end_unit=int(units.unit_id[-1]),
        nan_metric_unit=int(units.unit_id[nan_metric[0]]),
        nan_change_trials=tuple(int(i) for i in np.flatnonzero(np.isnan(trials.change_time))),
        lickless_trials=tuple(int(i) for i in np.flatnonzero(lick_counts == 0)),
        edge_licks=(float(task.frame_times[0]), float(task.frame_times[-1])),
    )


def _n_opto(session: SyntheticSession) -> int:
    """Optotagging pulses of the session (tracking.py)."""
    from ingest.synth.tracking import make_tracking

    return len(make_tracking(session).opto_start)
