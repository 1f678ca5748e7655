"""Export: the units table, built column-wise (never `add_unit`).

Ragged spike times streamed from the lake, amplitudes, metrics, peak channels, waveforms.

Spike times and amplitudes are not read whole: each is an hdmf chunk iterator over the
session's Parquet files, writing 1 Mi-value HDF5 chunks as the batches arrive, and checking the
stream against the units table (known units, sorted, counts) as it flows. The index is the
cumulative spike count in unit order: the flattening reversed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake._nwb_common import Build, has_values, same_values
from lake._nwb_meta import Electrodes, Probes
from lake._nwb_read import SpikeCheck, SpikeFiles

#: Values per HDF5 chunk (and per write) of the spike datasets.
CHUNK_VALUES = 1 << 20
#: Units columns the file carries in other forms (ids, links, the spike index).
_DERIVED = ("unit_id", "probe", "peak_channel", "peak_channel_id", "spike_count", "electrodes")
_WAVEFORM_COLUMNS = ("waveform_mean", "waveform_sd", "n_samples", "n_channels", "sampling_rate")


def add_units(nwbfile: Any, build: Build, probes: Probes, electrodes: Electrodes | None) -> None:
    """The units table (empty when the session has no units: the decoder needs one)."""
    from hdmf.common import DynamicTableRegion, ElementIdentifiers, VectorData, VectorIndex
    from pynwb.misc import Units

    units = build.rows.table("units")
    n = units.num_rows
    unit_ids = units.column("unit_id").to_numpy() if n else np.array([], np.int64)
    counts = units.column("spike_count").to_numpy() if n else np.array([], np.int64)
    if n > 1 and bool(np.any(np.diff(unit_ids) <= 0)):
        msg = "units.unit_id is not unique"
        raise build.rows.inconsistent(msg)
    ends = np.cumsum(counts, dtype=np.int64)
    columns: list[Any] = _spike_columns(build, unit_ids, counts, ends)
    region = _regions(build, units, electrodes)
    if electrodes is not None and n:
        rows, region_ends = region
        data = DynamicTableRegion(
            name="electrodes",
            description="electrodes of the unit (its peak channel first)",
            data=rows,
            table=electrodes.table,
        )
        columns += [data, VectorIndex(name="electrodes_index", data=region_ends, target=data)]
    probe = units.column("probe") if n else pa.array([], pa.string())
    with_group = n and not probe.null_count
    if with_group:
        unknown = sorted(set(probe.to_pylist()) - set(probes.groups))
        if unknown:
            msg = f"units name probes that are not in probes: {unknown[:5]}"
            raise build.rows.inconsistent(msg)
        groups = [probes.groups[p] for p in probe.to_pylist()]
        columns.append(
            VectorData(name="electrode_group", description="probe of the unit", data=groups)
        )
    path_a = (
        bool(n) and has_values(units, "peak_channel_id") and not has_values(units, "electrodes")
    )
    path_a = path_a and not units.column("peak_channel_id").null_count
    if path_a:
        columns += build.columns("units", "peak_channel_id", units.column("peak_channel_id"))
    for column in units.column_names:
        if column not in _DERIVED and has_values(units, column):
            columns += build.columns("units", column, units.column(column))
    waveform_columns, rate = _waveforms(build, units)
    columns += waveform_columns
    _predict_peaks(build, units, electrodes, region, path_a=path_a, with_group=bool(with_group))
    nwbfile.units = Units(
        name="units",
        id=ElementIdentifiers(name="id", data=unit_ids),
        columns=columns,
        description="sorted units, exported from an nplake lake",
        electrode_table=electrodes.table if electrodes is not None and n else None,
        waveform_rate=rate,
        resolution=_resolution(build),
    )


def _resolution(build: Build) -> float | None:
    """One sample of the fastest probe clock, when every probe's sampling rate is known."""
    probes = build.rows.table("probes")
    if not probes.num_rows or "sampling_rate" not in probes.column_names:
        return None
    rates = probes.column("sampling_rate")
    if rates.null_count:
        return None
    fastest = float(pc.max(rates).as_py())
    return 1.0 / fastest if fastest > 0 and np.isfinite(fastest) else None


# -------------------------------------------------------------------------------------- spikes
def _spike_columns(build: Build, unit_ids, counts, ends) -> list[Any]:
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.common import VectorData, VectorIndex

    spikes = build.rows.spikes
    total = int(ends[-1]) if len(ends) else 0
    n_files = spikes.num_rows if spikes is not None else 0
    if n_files != total:
        msg = f"{n_files} spikes, but units.spike_count sums to {total}"
        raise build.rows.inconsistent(msg)
    if spikes is None:
        times = VectorData(
            name="spike_times", description="spike times (s)", data=np.array([], np.float64)
        )
        return [times, VectorIndex(name="spike_times_index", data=ends, target=times)]
    check = SpikeCheck(build.rows, unit_ids, counts)
    chunk = (min(CHUNK_VALUES, total),)
    times = VectorData(
        name="spike_times",
        description="spike times in seconds on the session's master clock",
        data=H5DataIO(SpikeChunks(spikes, "time", check), chunks=chunk),
    )
    # hdmf drops iterator-backed columns from its length check when it meets them: each index
    # must come before its data, or hdmf reports the index's target as missing
    columns = [VectorIndex(name="spike_times_index", data=ends, target=times), times]
    if spikes.amplitudes != "none":
        amplitudes = VectorData(
            name="spike_amplitudes",
            description="amplitude of each spike, as the source reported it",
            data=H5DataIO(SpikeChunks(spikes, "amplitude", None), chunks=chunk),
        )
        index = VectorIndex(name="spike_amplitudes_index", data=ends, target=amplitudes)
        columns += [index, amplitudes]
    return columns


def _chunk_iterator_base() -> type:
    from hdmf.data_utils import AbstractDataChunkIterator

    return AbstractDataChunkIterator


class SpikeChunks(_chunk_iterator_base()):
    """One spikes column, streamed from the lake's Parquet files in CHUNK_VALUES pieces."""

    def __init__(self, spikes: SpikeFiles, column: str, check: SpikeCheck | None) -> None:
        self._n = spikes.num_rows
        self._column = column
        self._pieces = _pieces(spikes, column, check)
        self._written = 0

    def __iter__(self) -> SpikeChunks:
        """The iterator itself."""
        return self

    def __next__(self) -> Any:
        """The next DataChunk (hdmf writes it into its selection)."""
        from hdmf.data_utils import DataChunk

        data = next(self._pieces)
        start = self._written
        self._written += len(data)
        return DataChunk(data=data, selection=np.s_[start : self._written])

    def recommended_chunk_shape(self) -> tuple[int, ...]:
        """HDF5 chunks of CHUNK_VALUES values."""
        return (min(CHUNK_VALUES, max(self._n, 1)),)

    def recommended_data_shape(self) -> tuple[int, ...]:
        """The final shape: one value per spike."""
        return (self._n,)

    @property
    def dtype(self) -> np.dtype:
        """float64, as in the lake."""
        return np.dtype(np.float64)

    @property
    def maxshape(self) -> tuple[int, ...]:
        """The dataset never grows past one value per spike."""
        return (self._n,)


def _pieces(spikes: SpikeFiles, column: str, check: SpikeCheck | None) -> Iterator[np.ndarray]:
    """The column as arrays of exactly CHUNK_VALUES values (the last one shorter)."""
    names = ["unit_id", "time"] if check is not None else [column]
    pending: list[np.ndarray] = []
    size = 0
    total = 0
    for batch in spikes.batches(names):
        values = batch.column(names.index(column))
        if check is not None:
            check.batch(batch.column(0).to_numpy(), values.to_numpy())
        if values.null_count:
            values = pc.fill_null(values, float("nan"))
        array = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        total += len(array)
        pending.append(array)
        size += len(array)
        while size >= CHUNK_VALUES:
            joined = pending[0] if len(pending) == 1 else np.concatenate(pending)
            yield joined[:CHUNK_VALUES]
            rest = joined[CHUNK_VALUES:]
            pending, size = ([rest] if len(rest) else []), len(rest)
    if size:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)
    if check is not None:
        check.finish()
    if total != spikes.num_rows:
        msg = f"spikes files changed while being read ({total} of {spikes.num_rows} values)"
        raise check.rows.inconsistent(msg) if check is not None else RuntimeError(msg)


# ------------------------------------------------------------------------------ peak channels
def _regions(build: Build, units: pa.Table, electrodes: Electrodes | None):
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
            raise build.rows.inconsistent(msg)
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


def _predict_peaks(build: Build, units, electrodes, region, *, path_a: bool, with_group: bool):
    """Probe, peak channel and electrode id the decoder will derive; misses go to the module."""
    n = units.num_rows
    if not n:
        return
    rows_flat, ends = region
    if electrodes is not None and len(electrodes.ids):
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
    predicted = {"probe": probe, "peak_channel": peak, "peak_channel_id": ids}
    if path_a:
        predicted["peak_channel_id"] = units.column("peak_channel_id").combine_chunks()
    if with_group:
        predicted["probe"] = units.column("probe").combine_chunks()
    columns = {
        c: units.column(c).combine_chunks()
        for c, values in predicted.items()
        if not same_values(units.column(c).combine_chunks(), values)
    }
    if has_values(units, "electrodes"):
        counts = np.diff(ends, prepend=0)
        if not (counts > 1).any():  # the decoder lists electrodes only when a unit has several
            columns["electrodes"] = units.column("electrodes").combine_chunks()
    if columns:
        build.add_module_columns("units", "unit_id", columns)


# ---------------------------------------------------------------------------------- waveforms
def _waveforms(build: Build, units: pa.Table) -> tuple[list[Any], float | None]:
    """waveform_mean/sd units columns and their rate, or the waveforms table in the module."""
    from hdmf.common import VectorData

    wf = build.rows.table("waveforms")
    if not wf.num_rows:
        return [], None
    plan = _waveform_plan(wf, units)
    if plan is None:
        build.module["waveforms"] = wf.select(["unit_id", *_WAVEFORM_COLUMNS])
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
