"""NWB units -> the lake's units, spikes and waveforms tables.

Units keep every column of `/units` (metrics as the file names them; ragged columns as lists)
except spikes, waveforms and electrode links, which become their own tables or derived columns.
A unit's probe and peak channel come from Allen's `peak_channel_id` when present, else from the
first electrode of its `electrodes` region (row indices into the electrodes table); a units
`electrode_group` reference column names the probe directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest._flatten import DEFAULT_CHUNK_SPIKES, h5_spike_source, index_ends
from ingest.nwb.probes import Electrodes
from ingest.nwb.tables import (
    NWBContext,
    move_reserved,
    read_table,
    reference_names,
    row_ids,
    set_column,
)
from schemas import DecodeError, StreamSource

#: Units columns that are not unit metrics: spikes, waveforms and electrode links.
_UNIT_SPECIAL = (
    "spike_times",
    "spike_amplitudes",
    "waveform_mean",
    "waveform_sd",
    "electrodes",
    "electrode_group",
)


@dataclass(frozen=True)
class SpikeIndex:
    """Unit ids and validated END offsets of the spikes, and where times and amplitudes are."""

    ids: np.ndarray
    ends: np.ndarray
    times: str | None
    amplitudes: str | None


def spike_index(ctx: NWBContext, units: h5py.Group) -> SpikeIndex:
    """Read and check unit ids, spike_times_index and spike_amplitudes(_index)."""
    with ctx.reading("units/id"):
        if "id" not in units:
            msg = "units table has no id column"
            raise ctx.error(msg, "units/id")
        ids = row_ids(ctx, units["id"], "units/id")
    with ctx.reading("units/spike_times_index"):
        if "spike_times" not in units:
            ctx.note("units table has no spike_times: no spikes")
            return SpikeIndex(ids, np.zeros(len(ids), dtype=np.int64), None, None)
        times = _vector(ctx, units, "spike_times", _NUMBERS)
        if "spike_times_index" not in units:
            msg = "spike_times has no spike_times_index"
            raise ctx.error(msg, "units/spike_times_index")
        ends = index_ends(
            _vector(ctx, units, "spike_times_index", _INTEGERS)[()],
            len(times),
            len(ids),
            file=ctx.path,
            field="units/spike_times_index",
        )
    with ctx.reading("units/spike_amplitudes_index"):
        amplitudes = _amplitudes(ctx, units, ends)
    return SpikeIndex(ids, ends, "units/spike_times", amplitudes)


#: numpy dtype kinds accepted for spike values (times, amplitudes) and for ragged indices.
_NUMBERS, _INTEGERS = "fiu", "iu"


def _vector(ctx: NWBContext, units: h5py.Group, name: str, kinds: str) -> h5py.Dataset:
    """`units/<name>` if it is a 1-D dataset of one of the dtype `kinds`, else a DecodeError.

    Checked before anything is written: a spike stream that fails part way would leave the
    tables written before it with versions of their own.
    """
    node = units[name]
    field = f"units/{name}"
    problem = None
    if not isinstance(node, h5py.Dataset):
        problem = "is a group, not a dataset"
    elif node.ndim != 1:
        problem = f"has shape {node.shape}; a 1-D dataset is expected"
    elif h5py.check_dtype(ref=node.dtype) is not None:
        problem = _references(units, node)
    elif node.dtype.kind not in kinds:
        wanted = "integers" if kinds == _INTEGERS else "numbers"
        problem = f"holds {node.dtype} values; {wanted} are expected"
    if problem:
        raise ctx.error(problem, field)
    return node


def _references(units: h5py.Group, node: h5py.Dataset) -> str:
    """Why a spike dataset of HDF5 references is refused, saying what the file holds.

    Some MatNWB versions wrote VectorIndex columns as references (region or object) instead of
    the integer end offsets NWB 2.x defines; nplake reads only the NWB 2.x layout.
    """
    kind = "region" if h5py.check_dtype(ref=node.dtype) is h5py.RegionReference else "object"
    target = None
    if len(node):
        try:
            first = node[0]
            target = units.file[first].name if first else None
        except (KeyError, ValueError, OSError, TypeError):
            target = None
    points = f" (the first points to {target})" if target else ""
    return (
        f"holds {len(node)} HDF5 {kind} references{points}, as some MatNWB versions wrote "
        "ragged columns; NWB 2.x stores integer end offsets into the data here, and nplake "
        "reads only that layout: re-export the file with a current MatNWB or with pynwb"
    )


def _amplitudes(ctx: NWBContext, units: h5py.Group, ends: np.ndarray) -> str | None:
    if "spike_amplitudes" not in units:
        return None
    field = "units/spike_amplitudes_index"
    n_values = len(_vector(ctx, units, "spike_amplitudes", _NUMBERS))
    if "spike_amplitudes_index" not in units:
        if n_values != (int(ends[-1]) if len(ends) else 0):
            msg = "no index, and not one amplitude per spike"
            raise ctx.error(msg, field)
        ctx.note("spike_amplitudes has no index; taken as one amplitude per spike")
        return "units/spike_amplitudes"
    stored = _vector(ctx, units, "spike_amplitudes_index", _INTEGERS)[()]
    index = index_ends(stored, n_values, file=ctx.path, field=field)
    if not np.array_equal(index, ends):
        msg = "differs from spike_times_index"
        raise ctx.error(msg, field)
    return "units/spike_amplitudes"


def spikes_source(
    ctx: NWBContext, index: SpikeIndex, chunk_spikes: int = DEFAULT_CHUNK_SPIKES
) -> StreamSource | None:
    """The re-iterable spikes stream of the file (None when it has no spike_times)."""
    if index.times is None:
        return None
    return h5_spike_source(
        ctx.path,
        index.ids,
        index.ends,
        times=index.times,
        amplitudes=index.amplitudes,
        chunk_spikes=chunk_spikes,
    )


def units_table(
    ctx: NWBContext, units: h5py.Group, index: SpikeIndex, elec: Electrodes | None
) -> pa.Table:
    """One row per unit: metrics as the file names them, probe and peak channel derived."""
    data = read_table(ctx, units, skip=_UNIT_SPECIAL, label="units")
    table = move_reserved(
        ctx, data.table, ("session_id", "unit_id", "probe", "peak_channel", "spike_count"), "units"
    )
    table = set_column(table, "unit_id", pa.array(index.ids), "NWB units id")
    counts = np.diff(index.ends, prepend=0)
    table = set_column(table, "spike_count", pa.array(counts), "Spikes of the unit")
    if elec is not None and len(elec.ids):
        table = _peak_channel(ctx, units, table, elec)
    return _electrode_group_probe(ctx, units, table)


def _peak_channel(
    ctx: NWBContext, units: h5py.Group, table: pa.Table, elec: Electrodes
) -> pa.Table:
    """Probe, peak channel and peak electrode id of each unit, from the electrodes table."""
    n = table.num_rows
    if _is_numeric(table, "peak_channel_id"):
        wanted = table.column("peak_channel_id").to_numpy(zero_copy_only=False)
        rows = _lookup(elec.ids, np.nan_to_num(wanted, nan=-1).astype(np.int64))
        multi = None
    else:
        rows, multi = _region_rows(ctx, units, n, elec)
    valid = rows >= 0
    safe = np.where(valid, rows, 0)
    probe = pa.array(elec.probe[safe].tolist(), pa.string(), mask=~valid)
    table = set_column(table, "probe", probe, "Probe of the peak channel")
    channel = pa.array(elec.channel[safe], mask=~valid)
    table = set_column(table, "peak_channel", channel, "Peak channel on its probe")
    if "peak_channel_id" not in table.column_names:
        ids = pa.array(elec.ids[safe], mask=~valid)
        table = set_column(table, "peak_channel_id", ids, "Electrode id of the peak channel")
    if multi is not None:
        table = set_column(table, "electrodes", multi, "Ids of all electrodes of the unit")
    return table


def _is_numeric(table: pa.Table, name: str) -> bool:
    if name not in table.column_names:
        return False
    kind = table.schema.field(name).type
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _region_rows(
    ctx: NWBContext, units: h5py.Group, n: int, elec: Electrodes
) -> tuple[np.ndarray, pa.Array | None]:
    """First electrode row of each unit's `electrodes` region (-1: none), all ids if several."""
    region = units.get("electrodes")
    none = np.full(n, -1, dtype=np.int64)
    if not isinstance(region, h5py.Dataset):
        return none, None
    if region.dtype.kind not in "iu":
        ctx.note(f"units/electrodes holds {region.dtype} values, not row indices; no peak channels")
        return none, None
    with ctx.reading("units/electrodes"):
        rows = np.asarray(region[()]).astype(np.int64).ravel()
        stored = units.get("electrodes_index")
        index = stored[()] if isinstance(stored, h5py.Dataset) else np.arange(1, n + 1)
    try:
        ends = index_ends(index, len(rows), n, file=ctx.path, field="units/electrodes_index")
    except DecodeError as exc:
        ctx.note(f"units/electrodes region unusable ({exc.reason}); no peak channels")
        return none, None
    bad = (rows < 0) | (rows >= len(elec.ids))
    if bad.any():
        ctx.note(f"units/electrodes: {int(bad.sum())} rows point outside the electrodes table")
        rows = np.where(bad, -1, rows)
    if not len(rows):
        return none, None
    counts = np.diff(ends, prepend=0)
    first = np.where(counts > 0, rows[np.minimum(ends - counts, len(rows) - 1)], -1)
    if not (counts > 1).any():
        return first, None
    ids = pa.array(elec.ids[np.maximum(rows, 0)], mask=rows < 0)
    return first, pa.ListArray.from_arrays(pa.array(np.r_[0, ends].astype(np.int32)), ids)


def _lookup(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each wanted key in `keys` (-1 when absent)."""
    if not len(keys):
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    pos = np.minimum(np.searchsorted(keys[order], wanted), len(keys) - 1)
    return np.where(keys[order][pos] == wanted, order[pos], -1)


def _electrode_group_probe(ctx: NWBContext, units: h5py.Group, table: pa.Table) -> pa.Table:
    """Fill `probe` from a units `electrode_group` reference column, where it is present."""
    refs = units.get("electrode_group")
    if not isinstance(refs, h5py.Dataset) or h5py.check_dtype(ref=refs.dtype) is None:
        return table
    with ctx.reading("units/electrode_group"):
        names = pa.array(reference_names(ctx, refs), pa.string())
    if len(names) != table.num_rows:
        ctx.note("units/electrode_group has the wrong length; ignored")
        return table
    if "probe" in table.column_names:
        names = pc.coalesce(names, table.column("probe").combine_chunks())
    return set_column(table, "probe", names, "Electrode group of the unit")


def waveforms_table(ctx: NWBContext, units: h5py.Group, ids: np.ndarray) -> pa.Table | None:
    """Mean (and sd) waveforms per unit, flattened (sample, channel); None when absent."""
    with ctx.reading("units/waveform_mean"):
        mean = _waveform(ctx, units, "waveform_mean", len(ids))
        if mean is None:
            return None
        sd = _waveform(ctx, units, "waveform_sd", len(ids))
        rate = _waveform_rate(units, len(ids))
    values, n_samples, n_channels = mean
    if sd is not None and sd[1:] != (n_samples, n_channels):
        ctx.note("units/waveform_sd has another shape than waveform_mean; dropped")
        sd = None
    n = len(ids)
    return pa.table(
        {
            "unit_id": pa.array(ids),
            "waveform_mean": values,
            "waveform_sd": sd[0] if sd is not None else pa.nulls(n, values.type),
            "n_samples": pa.array(np.full(n, n_samples, dtype=np.int64)),
            "n_channels": pa.array(np.full(n, n_channels, dtype=np.int64)),
            "sampling_rate": pa.array(rate, pa.float64(), from_pandas=True),
        }
    )


def _waveform(ctx: NWBContext, units: h5py.Group, name: str, n_units: int):
    """(list array, samples, channels) of a waveform column, or None (skipped with a note)."""
    ds = units.get(name)
    if not isinstance(ds, h5py.Dataset):
        return None
    if f"{name}_index" in units:
        ctx.note(f"units/{name} is ragged (indexed); waveforms skipped")
        return None
    if ds.ndim not in (2, 3) or ds.shape[0] != n_units:
        ctx.note(f"units/{name} has shape {ds.shape}, not (units, samples[, channels]); skipped")
        return None
    data = np.asarray(ds[()], dtype=np.float32)
    n_samples = data.shape[1]
    n_channels = data.shape[2] if data.ndim == 3 else 1
    width = n_samples * n_channels
    offsets = pa.array(np.arange(0, n_units * width + 1, width, dtype=np.int64))
    values = pa.LargeListArray.from_arrays(offsets, pa.array(data.reshape(-1)))
    return values.cast(pa.list_(pa.float32())), n_samples, n_channels


def _waveform_rate(units: h5py.Group, n_units: int) -> np.ndarray:
    """Waveform sampling rate per unit: waveform_mean attribute, else a units column."""
    rate = units["waveform_mean"].attrs.get("sampling_rate")
    if rate is not None:
        return np.full(n_units, float(np.asarray(rate).reshape(-1)[0]))
    column = units.get("sampling_rate")
    if (
        isinstance(column, h5py.Dataset)
        and column.shape == (n_units,)
        and column.dtype.kind in "iuf"
    ):
        return np.asarray(column[()], dtype=np.float64)
    return np.full(n_units, np.nan)
