"""One probe of the synthetic rig session: its clock, its Kilosort folder and its TTL events."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ingest.synth import _rig_files as files
from ingest.synth._rig_quirks import RigQuirks

if TYPE_CHECKING:
    from ingest.synth.model import SyntheticSession

NOMINAL_RATE = 30_000.0


@dataclass(frozen=True)
class ProbeClock:
    """One probe's folder, layout and true clock, and what its alignment should give."""

    name: str
    index: int
    folder: Path
    layout: str  # '0.4' or '>=0.6'
    stream: str
    nominal_rate: float
    drift_ppm: float
    slope: float
    offset: float
    start_sample: int
    has_ttl: bool
    barcodes: np.ndarray  # values its TTL events carry (whole barcodes)
    expected_matches: int
    expected_status: str  # 'aligned' or 'unaligned'

    @property
    def own_clock(self) -> bool:
        """Whether the decoder must leave this probe on its own clock."""
        return self.expected_status == "unaligned"


def probe_spike_samples(
    session: SyntheticSession, probe: ProbeClock
) -> tuple[np.ndarray, np.ndarray]:
    """(probe samples, unit rows) of one probe's spikes, in the session's unit order."""
    rows = session.unit_rows_of_probe(probe.name)
    if rows.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    ends = session.spikes.ends
    lo = int(ends[rows[0] - 1]) if rows[0] > 0 else 0
    hi = int(ends[rows[-1]])
    t = session.spikes.times[lo:hi]
    samples = np.round((t - probe.offset) / probe.slope * probe.nominal_rate).astype(np.int64)
    unit_rows = np.repeat(rows, session.spikes.counts[rows])
    return samples, unit_rows


@dataclass(frozen=True, eq=False)
class Train:
    """The barcodes emitted (values, master-clock starts), those the sync decodes, probe end."""

    values: np.ndarray
    starts: np.ndarray
    sync_values: np.ndarray
    probe_end: float


def write_probe(
    session: SyntheticSession,
    folder: Path,
    prefix: str,
    i: int,
    rng: np.random.Generator,
    clock_params: tuple[float, float],
    train: Train,
    quirks: RigQuirks,
) -> ProbeClock:
    """One probe folder: sorting output, Allen extras and (unless a quirk says no) TTL events."""
    drift, offset = clock_params
    values, starts, sync_values = train.values, train.starts, train.sync_values
    name = str(session.probes.name[i])
    layout = "0.4" if i % 2 == 0 else ">=0.6"
    letter = name.removeprefix("probe")
    stream = "Neuropix-3a-100.0" if layout == "0.4" else f"Neuropix-PXI-100.Probe{letter}-AP"
    probe_dir = folder / f"{prefix}_{name}_sorted"
    sorting = probe_dir / "continuous" / stream if layout == "0.4" else probe_dir
    has_ttl = quirks.probe_without_ttl != i
    barcodes = values if i != 0 or not quirks.dropped_barcode else np.delete(values, 2)
    matched = 0 if quirks.no_sync or not has_ttl else int(np.isin(barcodes, sync_values).sum())
    clock = ProbeClock(
        name=name,
        index=i,
        folder=probe_dir,
        layout=layout,
        stream=stream,
        nominal_rate=NOMINAL_RATE,
        drift_ppm=float(drift),
        slope=1.0 + float(drift) * 1e-6,
        offset=float(offset),
        start_sample=int(rng.integers(10_000, 1_000_000)),
        has_ttl=has_ttl,
        barcodes=barcodes,
        expected_matches=matched,
        expected_status="aligned" if matched >= 3 else "unaligned",
    )
    write_sorting(session, clock, sorting)
    if layout == "0.4":
        files.write_probe_info(
            probe_dir / "probe_info.json",
            stream=stream,
            serial=str(int(session.probes.probe_id[i]) % 10**9),
            rate=NOMINAL_RATE,
            n_channels=int(np.sum(session.channels.probe_index == i)),
        )
    if has_ttl:
        keep = np.isin(values, barcodes)
        rise, fall = files.barcode_edges(values[keep], starts[keep])
        rise, fall = (to_probe(t, clock) for t in (rise, fall))
        if i == 0 and quirks.glitch:  # a 1-sample pulse after barcode 3 (or the next to last)
            if len(starts) < 2:
                msg = f"RigQuirks(glitch=True) needs 2 barcodes; this session has {len(starts)}"
                raise ValueError(msg)
            k = min(3, len(starts) - 2)
            g = to_probe(np.array([starts[k] + files.BARCODE_DURATION + 1.0]), clock)
            rise, fall = np.sort(np.r_[rise, g]), np.sort(np.r_[fall, g + 1])
        limit = to_probe(np.array([train.probe_end]), clock)[0]
        files.write_ttl(
            probe_dir,
            layout=layout,
            stream=stream,
            rise=rise[rise < limit],
            fall=fall[fall < limit],
            start_sample=clock.start_sample,
            rate=NOMINAL_RATE,
        )
    return clock


def to_probe(master: np.ndarray, clock: ProbeClock) -> np.ndarray:
    """Master-clock times as whole probe samples (rounded)."""
    return np.round((master - clock.offset) / clock.slope * clock.nominal_rate).astype(np.int64)


def write_sorting(session: SyntheticSession, clock: ProbeClock, sorting: Path) -> None:
    """Kilosort output in time order (clusters interleaved) plus units and channel files."""
    rows = session.unit_rows_of_probe(clock.name)
    units = session.units
    samples, unit_rows = probe_spike_samples(session, clock)
    order = np.argsort(samples, kind="stable")
    lo = int(session.spikes.ends[rows[0] - 1]) if rows.size and rows[0] > 0 else 0
    amplitudes = session.spikes.amplitudes[lo : lo + len(samples)]
    by_cluster = rows[np.argsort(units.cluster_id[rows], kind="stable")]
    table = pa.table(
        {
            "cluster_id": units.cluster_id[by_cluster],
            "quality": units.quality[by_cluster].astype(object),
            "peak_chan": units.peak_channel[by_cluster],
            **{k: v[by_cluster] for k, v in units.metrics.items()},
        }
    )
    ch = session.channels
    mine = ch.probe_index == clock.index
    channels = pa.table(
        {
            "channel": ch.local_index[mine],
            "horizontal": ch.horizontal[mine],
            "vertical": ch.vertical[mine],
            "ccf_ap": ch.ccf_ap[mine],
            "ccf_dv": ch.ccf_dv[mine],
            "ccf_ml": ch.ccf_ml[mine],
            "structure": ch.structure[mine].astype(object),
            "valid": ch.valid[mine],
        }
    )
    files.write_phy(
        sorting,
        samples=samples[order],
        clusters=units.cluster_id[unit_rows][order],
        amplitudes=amplitudes[order],
        units=table,
        channels=channels,
        sample_rate=clock.nominal_rate,
        column_vectors=clock.layout == "0.4",
    )
    files.write_ccf(sorting / "ccf_regions.csv", channels)
