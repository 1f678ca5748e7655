"""Export: the NWBFile with session and subject metadata, devices, electrode groups, electrodes.

Each lake column goes to its standard NWB home where NWB has one, written so that the NWB
decoder reads back the lake value; what it would read back differently (or cannot find) goes
into the nplake module (see docs/export.md).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.nwb import age_in_days
from ingest.nwb.mapping import ELECTRODE_COLUMNS, GENERAL_TEXT, PROBE_POSITIONS, TASK_TABLES
from lake._nwb_common import (
    Build,
    all_null,
    has_values,
    nwb_names,
    record_renames,
    same_values,
)

#: Sessions columns describing where rows came from: not exported, allowed to differ on
#: re-ingest (the source of a re-ingest is the exported file).
PROVENANCE = (
    "nwb_version",
    "source_kind",
    "source_uri",
    "decoder_version",
    "decoder_options",
    "source_hash",
    "pipeline_version",
    "ingest_id",
    "ingested_at",
)
#: Probes columns with a standard NWB home (electrode group, device, device model).
_PROBE_STANDARD = ("probe", "device", "description", "location")
_DEVICE_COLUMNS = ("manufacturer", "model", "serial_number", "device_description")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_SEXES = {"M": "M", "F": "F", "O": "O", "U": "U"}
#: The age a file states when the lake knows neither age nor birth date: "0 days or older".
UNKNOWN_AGE = "P0D/"
_ISO_DURATION = re.compile(
    r"P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?"
)


def new_nwbfile(build: Build, counts: dict[str, int]) -> Any:
    """The NWBFile with session and subject metadata; the sessions row of the module.

    NWB (and DANDI, through nwbinspector) require some values the lake may not have: an
    identifier, a description, a start time, a subject with an id, a sex in M/F/O/U and an age
    or birth date. The file then gets a stand-in ('unknown', 'U', the open age range 'P0D/',
    ...) and the module records that the lake value is null, or holds the lake value.
    """
    from pynwb import NWBFile
    from pynwb.file import Subject

    s = build.rows.session
    sid = build.session_id
    nulls: list[str] = []
    overlay: dict[str, Any] = {}

    def stand_in(column: str, value: Any) -> Any:
        if s.get(column) is None:
            nulls.append(column)
            return value
        return s[column]

    kwargs: dict[str, Any] = {
        "session_description": stand_in("session_description", ""),
        "identifier": stand_in("identifier", sid),
        "session_start_time": _utc(stand_in("session_start_time", _EPOCH)),
    }
    if s.get("nwb_session_id") is not None:  # the lake's own id travels in the nplake module
        kwargs["session_id"] = s["nwb_session_id"]
    if s.get("experimenter") is not None:
        kwargs["experimenter"] = list(s["experimenter"])
    kwargs.update({k: s[k] for k in GENERAL_TEXT if s.get(k) is not None})
    if s.get("session_type") is not None:
        kwargs["stimulus_notes"] = s["session_type"]
    if s.get("rig") is not None:
        kwargs["data_collection"] = f"rig: {s['rig']}"
    subject = {k: s[k] for k in ("species", "genotype", "strain") if s.get(k) is not None}
    subject["subject_id"] = stand_in("subject_id", "unknown")
    subject["sex"] = _sex(s.get("sex"), nulls, overlay)
    dob = _utc(s.get("date_of_birth"))
    if dob is not None:
        subject["date_of_birth"] = dob
    age = _age(s.get("age"), dob, nulls, overlay)
    if age is not None:
        subject["age"] = age
    kwargs["subject"] = Subject(**subject)
    nwbfile = NWBFile(**kwargs)
    written_age = age_in_days(age, dob, _utc(s.get("session_start_time")))
    build.module["sessions"] = _session_module(build, counts, written_age, overlay)
    for column in nulls:
        build.writer.fix_nulls("sessions", column, np.array([0]))
    return nwbfile


def _sex(value: str | None, nulls: list[str], overlay: dict) -> str:
    """Subject sex as DANDI wants it (M, F, O, U); other lake values go to the module."""
    if value is None:
        nulls.append("sex")
        return "U"
    if value in _SEXES:
        return value
    overlay["sex"] = value
    return _SEXES.get(value.strip().upper()[:1], "U")


def _age(value: str | None, dob: dt.datetime | None, nulls: list[str], overlay: dict):
    """Subject age when it is an ISO-8601 duration (or range); else 'P0D/' (unknown) or none.

    DANDI needs an age or a birth date. Without both, the file says 'P0D/' (an open range,
    "0 days or older") and the module records the lake's null; an age the standard form cannot
    hold goes to the module.
    """
    if value is not None and _valid_age(value):
        return value
    if value is not None:
        overlay["age"] = value
    elif dob is None:
        nulls.append("age")
    return None if dob is not None else UNKNOWN_AGE


def _valid_age(value: str) -> bool:
    parts = value.split("/")
    if len(parts) == 1:
        return bool(_ISO_DURATION.fullmatch(value))
    return len(parts) == 2 and all(not p or _ISO_DURATION.fullmatch(p) for p in parts)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _session_module(build: Build, counts: dict[str, int], age_days, overlay: dict) -> pa.Table:
    """session_id, rig, notes, and every column the decoder would otherwise read differently."""
    s = build.rows.session
    predicted = {
        "has_ephys": counts.get("units", 0) > 0,
        "has_task": any(counts.get(t, 0) > 0 for t in TASK_TABLES),
        "has_sync": False,
        "age_in_days": age_days,
    }
    columns: dict[str, pa.Array] = {"session_id": pa.array([build.session_id], pa.string())}
    for column in ("rig", "notes"):
        if s.get(column) is not None:
            columns[column] = pa.array([s[column]], pa.string())
    for column, value in overlay.items():
        columns[column] = pa.array([value], pa.string())
    for column, value in predicted.items():
        kind = pa.float64() if column == "age_in_days" else pa.bool_()
        lake = pa.array([s.get(column)], kind)
        if not same_values(lake, pa.array([value], kind)):
            columns[column] = lake
    return pa.table(columns)


# ------------------------------------------------------------------------------------- probes
@dataclass
class Probes:
    """The electrode groups by lake probe name, and their names in the file."""

    groups: dict[str, Any]
    nwb_name: dict[str, str]


def add_probes(nwbfile: Any, build: Build) -> Probes:
    """A Device (with its DeviceModel) per lake device and an ElectrodeGroup per probe."""
    probes = build.rows.table("probes")
    if not probes.num_rows:
        return Probes({}, {})
    names = probes.column("probe").to_pylist()
    group_names = nwb_names(names)
    record_renames(build, "probes", "probe", names, group_names)
    # one Device per lake device; a probe without one gets its own, named after its group
    devices = _column(probes, "device")
    device_keys = [
        (d, None) if d is not None else (None, n) for d, n in zip(devices, names, strict=True)
    ]
    distinct = list(dict.fromkeys(device_keys))
    wanted = [d if d is not None else group_names[names.index(n)] for d, n in distinct]
    written = nwb_names(wanted)
    record_renames(build, "probes", "device", [d for d, _ in distinct], written)
    device_names = dict(zip(distinct, written, strict=True))
    made: dict[str, Any] = {}
    predicted: dict[str, list] = {c: [] for c in ("device", *_DEVICE_COLUMNS)}
    models: dict[str, tuple[str, Any]] = {}
    for i, key in enumerate(device_keys):
        if key not in made:
            made[key] = _device(nwbfile, probes, i, device_names[key], models, build)
        device, values = made[key]
        predicted["device"].append(device.name)
        for column in _DEVICE_COLUMNS:
            predicted[column].append(values.get(column))
    groups = {}
    for i, name in enumerate(names):
        groups[name] = nwbfile.create_electrode_group(
            name=group_names[i],
            description=_text(probes, "description", i, build),
            location=_text(probes, "location", i, build),
            device=made[device_keys[i]][0],
        )
    _probes_module(build, probes, predicted, names, group_names)
    return Probes(groups, dict(zip(names, group_names, strict=True)))


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * len(table)


def _text(table: pa.Table, column: str, i: int, build: Build) -> str:
    """A required text attribute: the lake value, or '' with the null recorded."""
    value = _column(table, column)[i]
    if value is None:
        build.writer.fix_nulls("probes", column, np.array([i]))
        return ""
    return str(value)


def _device(nwbfile: Any, probes: pa.Table, i: int, name: str, models: dict, build: Build):
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
            model_name = _free_name(str(model), taken)
            models[key] = (
                model_name,
                nwbfile.create_device_model(name=model_name, manufacturer=str(manufacturer)),
            )
        kwargs["model"] = models[key][1]
        read_back.update(manufacturer=manufacturer, model=models[key][0])
    return nwbfile.create_device(**kwargs), read_back


def _free_name(value: str, taken: set[str]) -> str:
    base = re.sub(r"[/:\\]", "_", value) or "model"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def _probes_module(build: Build, probes: pa.Table, predicted: dict, names, group_names) -> None:
    """Probes columns with no NWB home, and device columns the file cannot carry as they are."""
    columns: dict[str, pa.Array] = {}
    for column in probes.column_names:
        values = probes.column(column).combine_chunks()
        if column in _PROBE_STANDARD or column in _DEVICE_COLUMNS:
            continue
        if not all_null(values):
            columns[column] = values
    device = pa.array(predicted["device"], pa.string())
    renamed = {r.nwb_value: r.lake_value for r in build.renames if r.column == "device"}
    device = pa.array([renamed.get(d, d) for d in device.to_pylist()], pa.string())
    lake_device = pa.array(_column(probes, "device"), pa.string())
    if not same_values(lake_device, device):
        columns["device"] = lake_device
    for column in _DEVICE_COLUMNS:
        lake = pa.array(_column(probes, column), pa.string())
        if not same_values(lake, pa.array(predicted[column], pa.string())):
            columns[column] = lake
    if columns:
        build.add_module_columns("probes", "probe", columns)


# --------------------------------------------------------------------------------- electrodes
@dataclass
class Electrodes:
    """The electrodes table written: its rows' NWB ids, probes (lake names) and channels."""

    table: Any
    ids: np.ndarray
    probe: np.ndarray
    channel: np.ndarray


def add_electrodes(nwbfile: Any, build: Build, probes: Probes) -> Electrodes | None:
    """The electrodes table: one row per lake channel, in lake order."""
    from hdmf.common import ElementIdentifiers, VectorData
    from pynwb.ecephys import ElectrodesTable

    channels = build.rows.table("channels")
    if not channels.num_rows:
        return None
    probe = np.array(channels.column("probe").to_pylist(), dtype=object)
    unknown = sorted(set(probe) - set(probes.groups))
    if unknown:
        msg = f"channels name probes that are not in probes: {unknown[:5]}"
        raise build.rows.inconsistent(msg)
    ids = _electrode_ids(build, channels)
    group = VectorData(
        name="group",
        description="electrode group (probe) of the channel",
        data=[probes.groups[p] for p in probe],
    )
    columns = [group]
    if has_values(channels, "group_name"):
        columns += build.columns("channels", "group_name", channels.column("group_name"))
    else:
        names = np.array([probes.nwb_name[p] for p in probe], dtype=object)  # not a list:
        # hdmf converts list items one by one
        columns.append(VectorData(name="group_name", description="electrode group", data=names))
    columns += _renamed_columns(build, channels)
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
            columns += build.columns("channels", column, channels.column(column))
    table = ElectrodesTable(id=ElementIdentifiers(name="id", data=ids), columns=columns)
    nwbfile.electrodes = table
    _groups_after_write(build, group, [probes.nwb_name[p] for p in probe])
    channel = channels.column("channel").to_numpy()
    return Electrodes(table, ids, probe, channel)


def _groups_after_write(build: Build, group: Any, names: list[str]) -> None:
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
    build.after_write.append(lambda fh: fill_groups(fh, names))


#: Where NWB keeps the electrodes table.
ELECTRODES = "general/extracellular_ephys/electrodes"


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


def _electrode_ids(build: Build, channels: pa.Table) -> np.ndarray:
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
    build.writer.fix_nulls("channels", "channel_id", np.flatnonzero(null))
    return out


def _renamed_columns(build: Build, channels: pa.Table) -> list:
    """Columns the decoder renames (x -> ccf_ap, ...): written under their NWB names."""
    columns = []
    for nwb, lake in ELECTRODE_COLUMNS.items():
        if has_values(channels, nwb):  # the source had both: each keeps its own name
            columns += build.columns("channels", nwb, channels.column(nwb))
            columns += build.columns("channels", lake, channels.column(lake))
        elif has_values(channels, lake) or nwb in ("location", "local_index"):
            values = channels.column(lake)
            columns += build.columns("channels", lake, values, nwb_name=nwb)
    for lake in PROBE_POSITIONS.values():
        if has_values(channels, lake):
            columns += build.columns("channels", lake, channels.column(lake))
    if not has_values(channels, "probe_horizontal_position") and any(
        has_values(channels, nwb) for nwb in PROBE_POSITIONS
    ):  # written (null) so that the decoder does not take rel_x/rel_y as probe positions
        values = channels.column("probe_horizontal_position")
        columns += build.columns("channels", "probe_horizontal_position", values)
    return columns
