"""Export: the NWBFile with session and subject metadata, and the nplake module's sessions row.

Each lake column goes to its standard NWB home where NWB has one, written so that the NWB
decoder reads back the lake value; what it would read back differently (or cannot find) goes
into the nplake module (see docs/export.md).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.nwb import age_in_days
from ingest.nwb.mapping import GENERAL_TEXT, TASK_TABLES
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
    columns: dict[str, pa.Array] = {"session_id": pa.array([ctx.session_id], pa.string())}
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
