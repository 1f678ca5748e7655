"""Session-level metadata of a rig folder: the optional session.json, the folder name, file hints.

session.json (all keys optional; unknown keys are an error, so a typo cannot be lost)::

    {
      "session_id": "668755_2023-08-31",
      "session_start_time": "2023-08-31T13:05:12-07:00",
      "timezone": "America/Los_Angeles",
      "session_description": "...", "session_type": "...", "rig": "NP3",
      "experimenter": ["Doe, Jane"], "institution": "...", "lab": "...",
      "experiment_description": "...",
      "subject_id": "668755", "species": "Mus musculus", "sex": "M",
      "genotype": "wt/wt", "strain": "C57BL/6J", "date_of_birth": "2023-03-01",
      "age": "P183D",
      "probes": {"probeA": {"probe_id": 1, "serial_number": "...", "model": "...",
                            "location": "...", "description": "..."}}
    }

Times without a zone are local rig times: they are read in `timezone` (an IANA name) when
session.json gives one, else taken as UTC with a note. Values not in session.json come from the
folder name `<subject>_<YYYY-MM-DD>` (subject, and the date when nothing better is known) and the
behaviour file (TaskControl `startTime`, `rigName`, `taskVersion`, `subjectName`; camstim
`start_time`, `rig_id`, `mouse_id`, `stage`).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path

import pydantic

from ingest.rig._layout import TASK_NAME
from schemas import DecodeError
from schemas.ids import SESSION_ID_PATTERN

#: Largest session.json accepted.
MAX_JSON_BYTES = 1 << 20
_FOLDER = re.compile(r"^(?P<subject>[A-Za-z0-9]+)_(?P<date>\d{4}-\d{2}-\d{2})(?:$|_)")


class ProbeInfo(pydantic.BaseModel):
    """Per-probe metadata session.json may add to the probes table."""

    model_config = pydantic.ConfigDict(extra="forbid")

    probe_id: int | None = None
    serial_number: str | None = None
    model: str | None = None
    location: str | None = None
    description: str | None = None


class SessionInfo(pydantic.BaseModel):
    """The schema of session.json (docs/rig.md)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    session_id: str | None = pydantic.Field(None, pattern=SESSION_ID_PATTERN)
    session_start_time: dt.datetime | None = None
    timezone: str | None = None
    session_description: str | None = None
    session_type: str | None = None
    rig: str | None = None
    experimenter: list[str] | None = None
    institution: str | None = None
    lab: str | None = None
    experiment_description: str | None = None
    subject_id: str | None = None
    species: str | None = None
    sex: str | None = None
    genotype: str | None = None
    strain: str | None = None
    date_of_birth: dt.datetime | dt.date | None = None
    age: str | None = None
    probes: dict[str, ProbeInfo] = pydantic.Field(default_factory=dict)

    @pydantic.field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                msg = f"unknown time zone {value!r}"
                raise ValueError(msg) from exc
        return value


def read_session_json(path: Path | None) -> SessionInfo:
    """The validated session.json (an empty SessionInfo when there is none)."""
    if path is None:
        return SessionInfo()
    if path.stat().st_size > MAX_JSON_BYTES:
        msg = f"larger than {MAX_JSON_BYTES} bytes; session.json holds a few fields"
        raise DecodeError(msg, file=path)
    try:
        return SessionInfo.model_validate_json(path.read_bytes())
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or None
        msg = f"{first['msg']} (input {first.get('input')!r:.80})"
        if where == "session_id" and first["type"] == "string_pattern_mismatch":
            msg = (
                f"{first['input']!r:.80} is not a valid session id (1-128 letters, digits, '_', "
                "'.' or '-', starting with a letter or digit); fix it or pass --session-id"
            )
        raise DecodeError(msg, file=path, field=where) from None


def folder_hints(folder: Path) -> dict[str, str]:
    """subject_id and date from a folder named `<subject>_<YYYY-MM-DD>` (empty when not)."""
    match = _FOLDER.match(folder.name)
    return match.groupdict() if match else {}


def local_time(
    value: dt.datetime | None, info: SessionInfo, what: str, notes: list[str]
) -> dt.datetime | None:
    """A time made zone-aware: naive ones in session.json's `timezone`, else UTC (noted)."""
    if value is None or value.tzinfo is not None:
        return value
    if info.timezone is not None:
        return value.replace(tzinfo=zoneinfo.ZoneInfo(info.timezone))
    notes.append(f"{what} has no time zone and session.json gives no 'timezone': read as UTC")
    return value.replace(tzinfo=dt.timezone.utc)


def parse_compact(text: str | None) -> dt.datetime | None:
    """A TaskControl 'YYYYMMDD_HHMMSS' time, or an ISO-8601 one; None when neither."""
    if not text:
        return None
    for fmt in ("%Y%m%d_%H%M%S",):
        try:
            return dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            pass
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def as_datetime(value: dt.datetime | dt.date | None) -> dt.datetime | None:
    """A date becomes midnight of that day; datetimes pass through."""
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.combine(value, dt.time(0, 0))


def session_fields(
    folder: Path,
    info: SessionInfo,
    *,
    task_file: Path | None,
    behaviour: dict[str, str],
    sync_start: str | None,
    notes: list[str],
) -> dict:
    """The descriptive columns of the sessions row (everything but flags and provenance).

    Each value: session.json first, then the folder name, the behaviour file and the sync file.
    """
    hints = folder_hints(folder)
    task_match = _task_name(task_file)
    start = info.session_start_time
    what = "session.json session_start_time"
    for text, source in (
        (behaviour.get("start_time"), "the behaviour file's start time"),
        (sync_start, "the sync file's start_time"),
        (hints.get("date"), "the folder name's date"),
    ):
        if start is None and text:
            start, what = parse_compact(text), source
    start = local_time(start, info, what, notes)
    birth = local_time(as_datetime(info.date_of_birth), info, "date_of_birth", notes)
    return {
        "identifier": folder.name,
        "session_start_time": start,
        "session_description": info.session_description,
        "session_type": info.session_type
        or behaviour.get("task_version")
        or behaviour.get("stage")
        or (task_match.get("task") if task_match else None),
        "rig": info.rig or behaviour.get("rig") or behaviour.get("rig_id"),
        "experimenter": info.experimenter,
        "institution": info.institution,
        "lab": info.lab,
        "experiment_description": info.experiment_description,
        "subject_id": info.subject_id
        or hints.get("subject")
        or behaviour.get("subject_id")
        or (task_match.get("subject") if task_match else None)
        or behaviour.get("mouse_id"),
        "species": info.species,
        "sex": info.sex,
        "genotype": info.genotype,
        "strain": info.strain,
        "date_of_birth": birth,
        "age": info.age,
    }


def _task_name(task_file: Path | None) -> dict[str, str] | None:
    match = TASK_NAME.match(task_file.name) if task_file is not None else None
    return match.groupdict() if match else None
