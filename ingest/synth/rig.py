"""Write a SyntheticSession as a raw rig session folder (docs/rig.md), with the ground truth.

The session's master clock is the sync clock (0 = the sync file's first sample, 100 kHz). Each
probe has its own clock: `t_master = slope * t_probe + offset`, slope `1 + drift_ppm * 1e-6` (a
few ppm) and a negative offset (the probe started recording that long before the sync). Spike
samples are the session's spike times on the probe clock, rounded to whole samples of the
nominal 30 kHz; the truth of a spike is `slope * sample / 30 kHz + offset`, the time a perfect
alignment gives (within half a probe sample of the session's own spike time).

Barcodes (Allen geometry, random 31-bit values, every `barcode_interval_s` ± 10 ms) go on the
sync line `barcode_ephys` and on every probe's TTL line 1, each quantised to its own clock
(rounded to the nearest sample on both, so quantisation adds no bias). Display frames are
`vsync_stim` pulses falling at the session's frame times; licks are `lick_sensor` pulses rising
at the session's lick times; a photodiode, a running flag and a 30 Hz camera add traffic.

Quirks (`RigQuirks`) and what a decoder should make of them (`RigTruth.expectations`):
truncated last barcode (the sync stops inside it), a dropped barcode (missing on probe 0), a
1-sample glitch (on the sync barcode line between barcodes and inside one, and a 1-sample pulse
on probe 0's TTL line), counter rollover (`counter_bits` < 32), a probe without TTL events, no
sync file.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ingest.synth import _rig_behaviour as behaviour
from ingest.synth import _rig_files as files
from ingest.synth import _rig_probes as probes_mod
from ingest.synth._rig_probes import ProbeClock, probe_spike_samples
from ingest.synth._rig_quirks import RigQuirks
from ingest.synth.model import LOCAL_TZ

if TYPE_CHECKING:
    from ingest.synth.model import SyntheticSession

UNIT_ID_STRIDE = 100_000
#: Sync recording beyond the session's end (s), and probe recording beyond the sync's end.
SYNC_TAIL_S = 2.0
PROBE_TAIL_S = 3.0


@dataclass(frozen=True, eq=False)
class RigTruth:
    """Everything a correct rig decoder must produce from the folder, and why."""

    session: SyntheticSession
    folder: Path
    quirks: RigQuirks
    probes: tuple[ProbeClock, ...]
    sync_file: Path | None
    task_file: Path | None
    pickle_file: Path | None
    barcode_values: np.ndarray
    barcode_times: np.ndarray  # master clock starts of every barcode emitted
    sync_barcodes: np.ndarray  # values the sync file's barcode line must decode to
    sync_duration: float | None
    sync_edges: dict[str, int]  # edges per labelled line
    frame_times: np.ndarray  # times behaviour must use (master clock, or the task's own)
    lick_times: np.ndarray
    lick_source: str
    trial_frames: tuple[np.ndarray, np.ndarray]  # start, stop frame of every trial
    reward_frames: np.ndarray
    expectations: dict[str, str] = field(default_factory=dict)

    def probe(self, name: str) -> ProbeClock:
        """The probe called `name`."""
        return next(p for p in self.probes if p.name == name)

    def unit_ids(self) -> np.ndarray:
        """Rig unit ids (probe_index * 100,000 + cluster_id) in the session's unit order."""
        units = self.session.units
        return units.probe_index * UNIT_ID_STRIDE + units.cluster_id

    def expected_spikes(self) -> tuple[np.ndarray, np.ndarray]:
        """(unit_id, time) of every spike sorted by (unit_id, time): the spikes table's truth.

        Times are master-clock seconds for aligned probes and probe seconds (sample / rate) for
        probes the decoder must leave on their own clock.
        """
        ids, times = [], []
        for p in self.probes:
            samples, unit_rows = probe_spike_samples(self.session, p)
            t = samples / p.nominal_rate
            times.append(t if p.own_clock else p.slope * t + p.offset)
            ids.append(self.unit_ids()[unit_rows])
        unit, time = np.concatenate(ids), np.concatenate(times)
        order = np.lexsort((time, unit))
        return unit[order], time[order]


def write_rig_session(
    session: SyntheticSession,
    folder: str | Path,
    *,
    quirks: RigQuirks | None = None,
    drift_ppm: np.ndarray | None = None,
    start_offset_s: np.ndarray | None = None,
    barcode_interval_s: float = 30.95,
    task_file: bool = True,
    camstim: bool = False,
    session_json: bool = True,
    seed: int | None = None,
) -> RigTruth:
    """Write `session` as a raw rig folder at `folder`; return the ground truth.

    Parameters
    ----------
    session
        The synthetic session (`generate_session`).
    folder
        The session folder to create (e.g. `<root>/<subject>_<YYYY-MM-DD>`).
    quirks
        Rig quirks to write (`RigQuirks`).
    drift_ppm, start_offset_s
        Per-probe clock drift (ppm) and how long (s) each probe started before the sync;
        drawn (1-5 ppm either sign, 0.5-5 s) when not given.
    barcode_interval_s
        Time between barcodes (real rigs: ~30.95 s; tests use a few seconds for short sessions).
    task_file, camstim
        Write a TaskControl HDF5 and/or a camstim-like pickle as the behaviour file.
    session_json
        Write session.json (subject, start time with zone, probe ids).
    seed
        Seed of the rig's own draws (clocks, barcodes); default derived from the session's.

    Examples
    --------
    >>> session = generate_session("s1", seed=1)
    >>> truth = write_rig_session(session, tmp / rig_folder_name(session))  # doctest: +SKIP
    """
    quirks = quirks or RigQuirks()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(session.seed + 7919 if seed is None else seed)
    n_probes = len(session.probes)
    drift = _per_probe(drift_ppm, rng.uniform(1, 5, n_probes) * rng.choice([-1, 1], n_probes))
    offsets = -_per_probe(
        None if start_offset_s is None else np.asarray(start_offset_s, float),
        rng.uniform(0.5, 5, n_probes),
    )
    task = session.task
    behaviour_end = float(max(task.frame_times[-1], task.lick_times.max(initial=0.0)))
    values, starts = _barcodes(rng, session.duration_s, barcode_interval_s)
    sync_end = _sync_end(starts, session.duration_s, behaviour_end, quirks)
    probe_end = sync_end + PROBE_TAIL_S
    keep = starts + files.BARCODE_DURATION < probe_end - 0.05
    values, starts = values[keep], starts[keep]
    sync_values = values[starts + files.BARCODE_DURATION <= sync_end]
    prefix = f"{session.subject.subject_id}_{_local(session):%Y%m%d}"
    train = probes_mod.Train(values, starts, sync_values, probe_end)
    probes = [
        probes_mod.write_probe(
            session, folder, prefix, i, rng, (drift[i], offsets[i]), train, quirks
        )
        for i in range(n_probes)
    ]
    plan = behaviour.plan(session, quirks.no_sync)
    sync_file, edge_counts = None, {}
    if not quirks.no_sync:
        sync_file, edge_counts = _write_sync_file(
            session, folder, prefix, plan, (values, starts), sync_end, quirks
        )
    task_path = behaviour.write_taskcontrol(session, folder, plan) if task_file else None
    pickle_path = behaviour.write_camstim(session, folder, plan) if camstim else None
    if session_json:
        _write_session_json(session, folder, probes)
    return RigTruth(
        session=session,
        folder=folder,
        quirks=quirks,
        probes=tuple(probes),
        sync_file=sync_file,
        task_file=task_path,
        pickle_file=pickle_path,
        barcode_values=values,
        barcode_times=starts,
        sync_barcodes=np.empty(0, np.int64) if quirks.no_sync else sync_values,
        sync_duration=None if quirks.no_sync else round(sync_end * files.SYNC_RATE_HZ) / 1e5,
        sync_edges=edge_counts,
        frame_times=plan.frame_times,
        lick_times=plan.lick_times(task_file),
        lick_source=plan.lick_source(task_file),
        trial_frames=(plan.start_frames, plan.stop_frames),
        reward_frames=plan.reward_frames,
        expectations=_expectations(quirks, probes),
    )


def rig_folder_name(session: SyntheticSession) -> str:
    """The session folder name of the layout: `<subject>_<YYYY-MM-DD>` (local date)."""
    return f"{session.subject.subject_id}_{_local(session):%Y-%m-%d}"


# --- internals -------------------------------------------------------------------------------


def _per_probe(given: np.ndarray | None, drawn: np.ndarray) -> np.ndarray:
    if given is None:
        return drawn
    given = np.broadcast_to(np.asarray(given, dtype=np.float64), drawn.shape)
    return given.copy()


def _local(session: SyntheticSession) -> dt.datetime:
    return session.session_start_time.astimezone(LOCAL_TZ)


def _barcodes(
    rng: np.random.Generator, duration: float, interval: float
) -> tuple[np.ndarray, np.ndarray]:
    """Unique random 31-bit values and start times covering the session plus a margin."""
    n = int(np.ceil((duration + SYNC_TAIL_S + PROBE_TAIL_S + 2 * interval) / interval)) + 2
    starts = 0.3 + rng.uniform(0, 0.2) + interval * np.arange(n) + rng.uniform(-0.01, 0.01, n)
    values = rng.choice(1 << 31, size=n, replace=False).astype(np.int64)
    return values, starts


def _sync_end(
    starts: np.ndarray, duration: float, behaviour_end: float, quirks: RigQuirks
) -> float:
    """Where the sync stops: after the session, inside the next barcode when truncating."""
    if quirks.truncated_last_barcode:
        k = int(np.searchsorted(starts, max(behaviour_end, duration) + 0.1))
        return float(starts[k] + 0.45)
    end = duration + SYNC_TAIL_S
    inside = (starts - 0.05 <= end) & (end <= starts + files.BARCODE_DURATION + 0.05)
    if inside.any():
        end = float(starts[inside][-1] + files.BARCODE_DURATION + 0.1)
    return end


def _write_sync_file(
    session: SyntheticSession,
    folder: Path,
    prefix: str,
    plan: behaviour.BehaviourPlan,
    barcodes: tuple[np.ndarray, np.ndarray],
    sync_end: float,
    quirks: RigQuirks,
) -> tuple[Path, dict[str, int]]:
    """The sync HDF5 and the number of edges written per labelled line."""
    freq = files.SYNC_RATE_HZ
    total = round(sync_end * freq)
    values, starts = barcodes
    lines = behaviour.sync_lines(session, plan, sync_end)
    rise, fall = files.barcode_edges(values, starts)
    rise, fall = np.round(rise * freq).astype(np.int64), np.round(fall * freq).astype(np.int64)
    if quirks.glitch:
        gap = round((starts[0] + files.BARCODE_DURATION + starts[1]) / 2 * freq)
        in_bit = round((starts[1] + files.FIRST_BIT_OFFSET + 31.5 * files.BIT_WIDTH) * freq)
        rise = np.sort(np.r_[rise, gap, in_bit])
        fall = np.sort(np.r_[fall, gap + 1, in_bit + 1])
    lines[files.SYNC_LABELS.index("barcode_ephys")] = (rise, fall)
    lines = {k: (r[r < total], f[f < total]) for k, (r, f) in lines.items()}
    rows = files.sync_rows(lines, counter_bits=quirks.counter_bits)
    local = _local(session).replace(tzinfo=None)
    meta = files.sync_meta(
        counter_bits=quirks.counter_bits,
        total_samples=total,
        start=f"{local:%Y-%m-%d %H:%M:%S.%f}",
        stop=f"{local + dt.timedelta(seconds=sync_end):%Y-%m-%d %H:%M:%S.%f}",
    )
    path = files.write_sync(folder / f"{prefix}.sync", rows, meta)
    counts = {files.SYNC_LABELS[k]: len(r) + len(f) for k, (r, f) in lines.items()}
    return path, counts


def _write_session_json(session: SyntheticSession, folder: Path, probes: list[ProbeClock]) -> None:
    subject = session.subject
    info = {
        "session_id": session.session_id,
        "session_start_time": _local(session).isoformat(),
        "timezone": "America/Los_Angeles",
        "session_description": session.session_description,
        "session_type": session.session_type,
        "rig": session.rig,
        "experimenter": list(session.experimenter),
        "institution": session.institution,
        "lab": session.lab,
        "subject_id": subject.subject_id,
        "species": subject.species,
        "sex": subject.sex,
        "genotype": subject.genotype,
        "strain": subject.strain,
        "date_of_birth": subject.date_of_birth.isoformat(),
        "age": subject.age(session.session_start_time),
        "probes": {p.name: {"probe_id": int(session.probes.probe_id[p.index])} for p in probes},
    }
    (folder / "session.json").write_text(json.dumps(info, indent=2))


def _expectations(quirks: RigQuirks, probes: list[ProbeClock]) -> dict[str, str]:
    out = {}
    if quirks.truncated_last_barcode:
        out["truncated_last_barcode"] = (
            "the sync file ends inside its last barcode: that barcode is not decoded on the sync "
            "clock, so every probe has one more barcode than it can match (unmatched audit row)"
        )
    if quirks.dropped_barcode:
        out["dropped_barcode"] = (
            f"barcode 2 is missing on {probes[0].name}'s TTL line: it matches one barcode "
            "fewer; the fit is unaffected"
        )
    if quirks.glitch:
        out["glitch"] = (
            "1-sample pulses on the sync barcode line (between barcodes 0 and 1, and in the "
            f"middle of bit 31 of barcode 1) and on {probes[0].name}'s TTL line are ignored: "
            "every barcode decodes and matches; the pulses stay in sync_edges"
        )
    if quirks.counter_bits < 32:
        out["counter_bits"] = (
            f"the {quirks.counter_bits}-bit counter rolls over every "
            f"{(1 << quirks.counter_bits) / files.SYNC_RATE_HZ:g} s and is unwrapped: edge times "
            "are the same as with a 32-bit counter"
        )
    if quirks.probe_without_ttl is not None:
        name = probes[quirks.probe_without_ttl].name
        out["probe_without_ttl"] = (
            f"{name} has no TTL events: clock_status 'unaligned', its spikes in probe seconds, "
            "a note in the session notes"
        )
    if quirks.no_sync:
        out["no_sync"] = (
            "no sync file: behaviour on the task file's own clock (0 = first frame), licks from "
            "lickFrames (50-ms de-duplication), every probe unaligned with a note"
        )
    return out
