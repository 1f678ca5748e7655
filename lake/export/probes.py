"""Export: a Device (with its DeviceModel) and an ElectrodeGroup per probe, and the electrodes.

Probe and channel columns go to their standard NWB homes under the names the decoder reads
(`ingest.nwb.mapping`); what it would read back differently goes into the nplake module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.nwb.mapping import ELECTRODE_COLUMNS, PROBE_POSITIONS
from lake.export.context import ExportContext, free_name, nwb_names, record_renames
from lake.export.values import all_null, has_values, same_values

#: Probes columns with a standard NWB home (electrode group, device, device model).
_PROBE_STANDARD = ("probe", "device", "description", "location")
_DEVICE_COLUMNS = ("manufacturer", "model", "serial_number", "device_description")


@dataclass
class Probes:
    """The electrode groups by lake probe name, and their names in the file."""

    groups: dict[str, Any]
    nwb_name: dict[str, str]


def add_probes(nwbfile: Any, ctx: ExportContext) -> Probes:
    """A Device (with its DeviceModel) per lake device and an ElectrodeGroup per probe."""
    probes = ctx.rows.table("probes")
    if not probes.num_rows:
        return Probes({}, {})
    names = probes.column("probe").to_pylist()
    group_names = nwb_names(names)
    record_renames(ctx, "probes", "probe", names, group_names)
    # one Device per lake device; a probe without one gets its own, named after its group
    devices = _column(probes, "device")
    device_keys = [
        (d, None) if d is not None else (None, n) for d, n in zip(devices, names, strict=True)
    ]
    distinct = list(dict.fromkeys(device_keys))
    wanted = [d if d is not None else group_names[names.index(n)] for d, n in distinct]
    written = nwb_names(wanted)
    record_renames(ctx, "probes", "device", [d for d, _ in distinct], written)
    device_names = dict(zip(distinct, written, strict=True))
    made: dict[str, Any] = {}
    predicted: dict[str, list] = {c: [] for c in ("device", *_DEVICE_COLUMNS)}
    models: dict[str, tuple[str, Any]] = {}
    for i, key in enumerate(device_keys):
        if key not in made:
            made[key] = _device(nwbfile, probes, i, device_names[key], models, ctx)
        device, values = made[key]
        predicted["device"].append(device.name)
        for column in _DEVICE_COLUMNS:
            predicted[column].append(values.get(column))
    groups = {}
    for i, name in enumerate(names):
        groups[name] = nwbfile.create_electrode_group(
            name=group_names[i],
            description=_text(probes, "description", i, ctx),
            location=_text(probes, "location", i, ctx),
            device=made[device_keys[i]][0],
        )
    _probes_module(ctx, probes, predicted, names, group_names)
    return Probes(groups, dict(zip(names, group_names, strict=True)))


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * len(table)


def _text(table: pa.Table, column: str, i: int, ctx: ExportContext) -> str:
    """A required text attribute: the lake value, or '' with the null recorded."""
    value = _column(table, column)[i]
    if value is None:
        ctx.writer.fix_nulls("probes", column, np.array([i]))
        return ""
    return str(value)


def _device(nwbfile: Any, probes: pa.Table, i: int, name: str, models: dict, ctx: ExportContext):
    """The Device of probe row `i` and the device values the decoder will read from it."""
    values = {c: _column(probes, c)[i] for c in _DEVICE_COLUMNS}
    kwargs: dict[str, Any] = {"name": name}
    if values["device_description"] is not None:
        kwargs["description"] = str(values["device_description"])
    if values["serial_number"] is not None:
        kwargs["serial_number"] = str(values["serial_number"])
    manufacturer, model = values["manufacturer"], values["model"]
    read_back: dict[str, Any] = {
        "serial_number": values["serial_number"],
        "device_description": values["device_description"],
    }
    if manufacturer is not None and model is not None:
        key = f"{model}\0{manufacturer}"
        if key not in models:
            taken = {m[0] for m in models.values()}
            model_name = free_name(str(model), taken, default="model")
            models[key] = (
                model_name,
                nwbfile.create_device_model(name=model_name, manufacturer=str(manufacturer)),
            )
        kwargs["model"] = models[key][1]
        read_back.update(manufacturer=manufacturer, model=models[key][0])
    return nwbfile.create_device(**kwargs), read_back


def _probes_module(
    ctx: ExportContext, probes: pa.Table, predicted: dict, names, group_names
) -> None:
    """Probes columns with no NWB home, and device columns the file cannot carry as they are."""
    columns: dict[str, pa.Array] = {}
    for column in probes.column_names:
        values = probes.column(column).combine_chunks()
        if column in _PROBE_STANDARD or column in _DEVICE_COLUMNS:
            continue
        if not all_null(values):
            columns[column] = values
    device = pa.array(predicted["device"], pa.string())
    renamed = {r.nwb_value: r.lake_value for r in ctx.renames if r.column == "device"}
    device = pa.array([renamed.get(d, d) for d in device.to_pylist()], pa.string())
    lake_device = pa.array(_column(probes, "device"), pa.string())
    if not same_values(lake_device, device):
        columns["device"] = lake_device
    for column in _DEVICE_COLUMNS:
        lake = pa.array(_column(probes, column), pa.string())
        if not same_values(lake, pa.array(predicted[column], pa.string())):
            columns[column] = lake
    if columns:
        ctx.add_module_columns("probes", "probe", columns)


# --------------------------------------------------------------------------------- electrodes
@dataclass
class Electrodes:
    """The electrodes table written: its rows' NWB ids, probes (lake names) and channels."""

    table: Any
    ids: np.ndarray
    probe: np.ndarray
    channel: np.ndarray


def add_electrodes(nwbfile: Any, ctx: ExportContext, probes: Probes) -> Electrodes | None:
    """The electrodes table: one row per lake channel, in lake order."""
    from hdmf.common import ElementIdentifiers, VectorData
    from pynwb.ecephys import ElectrodesTable

    channels = ctx.rows.table("channels")
    if not channels.num_rows:
        return None
    probe = np.array(channels.column("probe").to_pylist(), dtype=object)
    unknown = sorted(set(probe) - set(probes.groups))
    if unknown:
        msg = f"channels name probes that are not in probes: {unknown[:5]}"
        raise ctx.rows.inconsistent(msg)
    ids = _electrode_ids(ctx, channels)
    group = VectorData(
        name="group",
        description="electrode group (probe) of the channel",
        data=[probes.groups[p] for p in probe],
    )
    columns = [group]
    if has_values(channels, "group_name"):
        columns += ctx.columns(
            "channels", "group_name", channels.column("group_name"), path=_ELECTRODES
        )
    else:
        names = np.array([probes.nwb_name[p] for p in probe], dtype=object)  # not a list:
        # hdmf converts list items one by one
        columns.append(VectorData(name="group_name", description="electrode group", data=names))
    columns += _renamed_columns(ctx, channels)
    done = {
        "probe",
        "channel_id",
        "group_name",
        *PROBE_POSITIONS.values(),
        *ELECTRODE_COLUMNS.values(),
        *ELECTRODE_COLUMNS,
    }
    for column in channels.column_names:
        if column not in done and has_values(channels, column):
            columns += ctx.columns("channels", column, channels.column(column), path=_ELECTRODES)
    table = ElectrodesTable(id=ElementIdentifiers(name="id", data=ids), columns=columns)
    nwbfile.electrodes = table
    _groups_after_write(ctx, group, [probes.nwb_name[p] for p in probe])
    channel = channels.column("channel").to_numpy()
    return Electrodes(table, ids, probe, channel)


def _groups_after_write(ctx: ExportContext, group: Any, names: list[str]) -> None:
    """Let pynwb write the first row of the `group` column, and h5py the others.

    hdmf resolves every row's reference to its electrode group one by one (~0.1 ms each:
    ~0.2 s for 2,304 channels); pynwb writes a resizable column holding the first row's
    reference, and once the file is written `fill_groups` stores all rows (one reference per
    group, looked up once).
    """
    from hdmf.backends.hdf5 import H5DataIO

    n = len(names)
    if n < 2:
        return
    first = list(group.data[:1])
    group.transform(lambda _: H5DataIO(data=first, maxshape=(None,), chunks=(n,)))
    ctx.after_write.append(lambda fh: fill_groups(fh, names))


#: Where NWB keeps the electrodes table.
ELECTRODES = "general/extracellular_ephys/electrodes"
_ELECTRODES = f"/{ELECTRODES}"


def fill_groups(fh: Any, names: list[str]) -> None:
    """Write every row of `electrodes/group`: a reference to the electrode group `names[i]`."""
    import h5py

    column = fh[f"{ELECTRODES}/group"]
    if column.shape == (len(names),):  # pynwb wrote every row itself
        return
    first = fh[column[0]]
    if column.shape != (1,) or first.name.rsplit("/", 1)[-1] != names[0]:
        msg = f"electrodes/group: unexpected column {column.shape} -> {first.name}"
        raise RuntimeError(msg)
    folder = first.parent  # the electrode groups' folder
    distinct, rows = np.unique(np.array(names, dtype=object), return_inverse=True)
    refs = np.array([folder[name].ref for name in distinct], dtype=h5py.ref_dtype)
    column.resize((len(names),))
    column[:] = refs[rows]


def _electrode_ids(ctx: ExportContext, channels: pa.Table) -> np.ndarray:
    """NWB ids: the lake's channel ids, new ones where those are null (recorded as nulls)."""
    ids = channels.column("channel_id")
    if not ids.null_count:
        return ids.to_numpy()
    null = ids.is_null().to_numpy(zero_copy_only=False)
    known = ids.combine_chunks().drop_null().to_numpy()
    start = int(known.max()) + 1 if len(known) else 0
    out = np.zeros(len(null), dtype=np.int64)
    out[~null] = known
    out[null] = np.arange(start, start + int(null.sum()))
    ctx.writer.fix_nulls("channels", "channel_id", np.flatnonzero(null))
    return out


def _renamed_columns(ctx: ExportContext, channels: pa.Table) -> list:
    """Columns the decoder renames (x -> ccf_ap, ...): written under their NWB names."""
    columns = []
    for nwb, lake in ELECTRODE_COLUMNS.items():
        if has_values(channels, nwb):  # the source had both: each keeps its own name
            columns += ctx.columns("channels", nwb, channels.column(nwb), path=_ELECTRODES)
            columns += ctx.columns("channels", lake, channels.column(lake), path=_ELECTRODES)
        elif nwb == "local_index" and _rank_is_channel(ctx, channels):
            continue  # the source had no local_index: the decoder ranks channels again
        elif has_values(channels, lake) or nwb in ("location", "local_index"):
            values = channels.column(lake)
            columns += ctx.columns("channels", lake, values, nwb_name=nwb, path=_ELECTRODES)
    for lake in PROBE_POSITIONS.values():
        if has_values(channels, lake):
            columns += ctx.columns("channels", lake, channels.column(lake), path=_ELECTRODES)
    if not has_values(channels, "probe_horizontal_position") and any(
        has_values(channels, nwb) for nwb in PROBE_POSITIONS
    ):  # written (null) so that the decoder does not take rel_x/rel_y as probe positions
        values = channels.column("probe_horizontal_position")
        columns += ctx.columns("channels", "probe_horizontal_position", values, path=_ELECTRODES)
    return columns


def _rank_is_channel(ctx: ExportContext, channels: pa.Table) -> bool:
    """Whether an NWB source had no local_index and its channels are their rank in the probe.

    The decoder numbers such channels by their rank within their probe, in table order; the
    export then leaves local_index out, as the source did.
    """
    described = ctx.rows.table("descriptions").num_rows > 0
    if not described or ctx.source_layout(_ELECTRODES, "local_index") is not None:
        return False
    from ingest.nwb.probes import rank_within

    probe = np.array(channels.column("probe").to_pylist(), dtype=object)
    channel = channels.column("channel").to_numpy(zero_copy_only=False)
    return bool(np.array_equal(rank_within(probe), channel))
