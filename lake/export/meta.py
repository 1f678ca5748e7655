"""Export: the NWBFile with session and subject metadata, and the nplake module's sessions row.

Each lake column goes to its standard NWB home where NWB has one, written so that the NWB
decoder reads back the lake value; what it would read back differently (or cannot find) goes
into the nplake module (see docs/export.md).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.nwb import age_in_days
from ingest.nwb.mapping import GENERAL_FIELDS, GENERAL_LISTS, GENERAL_TEXT, TASK_TABLES
from ingest.nwb.processing_nplake import EXPORTED
from lake.export.context import ExportContext
from lake.export.values import same_values

#: Sessions columns describing where rows came from: not exported, allowed to differ on
#: re-ingest (the source of a re-ingest is the exported file).
PROVENANCE = (
    "nwb_version",
    "source_kind",
    "source_uri",
    "decoder_version",
    "decoder_options",
    "source_hash",
    "source_stat",
    "pipeline_version",
    "ingest_id",
    "ingested_at",
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_SEXES = {"M": "M", "F": "F", "O": "O", "U": "U"}
#: The age a file states when the lake knows neither age nor birth date: "0 days or older".
UNKNOWN_AGE = "P0D/"
_ISO_DURATION = re.compile(
    r"P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?"
)


def new_nwbfile(ctx: ExportContext, counts: dict[str, int]) -> Any:
    """The NWBFile with session and subject metadata; the sessions row of the module.

    NWB (and DANDI, through nwbinspector) require some values the lake may not have: an
    identifier, a description, a start time, a subject with an id, a sex in M/F/O/U and an age
    or birth date. The file then gets a stand-in ('unknown', 'U', the open age range 'P0D/',
    ...) and the module records that the lake value is null, or holds the lake value.
    """
    from pynwb import NWBFile
    from pynwb.file import Subject

    s = ctx.rows.session
    sid = ctx.session_id
    nulls: list[str] = []
    overlay: dict[str, Any] = {}

    def stand_in(column: str, value: Any) -> Any:
        if s.get(column) is None:
            nulls.append(column)
            return value
        return s[column]

    start = _local(stand_in("session_start_time", _EPOCH), s.get("session_start_utc_offset"))
    kwargs: dict[str, Any] = {
        "session_description": stand_in("session_description", ""),
        "identifier": stand_in("identifier", sid),
        "session_start_time": start,
        "timestamps_reference_time": _parsed(stand_in("timestamps_reference_time", None)) or start,
    }
    created = [_parsed(t) for t in s.get("file_create_date") or []]
    if created and all(created):
        kwargs["file_create_date"] = created
    else:
        nulls.append("file_create_date")
    kwargs.update(_general_text(s))
    if s.get("session_start_utc_offset") is None:
        nulls.append("session_start_utc_offset")  # the file says +00:00
    if s.get("nwb_session_id") is not None:  # the lake's own id travels in the nplake module
        kwargs["session_id"] = s["nwb_session_id"]
    if s.get("experimenter") is not None:
        kwargs["experimenter"] = list(s["experimenter"])
    kwargs.update({k: s[k] for k in GENERAL_TEXT if s.get(k) is not None})
    if s.get("session_type") is not None:
        kwargs["stimulus_notes"] = s["session_type"]
    if s.get("data_collection") is None and s.get("rig") is not None:
        kwargs["data_collection"] = f"rig: {s['rig']}"  # for people; the lake's is null
        nulls.append("data_collection")
    subject = {k: s[k] for k in ("species", "genotype", "strain") if s.get(k) is not None}
    for column, key in (("subject_description", "description"), ("subject_weight", "weight")):
        if s.get(column) is not None:
            subject[key] = s[column]
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
    _optogenetic_sites(nwbfile, s.get("optogenetic_sites"))
    written_age = age_in_days(age, dob, _utc(s.get("session_start_time")))
    ctx.module["sessions"] = _session_module(ctx, counts, written_age, overlay)
    for column in nulls:
        ctx.writer.fix_nulls("sessions", column, np.array([0]))
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


#: Sessions columns written as NWBFile arguments (the NWB names of ingest.nwb.mapping).
_GENERAL_TEXT = {
    **{column: name for name, column in GENERAL_FIELDS.items()},
    "source_script_file_name": "source_script_file_name",
    **{name: name for name in GENERAL_LISTS},
}


def _general_text(s: dict) -> dict[str, Any]:
    """NWBFile arguments for the /general fields the lake kept."""
    out = {}
    for column, argument in _GENERAL_TEXT.items():
        value = s.get(column)
        if value is not None:
            out[argument] = list(value) if isinstance(value, list | tuple) else value
    if "source_script_file_name" in out and "source_script" not in out:
        del out["source_script_file_name"]  # NWB has no file name without a script
    return out


def _optogenetic_sites(nwbfile: Any, text: str | None) -> None:
    """OptogeneticStimulusSites (and their devices) from the sessions column's JSON."""
    if not text:
        return
    for site in json.loads(text):
        name = site.get("device") or "optogenetic_device"
        device = nwbfile.devices.get(name) or nwbfile.create_device(name=name)
        nwbfile.create_ogen_site(
            name=site["name"],
            device=device,
            description=site.get("description") or "",
            excitation_lambda=float(site.get("excitation_lambda") or float("nan")),
            location=site.get("location") or "",
        )


def _times_as_written(ctx: ExportContext, reference: str | None, created: list | None) -> None:
    """Once written, put the source's own text of its times where pynwb wrote another form.

    pynwb writes a time as `isoformat()`, which drops zero microseconds (`...00.000000-08:00`
    becomes `...00-08:00`); the source's text is restored with h5py.
    """
    fixes: dict[str, object] = {}
    if reference is not None and _written(reference) != reference:
        fixes["timestamps_reference_time"] = reference
    if created and [_written(t) for t in created] != list(created):
        fixes["file_create_date"] = list(created)
    if not fixes:
        return

    def restore(fh: Any) -> None:
        for name, text in fixes.items():
            fh[name][()] = text if isinstance(text, str) else np.array(text, dtype=object)

    ctx.after_write.append(restore)


def _written(text: str) -> str | None:
    """How pynwb writes the time `text` (its isoformat), None when it is not a time."""
    parsed = _parsed(text)
    return parsed.isoformat() if parsed is not None else None


def _parsed(text: str | None) -> dt.datetime | None:
    """An ISO-8601 time as written by the source (its offset kept); None if unparsable."""
    if not text:
        return None
    value = text.strip()
    value = f"{value[:-1]}+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)


def _local(value: dt.datetime, offset: float | None) -> dt.datetime:
    """A UTC time at the source's local offset (UTC when the source gave none)."""
    value = _utc(value)
    if offset is None:
        return value
    return value.astimezone(dt.timezone(dt.timedelta(seconds=offset)))


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _session_module(
    ctx: ExportContext, counts: dict[str, int], age_days, overlay: dict
) -> pa.Table:
    """session_id, rig, notes, and every column the decoder would otherwise read differently."""
    s = ctx.rows.session
    predicted = {
        "has_ephys": counts.get("units", 0) > 0,
        "has_task": any(counts.get(t, 0) > 0 for t in TASK_TABLES),
        "has_sync": False,
        "age_in_days": age_days,
    }
    columns: dict[str, pa.Array] = {
        "session_id": pa.array([ctx.session_id], pa.string()),
        EXPORTED: pa.array([True]),
    }
    for column in ("rig", "notes"):
        if s.get(column) is not None:
            columns[column] = pa.array([s[column]], pa.string())
    for column, value in overlay.items():
        columns[column] = pa.array([value], pa.string())
    _times_as_written(ctx, s.get("timestamps_reference_time"), s.get("file_create_date"))
    for column, value in predicted.items():
        kind = pa.float64() if column == "age_in_days" else pa.bool_()
        lake = pa.array([s.get(column)], kind)
        if not same_values(lake, pa.array([value], kind)):
            columns[column] = lake
    return pa.table(columns)
