"""Behaviour series and optotagging of a synthetic session: position, eye tracking, opto pulses.

Drawn from the session's seed with a generator of their own (the session's other arrays do not
change), vectorised:

- **position**: x, y (cm) of the animal at 30 Hz, a smooth random walk, regularly sampled
  (`starting_time` + `rate`): `/acquisition/Position/position` (SpatialSeries);
- **eye tracking** at ~30 Hz with camera jitter (explicit timestamps shared by the series):
  pupil, eye and corneal-reflection centres (x, y pixels) in `/acquisition/EyeTracking`
  (SpatialSeries), pupil area (pixels²) and `likely_blink` (bool) in
  `/acquisition/PupilTracking`;
- **optotagging**: the last 5 % of the session, laser pulses (`condition`, `level` V,
  `duration` s) as Allen's `/processing/optotagging/optogenetic_stimulation` table, and the
  stimulation site in `/general/optogenetics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ingest.synth.model import SyntheticSession

POSITION_RATE_HZ = 30.0
EYE_RATE_HZ = 30.0
EYE_SERIES = ("corneal_reflection_tracking", "eye_tracking", "pupil_tracking")
OPTO_CONDITIONS = ("a single square pulse", "half-period of a cosine wave")
OPTO_LEVELS = (0.5, 1.0, 1.7)
OPTO_SITE = {
    "name": "VISp",
    "description": "fiber above primary visual cortex (synthetic)",
    "excitation_lambda": 470.0,
    "location": "VISp",
    "device": "laser",
}


@dataclass(frozen=True, eq=False)
class Tracking:
    """The behaviour series and opto pulses of one session (times in master-clock seconds)."""

    position_start: float
    position: np.ndarray  # (n, 2) cm
    eye_times: np.ndarray
    eye: dict[str, np.ndarray]  # series name -> (n, 2) pixels
    pupil_area: np.ndarray
    likely_blink: np.ndarray  # bool
    opto_start: np.ndarray
    opto_stop: np.ndarray
    opto_condition: np.ndarray  # str
    opto_level: np.ndarray


def make_tracking(session: SyntheticSession) -> Tracking:
    """The session's position, eye tracking and optotagging (same seed, same arrays)."""
    rng = np.random.default_rng([session.seed, 4242])
    duration = session.duration_s
    n_pos = int(duration * POSITION_RATE_HZ) - 1
    steps = rng.normal(0.0, 0.05, (n_pos, 2))
    position = np.cumsum(steps, axis=0) + np.array([10.0, 5.0])
    n_eye = int(duration * EYE_RATE_HZ) - 2
    eye_times = (np.arange(n_eye) + 0.5) / EYE_RATE_HZ + rng.uniform(-2e-3, 2e-3, n_eye)
    centres = {
        name: np.cumsum(rng.normal(0.0, 0.2, (n_eye, 2)), axis=0) + 200.0 + 20.0 * k
        for k, name in enumerate(EYE_SERIES)
    }
    area = np.abs(1500.0 + np.cumsum(rng.normal(0.0, 5.0, n_eye)))
    blink = rng.random(n_eye) < 0.01
    area[blink] = np.nan
    n_opto = max(6, int(duration / 60))
    first = 0.95 * duration
    opto_start = np.round(first + np.arange(n_opto) * (0.04 * duration / n_opto), 5)
    condition = np.array(OPTO_CONDITIONS, dtype=object)[np.arange(n_opto) % 2]
    # pulses never overlap (spacing >= 0.4 s): Allen's are seconds apart
    duration_s = np.where(np.arange(n_opto) % 2 == 0, 0.01, 0.2)
    return Tracking(
        position_start=0.5 / POSITION_RATE_HZ,
        position=position,
        eye_times=eye_times,
        eye=centres,
        pupil_area=area,
        likely_blink=blink,
        opto_start=opto_start,
        opto_stop=np.round(opto_start + duration_s, 5),
        opto_condition=condition.astype(str),
        opto_level=np.array(OPTO_LEVELS)[np.arange(n_opto) % 3],
    )


def add_tracking(nwbfile, session: SyntheticSession) -> None:
    """Write the session's tracking and optotagging into `nwbfile` (pynwb, core types only)."""
    from hdmf.common import ElementIdentifiers, VectorData
    from pynwb import TimeSeries
    from pynwb.behavior import EyeTracking, Position, PupilTracking, SpatialSeries
    from pynwb.epoch import TimeIntervals

    t = make_tracking(session)
    position = Position(name="Position")
    position.add_spatial_series(
        SpatialSeries(
            name="position",
            data=t.position,
            starting_time=t.position_start,
            rate=POSITION_RATE_HZ,
            unit="cm",
            reference_frame="centre of the arena, x to the right, y forward",
            description="position of the animal (synthetic random walk)",
        )
    )
    nwbfile.add_acquisition(position)
    eye = EyeTracking(name="EyeTracking")
    first = None
    for name in EYE_SERIES:
        series = SpatialSeries(
            name=name,
            data=t.eye[name],
            timestamps=t.eye_times if first is None else first,
            unit="pixels",
            reference_frame="eye camera image, origin top left",
            description=f"{name.replace('_', ' ')}: centre of the fitted ellipse",
        )
        first = first or series
        eye.add_spatial_series(series)
    nwbfile.add_acquisition(eye)
    pupil = PupilTracking(name="PupilTracking")
    pupil.add_timeseries(
        TimeSeries(
            name="pupil_area",
            data=t.pupil_area,
            timestamps=first,
            unit="pixels^2",
            description="area of the pupil ellipse; NaN during likely blinks",
        )
    )
    pupil.add_timeseries(
        TimeSeries(
            name="likely_blink",
            data=t.likely_blink,
            timestamps=first,
            unit="bool",
            description="whether the frame is likely a blink",
        )
    )
    nwbfile.add_acquisition(pupil)
    laser = nwbfile.create_device(name=OPTO_SITE["device"], description="470 nm laser")
    nwbfile.create_ogen_site(
        name=OPTO_SITE["name"],
        device=laser,
        description=OPTO_SITE["description"],
        excitation_lambda=OPTO_SITE["excitation_lambda"],
        location=OPTO_SITE["location"],
    )
    n = len(t.opto_start)
    columns = [
        VectorData(name="start_time", description="pulse start (s)", data=t.opto_start),
        VectorData(name="stop_time", description="pulse end (s)", data=t.opto_stop),
        VectorData(name="condition", description="pulse shape", data=t.opto_condition.tolist()),
        VectorData(name="level", description="laser power level (V)", data=t.opto_level),
        VectorData(
            name="duration", description="pulse length (s)", data=t.opto_stop - t.opto_start
        ),
    ]
    module = nwbfile.create_processing_module("optotagging", "optogenetic tagging of units")
    module.add(
        TimeIntervals(
            name="optogenetic_stimulation",
            description="laser pulses at the end of the session",
            id=ElementIdentifiers(name="id", data=np.arange(n)),
            columns=columns,
        )
    )
