"""NWB electrode groups and electrodes -> the lake's probes and channels tables.

Probes are the electrode groups of `/general/extracellular_ephys`, with Allen `ndx-aibs-ecephys`
attributes (`probe_id`, `sampling_rate`, `lfp_sampling_rate`, `has_lfp_data`) read from the
group and/or its EcephysProbe device. Channels are the rows of its `electrodes` table: Allen
`local_index` is the channel, else the electrode's rank within its group in table order.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import pyarrow as pa

from ingest._hdf5 import as_text, text_array
from ingest.nwb.mapping import ELECTRODE_COLUMNS, PROBE_POSITIONS
from ingest.nwb.tables import (
    NWBContext,
    move_reserved,
    object_name,
    read_table,
    reference_names,
    rename_columns,
    set_column,
)
from schemas import rows_table

#: Attributes that are HDF5/NWB bookkeeping, not probe metadata.
_BOOKKEEPING = frozenset({"namespace", "neurodata_type", "object_id", "help"})
#: Probe columns Allen stores on the electrode group and/or its EcephysProbe device, and the
#: Python types they may have.
_ALLEN_PROBE: dict[str, tuple[type, ...]] = {
    "probe_id": (int,),
    "sampling_rate": (int, float),
    "lfp_sampling_rate": (int, float),
    "has_lfp_data": (bool, int),
}


@dataclass(frozen=True)
class Electrodes:
    """The electrodes table, in file row order, plus the lake channels table built from it."""

    ids: np.ndarray
    probe: np.ndarray
    channel: np.ndarray
    table: pa.Table


def probes_table(ctx: NWBContext) -> pa.Table | None:
    """One row per electrode group, or None when the file has none."""
    root = ctx.fh.get("general/extracellular_ephys")
    if not isinstance(root, h5py.Group):
        return None
    rows = [
        _probe_row(ctx, name, root[name])
        for name in root
        if name != "electrodes" and isinstance(root.get(name), h5py.Group)
    ]
    if not rows:
        return None
    for row in rows:
        row["session_id"] = ctx.session_id
    return rows_table("probes", _uniform_extras(rows))


def _probe_row(ctx: NWBContext, name: str, group: h5py.Group) -> dict:
    attrs = scalar_attrs(group)
    device_name, device = _device(ctx, group)
    row = {
        "probe": name,
        "device": device_name,
        "description": _text(attrs.pop("description", None)),
        "location": _text(attrs.pop("location", None)),
        "manufacturer": _text(device.get("manufacturer")),
        "model": _text(device.get("model_name", device.get("model_number"))),
        "serial_number": _text(device.get("serial_number")),
    }
    for key, kinds in _ALLEN_PROBE.items():
        value = attrs.pop(key, device.get(key))
        if value is not None and (not isinstance(value, kinds) or isinstance(value, str)):
            ctx.note(f"probe {name}: {key} {value!r} is not a number; kept as {key}_source")
            attrs[f"{key}_source"] = str(value)
            value = None
        row[key] = value
    if device.get("description") is not None:
        row["device_description"] = _text(device["description"])
    row.update({k: v for k, v in attrs.items() if k not in row})
    return row


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _device(ctx: NWBContext, group: h5py.Group) -> tuple[str | None, dict]:
    """Name and scalar attributes of the device an electrode group links to."""
    link = group.get("device", getlink=True)
    if isinstance(link, h5py.SoftLink | h5py.ExternalLink):
        target = group.get("device") if isinstance(link, h5py.SoftLink) else None
        name = link.path.rstrip("/").rsplit("/", 1)[-1]
    elif link is not None:
        target = group.get("device")
        name = object_name(target)
    else:
        ref = group.attrs.get("device")
        target = ctx.fh[ref] if isinstance(ref, h5py.Reference) and ref else None
        name = object_name(target)
    attrs = scalar_attrs(target) if isinstance(target, h5py.Group) else {}
    if isinstance(target, h5py.Group):
        attrs = {**_device_model(target), **attrs}
    return name, attrs


def _device_model(device: h5py.Group) -> dict:
    """Manufacturer and model of the DeviceModel a device links to (NWB >= 2.9), if any.

    The model's name is its model name; the device's own (deprecated) attributes win.
    """
    try:
        link = device.get("model", getlink=True)
        model = device.get("model")
    except (KeyError, OSError):  # a dangling link
        return {}
    if not isinstance(model, h5py.Group):
        return {}
    attrs = scalar_attrs(model)
    name = link.path if isinstance(link, h5py.SoftLink) else model.name
    found = {"model_name": name.rstrip("/").rsplit("/", 1)[-1]}
    for key in ("manufacturer", "model_number"):
        if attrs.get(key) is not None:
            found[key] = attrs[key]
    return found


def scalar_attrs(obj: h5py.HLObject) -> dict:
    """Scalar attributes of an HDF5 object as Python values (text decoded; others skipped)."""
    out = {}
    for name in obj.attrs:
        key = as_text(name)  # a damaged name comes back as bytes
        if key in _BOOKKEEPING:
            continue
        value = obj.attrs[name]
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(-1)[0]
        if isinstance(value, str | np.str_):
            # h5py decodes attribute text with surrogate escapes; undo them (latin-1 fallback).
            out[key] = as_text(str(value).encode("utf-8", "surrogateescape"))
        elif isinstance(value, bytes | np.bytes_):
            out[key] = as_text(value)
        elif isinstance(value, np.bool_ | np.integer | np.floating):
            out[key] = value.item()
        elif isinstance(value, bool | int | float):
            out[key] = value
    return out


def _uniform_extras(rows: list[dict]) -> list[dict]:
    """Make each key's values one Arrow type across rows (mixed kinds become text)."""
    keys = dict.fromkeys(k for r in rows for k in r)
    for key in keys:
        kinds = {type(r[key]) for r in rows if r.get(key) is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            for r in rows:
                if r.get(key) is not None:
                    r[key] = str(r[key])
    return rows


# --- channels ---------------------------------------------------------------------------------


def electrodes(ctx: NWBContext) -> Electrodes | None:
    """The electrodes table mapped to lake channels, or None when the file has none."""
    group = ctx.fh.get("general/extracellular_ephys/electrodes")
    if not isinstance(group, h5py.Group):
        return None
    label = "general/extracellular_ephys/electrodes"
    data = read_table(ctx, group, skip=("group", "group_name"), label=label)
    with ctx.reading(f"{label}/group"):
        probe, group_names = _electrode_probes(ctx, group, len(data.ids))
    table = move_reserved(ctx, data.table, ("session_id", "probe", "channel_id"), label)
    if "local_index" not in table.column_names:
        table = move_reserved(ctx, table, ("channel",), label)
    if "probe_horizontal_position" not in table.column_names:
        table = rename_columns(table, PROBE_POSITIONS)
    table = rename_columns(table, ELECTRODE_COLUMNS)
    if "channel" in table.column_names:
        channel = table.column("channel").to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        channel = rank_within(probe)
    table = set_column(table, "channel", pa.array(channel), "Channel index on its probe")
    table = set_column(table, "channel_id", pa.array(data.ids), "NWB electrodes id")
    table = set_column(table, "probe", pa.array(probe.tolist(), pa.string()), "Electrode group")
    if group_names is not None:
        table = set_column(table, "group_name", group_names, "group_name as the file wrote it")
    return Electrodes(ids=data.ids, probe=probe, channel=channel, table=table)


def _electrode_probes(
    ctx: NWBContext, group: h5py.Group, n: int
) -> tuple[np.ndarray, pa.Array | None]:
    """Each electrode's group name; also `group_name` when it disagrees with the references.

    The `group` object reference is authoritative; `group_name` is a copy that some files get
    wrong (DANDI 000207 names every electrode 'micros' while its 19 groups are distinct).
    """
    names = None
    stored = group.get("group_name")
    if isinstance(stored, h5py.Dataset) and stored.shape == (n,):
        names = np.array(text_array(stored[()]), dtype=object)
    elif stored is not None:
        ctx.note(f"electrodes/group_name is not one name per electrode ({n}); ignored")
    refs = group.get("group")
    if isinstance(refs, h5py.Dataset) and h5py.check_dtype(ref=refs.dtype) is not None:
        resolved = np.array(reference_names(ctx, refs), dtype=object)
        if len(resolved) == n and all(r is not None for r in resolved):
            if names is not None and not np.array_equal(names, resolved):
                ctx.note(
                    "electrodes: group_name disagrees with the group references; probe "
                    "from the references, group_name kept as a column"
                )
                return resolved, pa.array(names.tolist(), pa.string())
            return resolved, None
    if names is not None and len(names) == n:
        return names, None
    ctx.note("electrodes: no electrode group per electrode; probe set to 'unknown'")
    return np.array(["unknown"] * n, dtype=object), None


def rank_within(groups: np.ndarray) -> np.ndarray:
    """0-based rank of each row within its group, in row order (vectorised)."""
    _, codes = np.unique(groups.astype(str), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    first = np.searchsorted(sorted_codes, sorted_codes)
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - first
    return rank
