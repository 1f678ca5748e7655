"""One probe of a rig session: sorting, TTL barcodes, clock fit, its rows, its spikes stream.

`read_probe` reads a probe folder's sorting output (units, channels), decodes the barcodes of
its TTL events and fits its clock to the sync clock; it keeps no spike arrays, so memory does
not grow with the number of probes. `spikes_source` re-reads each probe's spike files when the
lake streams them: spikes in Kilosort order (by time, clusters interleaved) are put in
(unit_id, time) order with one stable argsort per probe (a radix sort when cluster ids fit in
16 bits) and converted to master-clock seconds with `align.apply`, in batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ingest.rig import _layout
from ingest.rig._metadata import ProbeInfo
from ingest.rig._npy import load_npy
from ingest.rig.align import ClockFit, apply, fit_clock
from ingest.rig.barcodes import Barcodes, decode_barcodes
from ingest.rig.openephys import read_ttl_events
from ingest.rig.sorting import UNIT_ID_STRIDE, read_sorting, unit_ids
from schemas import DecodeError, StreamSource

#: Spikes per record batch of the spikes stream.
DEFAULT_BATCH_SPIKES = 2_000_000

SPIKES_SCHEMA = pa.schema(
    [
        pa.field("unit_id", pa.int64(), nullable=False),
        pa.field("time", pa.float64(), nullable=False),
        pa.field("amplitude", pa.float64()),
    ]
)
_RESERVED_UNITS = ("session_id", "unit_id", "probe")
_RESERVED_CHANNELS = ("session_id", "probe")


@dataclass(frozen=True)
class SyncClock:
    """What the probes are aligned to: sync-clock barcodes, or why there are none."""

    barcodes: Barcodes
    sample_period: float
    missing: str | None = None  # why every probe stays unaligned (no sync file, no line)


@dataclass(frozen=True)
class ProbeResult:
    """One probe, read and aligned: small tables and what streaming its spikes needs."""

    name: str
    index: int
    sorting_folder: Path
    sample_rate: float
    units: pa.Table
    channels: pa.Table
    row: dict
    fit: ClockFit
    has_amplitudes: bool
    notes: tuple[str, ...]

    @property
    def n_spikes(self) -> int:
        """Spikes of this probe (sum of its units' spike_count)."""
        return int(np.sum(self.units.column("spike_count").to_numpy()))


def read_probe(
    probe: _layout.ProbeDir,
    index: int,
    session_folder: Path,
    sync: SyncClock,
    *,
    info: ProbeInfo | None = None,
    ttl_line: int = 1,
) -> ProbeResult:
    """Read one probe folder and fit its clock to the sync clock."""
    sorted_probe = read_sorting(probe.folder)
    rate = sorted_probe.sample_rate
    notes = [f"{probe.name}: {n}" for n in sorted_probe.notes]
    ttl_folder = _layout.choose_ttl_folder(probe.folder, sorted_probe.folder)
    layout = None
    if ttl_folder is None:
        bc = Barcodes(np.empty(0), np.empty(0, dtype=np.int64))
    else:
        ttl = read_ttl_events(ttl_folder, sample_rate=rate)
        layout = ttl.layout
        bc = decode_barcodes(*ttl.edges(line=ttl_line))
    fit = fit_clock(
        bc.times,
        bc.values,
        sync.barcodes.times,
        sync.barcodes.values,
        sync_sample_period=sync.sample_period,
        nominal_rate=rate,
        probe=probe.name,
        probe_edges=bc.edges,
        sync_edges=sync.barcodes.edges,
    )
    if ttl_folder is None or sync.missing is not None:
        reasons = [f"no TTL events in {probe.folder.name}"] if ttl_folder is None else []
        fit = dataclasses.replace(fit, note="; ".join([*reasons, *filter(None, [sync.missing])]))
    notes += _fit_notes(probe.name, fit, rate)
    ids = _unit_ids(index, sorted_probe.units.column("cluster_id").to_numpy(), sorted_probe.folder)
    front = {"unit_id": pa.array(ids), "probe": _const(probe.name, len(ids))}
    units = _with_front(sorted_probe.units, front, _RESERVED_UNITS)
    channels = _with_front(
        sorted_probe.channels,
        {"probe": _const(probe.name, sorted_probe.channels.num_rows)},
        _RESERVED_CHANNELS,
    )
    row = _probe_row(probe, session_folder, sorted_probe, fit, ttl_folder, layout, info)
    return ProbeResult(
        name=probe.name,
        index=index,
        sorting_folder=sorted_probe.folder,
        sample_rate=rate,
        units=units,
        channels=channels,
        row=row,
        fit=fit,
        has_amplitudes=sorted_probe.spike_amplitudes is not None,
        notes=tuple(notes),
    )


def spikes_source(
    probes: list[ProbeResult], batch_spikes: int = DEFAULT_BATCH_SPIKES
) -> StreamSource:
    """The session's spikes, sorted by (unit_id, time), streamed probe by probe."""
    ordered = sorted(probes, key=lambda p: p.index)

    def batches() -> Iterator[pa.RecordBatch]:
        for probe in ordered:
            yield from probe_batches(probe, batch_spikes)

    return StreamSource(SPIKES_SCHEMA, sum(p.n_spikes for p in probes), batches)


def probe_batches(probe: ProbeResult, batch_spikes: int) -> Iterator[pa.RecordBatch]:
    """One probe's spikes as batches: unit_id, master-clock time (s), amplitude."""
    folder = probe.sorting_folder
    samples = _load(folder / "spike_times.npy")
    clusters = np.asarray(_load(folder / "spike_clusters.npy"))
    amplitudes = _load(folder / "amplitudes.npy") if probe.has_amplitudes else None
    if len(samples) != len(clusters) or (
        amplitudes is not None and len(amplitudes) != len(samples)
    ):
        msg = "spike files changed since the session was read: lengths differ"
        raise DecodeError(msg, file=folder, field="length")
    order = spike_order(samples, clusters)
    base = probe.index * UNIT_ID_STRIDE
    for start in range(0, len(order), batch_spikes):
        idx = order[start : start + batch_spikes]
        unit = clusters[idx].astype(np.int64) + base
        times = apply(probe.fit, samples[idx], probe.sample_rate, allow_unaligned=True)
        amp = (
            pa.array(np.asarray(amplitudes[idx], dtype=np.float64))
            if amplitudes is not None
            else pa.nulls(len(idx), pa.float64())
        )
        yield pa.record_batch([pa.array(unit), pa.array(times), amp], schema=SPIKES_SCHEMA)


def spike_order(samples: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Indices putting spikes in (cluster, sample) order, vectorised.

    Kilosort writes spikes in time order: then a stable sort by cluster alone suffices (numpy
    uses a radix sort for 16-bit keys). Otherwise a lexsort over (cluster, sample).

    Examples
    --------
    >>> spike_order(np.array([5, 7, 9, 11]), np.array([2, 1, 2, 1])).tolist()
    [1, 3, 0, 2]
    """
    n = len(clusters)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    in_time_order = bool(np.all(samples[1:] >= samples[:-1]))
    if not in_time_order:
        return np.lexsort((np.asarray(samples), clusters))
    lo, hi = int(clusters.min()), int(clusters.max())
    key = clusters.astype(np.uint16) if lo >= 0 and hi < (1 << 16) else clusters
    return np.argsort(key, kind="stable")


# --- internals -------------------------------------------------------------------------------


def _unit_ids(index: int, clusters: np.ndarray, folder: Path) -> np.ndarray:
    try:
        return unit_ids(index, clusters)
    except DecodeError as exc:
        raise DecodeError(exc.reason, file=folder, field="cluster_id") from None


def _load(file: Path) -> np.ndarray:
    """A (N,) or (N, 1) .npy array, memory-mapped (validated earlier by read_sorting)."""
    array = load_npy(file, mmap_mode="r")
    return array.reshape(-1) if array.ndim == 2 and array.shape[1] == 1 else array


def _fit_notes(name: str, fit: ClockFit, rate: float) -> list[str]:
    if fit.status == "unaligned":
        return [
            f"{name}: clock UNALIGNED ({fit.note}); its spike times are seconds on the probe's "
            f"own clock (sample / {rate:g} Hz), not the master clock"
        ]
    if fit.status == "flagged":
        return [f"{name}: clock fit flagged ({fit.note})"]
    return []


def _probe_row(
    probe: _layout.ProbeDir,
    session_folder: Path,
    sorted_probe,
    fit: ClockFit,
    ttl_folder: Path | None,
    layout: str | None,
    info: ProbeInfo | None,
) -> dict:
    meta = sorted_probe.probe
    given = info.model_dump(exclude_none=True) if info is not None else {}
    return {
        "probe": probe.name,
        "probe_id": given.get("probe_id"),
        "location": given.get("location"),
        "description": given.get("description"),
        "model": given.get("model", meta.get("model")),
        "serial_number": given.get("serial_number", meta.get("serial_number")),
        "sampling_rate": float(sorted_probe.sample_rate),
        "lfp_sampling_rate": meta.get("lfp_sampling_rate"),
        **fit.probe_columns(),
        "sample_rate_source": sorted_probe.sample_rate_source,
        "sorting_folder": str(sorted_probe.folder.relative_to(session_folder)),
        "ttl_events": str(ttl_folder.relative_to(session_folder)) if ttl_folder else None,
        "ttl_layout": layout,
        "surface_channel": meta.get("surface_channel"),
        "software": meta.get("software"),
    }


def _const(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _with_front(table: pa.Table, front: dict[str, pa.Array], reserved: tuple[str, ...]) -> pa.Table:
    """`front` columns first; source columns with a reserved name kept as `<name>_source`."""
    renamed = [f"{c}_source" if c in reserved else c for c in table.column_names]
    table = table.rename_columns(renamed)
    for k, (name, values) in enumerate(front.items()):
        table = table.add_column(k, name, values)
    return table
