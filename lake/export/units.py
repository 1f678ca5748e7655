"""Export: the units table, built column-wise (never `add_unit`).

Ragged spike times, amplitudes, metrics, peak channels, waveforms.

Spike times and amplitudes are never read whole. pynwb writes them as empty (contiguous)
datasets of the right size. While the file is built and pynwb writes it, a background thread
checks the session's spikes against the units table (known units, sorted by unit, counts; the
unit_id column only: `spikes.spike_checks`); once both are done, `fill_spikes` streams the
times and amplitudes from the Parquet files into the datasets with h5py, batch by batch. The
index is the cumulative spike count in unit order: the flattening reversed.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.export.context import ExportContext
from lake.export.probes import Electrodes, Probes
from lake.export.spikes import SpikeFiles
from lake.export.values import has_values, same_values
from schemas.errors import InconsistentSession

#: Where NWB keeps the units table (the key of its columns in `descriptions`).
_UNITS = "/units"
#: Units columns the file carries in other forms (ids, links, the spike index).
_DERIVED = ("unit_id", "probe", "peak_channel", "peak_channel_id", "spike_count", "electrodes")
_WAVEFORM_COLUMNS = ("waveform_mean", "waveform_sd", "n_samples", "n_channels", "sampling_rate")


def add_units(
    nwbfile: Any, ctx: ExportContext, probes: Probes, electrodes: Electrodes | None
) -> None:
    """The units table (empty when the session has no units: the decoder needs one)."""
    from hdmf.common import DynamicTableRegion, ElementIdentifiers, VectorData, VectorIndex
    from pynwb.misc import Units

    units = ctx.rows.table("units")
    n = units.num_rows
    unit_ids = units.column("unit_id").to_numpy() if n else np.array([], np.int64)
    counts = units.column("spike_count").to_numpy() if n else np.array([], np.int64)
    if n > 1 and bool(np.any(np.diff(unit_ids) <= 0)):
        msg = "units.unit_id is not unique"
        raise ctx.rows.inconsistent(msg)
    ends = np.cumsum(counts, dtype=np.int64)
    columns: list[Any] = _spike_columns(ctx, ends)
    region = _regions(ctx, units, electrodes)
    linked = electrodes is not None and n and bool(len(region[0]))
    if linked:  # no links at all: no column (an empty region is an nwbinspector error)
        rows, region_ends = region
        data = DynamicTableRegion(
            name="electrodes",
            description=ctx.source_description(_UNITS, "electrodes")
            or "electrodes of the unit (its peak channel first)",
            data=rows,
            table=electrodes.table,
        )
        columns += [data, VectorIndex(name="electrodes_index", data=region_ends, target=data)]
        one_each = bool(np.all(np.diff(region_ends, prepend=0) == 1))
        if one_each and ctx.source_layout(_UNITS, "electrodes") == 0:
            # the source had one electrode per unit without an index (MatNWB writes that);
            # pynwb cannot build such a Units table, so its index is removed once written
            ctx.after_write.append(_drop_electrodes_index)
    path_a = (
        bool(n) and has_values(units, "peak_channel_id") and not has_values(units, "electrodes")
    )
    path_a = path_a and not units.column("peak_channel_id").null_count
    if path_a and ctx.rows.table("descriptions").num_rows:  # an NWB source: as it had it
        path_a = ctx.source_layout(_UNITS, "peak_channel_id") is not None
    if path_a:
        columns += ctx.columns(
            "units", "peak_channel_id", units.column("peak_channel_id"), path=_UNITS
        )
    predicted = _predict_peaks(units, electrodes, region, path_a=path_a)
    probe = units.column("probe").combine_chunks() if n else pa.array([], pa.string())
    had_group = ctx.source_layout(_UNITS, "electrode_group") is not None
    differs = not same_values(probe, predicted["probe"])
    with_group = bool(n) and not probe.null_count and (differs or had_group)
    if with_group:  # the peak channels do not give every unit's probe: name it
        unknown = sorted(set(probe.to_pylist()) - set(probes.groups))
        if unknown:
            msg = f"units name probes that are not in probes: {unknown[:5]}"
            raise ctx.rows.inconsistent(msg)
        groups = [probes.groups[p] for p in probe.to_pylist()]
        text = ctx.source_description(_UNITS, "electrode_group") or "probe of the unit"
        columns.append(VectorData(name="electrode_group", description=text, data=groups))
        predicted["probe"] = probe
    _module_peaks(ctx, units, predicted, region)
    for column in units.column_names:
        if column not in _DERIVED and has_values(units, column):
            columns += ctx.columns("units", column, units.column(column), path=_UNITS)
    waveform_columns, rate = _waveforms(ctx, units)
    columns += waveform_columns
    nwbfile.units = Units(
        name="units",
        id=ElementIdentifiers(name="id", data=unit_ids),
        columns=columns,
        description="sorted units, exported from an nplake lake",
        electrode_table=electrodes.table if electrodes is not None and n else None,
        waveform_rate=rate,
        resolution=_resolution(ctx),
    )


def _drop_electrodes_index(fh: Any) -> None:
    """Make `units/electrodes` scalar (one electrode per unit), as the source had it."""
    del fh["units/electrodes_index"]


def _resolution(ctx: ExportContext) -> float | None:
    """One sample of the fastest probe clock, when every probe's sampling rate is known."""
    probes = ctx.rows.table("probes")
    if not probes.num_rows or "sampling_rate" not in probes.column_names:
        return None
    rates = probes.column("sampling_rate")
    if rates.null_count:
        return None
    fastest = float(pc.max(rates).as_py())
    return 1.0 / fastest if fastest > 0 and np.isfinite(fastest) else None


# -------------------------------------------------------------------------------------- spikes
def _spike_columns(ctx: ExportContext, ends: np.ndarray) -> list[Any]:
    """spike_times (+ amplitudes) allocated empty; `fill_spikes` writes them after pynwb."""
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.common import VectorData, VectorIndex

    spikes = ctx.rows.spikes
    total = int(ends[-1]) if len(ends) else 0
    n_files = spikes.num_rows if spikes is not None else 0
    if n_files != total:
        msg = f"{n_files} spikes, but units.spike_count sums to {total}"
        raise ctx.rows.inconsistent(msg)
    if spikes is None:
        times = VectorData(
            name="spike_times", description="spike times (s)", data=np.array([], np.float64)
        )
        return [times, VectorIndex(name="spike_times_index", data=ends, target=times)]

    def empty() -> Any:  # contiguous: written twice as fast as chunked (benchmarks.md)
        return H5DataIO(data=None, shape=(total,), dtype=np.float64)

    times = VectorData(
        name="spike_times",
        description="spike times in seconds on the session's master clock",
        data=empty(),
    )
    # hdmf cannot measure a dataset it has no data for: each index comes before its data, so
    # the table takes its length from the index
    columns = [VectorIndex(name="spike_times_index", data=ends, target=times), times]
    with_amplitudes = spikes.amplitudes != "none"
    if with_amplitudes:
        amplitudes = VectorData(
            name="spike_amplitudes",
            description="amplitude of each spike, as the source reported it",
            data=empty(),
        )
        index = VectorIndex(name="spike_amplitudes_index", data=ends, target=amplitudes)
        columns += [index, amplitudes]
    ctx.after_write.append(lambda fh: fill_spikes(fh, spikes, amplitudes=with_amplitudes))
    return columns


def fill_spikes(fh: Any, spikes: SpikeFiles, *, amplitudes: bool) -> None:
    """Stream the session's spikes from the lake into `units/spike_times` (and amplitudes).

    One pass over the Parquet files, batch by batch. The spikes were checked against the units
    table (`SpikeCheck.run`, while pynwb wrote the rest of the file) before this runs.
    """
    times = fh["units/spike_times"]
    amps = fh["units/spike_amplitudes"] if amplitudes else None
    columns = ["time", "amplitude"] if amplitudes else ["time"]
    start = 0
    with contextlib.closing(spikes.batches(columns)) as batches:
        for batch in batches:
            time = batch.column(0).to_numpy()
            if bool(np.isnan(time).any()):
                msg = f"session {spikes.session_id}: some spike times are NaN"
                raise InconsistentSession(msg)
            stop = start + len(time)
            if stop > times.shape[0]:
                start = stop
                break
            times[start:stop] = time
            if amps is not None:
                values = batch.column(1)
                if values.null_count:
                    values = pc.fill_null(values, float("nan"))
                amps[start:stop] = values.to_numpy(zero_copy_only=False)
            start = stop
    if start != times.shape[0]:
        msg = (
            f"session {spikes.session_id}: the spikes files changed while being read "
            f"({start} spikes read, {times.shape[0]} expected)"
        )
        raise InconsistentSession(msg)


# ------------------------------------------------------------------------------ peak channels
def _regions(ctx: ExportContext, units: pa.Table, electrodes: Electrodes | None):
    """Per unit, the electrodes rows of its region: its `electrodes` ids, else its peak channel."""
    n = units.num_rows
    if electrodes is None or not n:
        return np.array([], np.int64), np.zeros(n, np.int64)
    channel_keys = _keys(electrodes.probe, electrodes.channel)
    if has_values(units, "electrodes"):
        lists = units.column("electrodes").combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
        flat = lists.flatten()
        rows = pc.index_in(flat, value_set=pa.array(electrodes.ids)).to_numpy(zero_copy_only=False)
        if flat.null_count or np.isnan(rows.astype(float)).any():
            msg = "units.electrodes name electrodes that are not in channels"
            raise ctx.rows.inconsistent(msg)
        return rows.astype(np.int64), np.cumsum(lengths, dtype=np.int64)
    probe = units.column("probe").to_pylist()
    peak = units.column("peak_channel").to_pylist()
    where = pc.index_in(_keys(probe, peak), value_set=channel_keys)
    found = where.is_valid().to_numpy(zero_copy_only=False)
    rows = pc.fill_null(where, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return rows[found], np.cumsum(found, dtype=np.int64)


def _keys(probe, channel) -> pa.Array:
    probe = pa.array(list(probe), pa.string())
    channel = pa.array(list(channel), pa.int64()).cast(pa.string())
    return pc.binary_join_element_wise(probe, channel, "\x1f")


def _predict_peaks(units, electrodes, region, *, path_a: bool) -> dict[str, pa.Array]:
    """Probe, peak channel and electrode id the decoder will derive from the file's units.

    Path A (a `peak_channel_id` column): the electrode with that id; else the first electrode
    of the unit's region. Mirrors `ingest.nwb.units._peak_channel`.
    """
    n = units.num_rows
    rows_flat, ends = region
    if electrodes is not None and len(electrodes.ids) and n:
        if path_a:
            wanted = pa.array(units.column("peak_channel_id").to_numpy())
            where = pc.index_in(wanted, value_set=pa.array(electrodes.ids))
            rows = pc.fill_null(where, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            counts = np.diff(ends, prepend=0)
            first = np.minimum(ends - counts, max(len(rows_flat) - 1, 0))
            rows = np.where(counts > 0, rows_flat[first] if len(rows_flat) else -1, -1)
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        probe = pa.array(electrodes.probe[safe].tolist(), pa.string(), mask=~valid)
        peak = pa.array(electrodes.channel[safe], pa.int64(), mask=~valid)
        ids = pa.array(electrodes.ids[safe], pa.int64(), mask=~valid)
    else:
        probe = pa.nulls(n, pa.string())
        peak = ids = pa.nulls(n, pa.int64())
    if path_a:
        ids = units.column("peak_channel_id").combine_chunks()
    return {"probe": probe, "peak_channel": peak, "peak_channel_id": ids}


def _module_peaks(ctx: ExportContext, units: pa.Table, predicted: dict, region) -> None:
    """Lake values the decoder would not derive from the file go to the module."""
    if not units.num_rows:
        return
    columns = {
        c: units.column(c).combine_chunks()
        for c, values in predicted.items()
        if not same_values(units.column(c).combine_chunks(), values)
    }
    if has_values(units, "electrodes"):
        counts = np.diff(region[1], prepend=0)
        if not (counts > 1).any():  # the decoder lists electrodes only when a unit has several
            columns["electrodes"] = units.column("electrodes").combine_chunks()
    if columns:
        ctx.add_module_columns("units", "unit_id", columns)


# ---------------------------------------------------------------------------------- waveforms
def _waveforms(ctx: ExportContext, units: pa.Table) -> tuple[list[Any], float | None]:
    """waveform_mean/sd units columns and their rate, or the waveforms table in the module."""
    from hdmf.common import VectorData

    wf = ctx.rows.table("waveforms")
    if not wf.num_rows:
        return [], None
    plan = _waveform_plan(wf, units)
    if plan is None:
        ctx.module["waveforms"] = wf.select(["unit_id", *_WAVEFORM_COLUMNS])
        return [], None
    shape, rate = plan
    columns = []
    for name in ("waveform_mean", "waveform_sd"):
        values = wf.column(name).combine_chunks()
        if values.null_count:
            continue
        data = values.flatten().to_numpy().astype(np.float32, copy=False).reshape(shape)
        text = "mean waveform" if name == "waveform_mean" else "waveform standard deviation"
        columns.append(VectorData(name=name, description=text, data=data))
    return columns, rate


def _waveform_plan(wf: pa.Table, units: pa.Table) -> tuple[tuple[int, ...], float | None] | None:
    """(array shape, waveform rate) when units columns can carry the waveforms exactly."""
    same_units = same_values(wf.column("unit_id"), units.column("unit_id"))
    n_samples = pc.unique(wf.column("n_samples")).to_pylist()
    n_channels = pc.unique(wf.column("n_channels")).to_pylist()
    if not same_units or len(n_samples) != 1 or len(n_channels) != 1:
        return None
    samples, channels = int(n_samples[0]), int(n_channels[0])
    width = samples * channels
    for name in ("waveform_mean", "waveform_sd"):
        values = wf.column(name).combine_chunks()
        if name == "waveform_sd" and values.null_count == len(values):
            continue
        lengths = pc.list_value_length(values)
        if values.null_count or pc.any(pc.not_equal(lengths, width)).as_py():
            return None
    shape = (wf.num_rows, samples) if channels == 1 else (wf.num_rows, samples, channels)
    rates = wf.column("sampling_rate").combine_chunks()
    distinct = pc.unique(rates.drop_null()).to_pylist()
    unit_rates = units.column("sampling_rate") if "sampling_rate" in units.column_names else None
    if not rates.null_count and len(distinct) == 1 and not np.isnan(distinct[0]):
        return shape, float(distinct[0])
    if unit_rates is not None and has_values(units, "sampling_rate"):
        # the decoder takes a units `sampling_rate` column as the rate when there is no attribute
        return (shape, None) if same_values(rates, unit_rates.cast(pa.float64())) else None
    return (shape, None) if rates.null_count == len(rates) else None
