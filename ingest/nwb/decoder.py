"""The NWB 2.x decoder: one HDF5 NWB file -> a validated SessionBundle, read with h5py.

Every table the file has becomes a lake table (FORMATS.md §1; column names: `mapping`):
sessions (with subject), probes, channels, units, spikes (streamed in chunks, never read
whole), waveforms, trials, intervals, licks, rewards and running speed. Old-file quirks are
accepted (utf-8 text declared ascii, `colnames` stored as bytes, text `filtering`, group names
with spaces or colons, int32 ids); what cannot be stored is dropped with a note in
`sessions.notes`. Bad input raises a one-line DecodeError naming the file and the field.

Mapping decisions beyond the table specs:

- `age_in_days` parses ISO-8601 durations (`P205D`, `P49Y`, `P3M2W`, `PT36H`) with a year of
  365.25 days and a month of 365.25 / 12 days; ranges (`P90D/P120D`) are not parsed. Without an
  age, it is the time from `date_of_birth` to the session start.
- `session_type` and `rig` come from Allen lab metadata under `/general` (`session_type`,
  `equipment_name` or `rig_name`, as attribute or dataset), `session_type` else from
  `/general/stimulus`.
- A channel's probe is the electrode group its `group` reference points to; `group_name` is
  used when there is no reference, and kept as a column when the two disagree.
- A file nplake wrote (a lake export, a synthetic session) carries `/processing/nplake`
  (docs/export.md): the lake's session id, columns NWB has no home for, names NWB could not
  hold and null cells. They are applied last, so the file decodes to the rows it came from.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import h5py
import pyarrow as pa

from ingest._flatten import DEFAULT_CHUNK_SPIKES
from ingest._hdf5 import as_text, open_h5, read_text
from ingest.base import DecodeOptions
from ingest.nwb.behavior import licks_table, rewards_table, running_table
from ingest.nwb.general import claim_general, general_columns, parse_iso_time, text_list
from ingest.nwb.intervals import interval_tables, trials_table
from ingest.nwb.inventory import NOT_WALKED, claim_special, inventory_note, inventory_table
from ingest.nwb.mapping import GENERAL_TEXT, TASK_TABLES
from ingest.nwb.probes import electrodes, probes_table, scalar_attrs
from ingest.nwb.processing_nplake import (
    NplakeModule,
    apply_fixes,
    apply_session,
    apply_tables,
    read_module,
)
from ingest.nwb.samples import samples_source
from ingest.nwb.series import find_series, series_catalogue
from ingest.nwb.tables import NWBContext, descriptions_table
from ingest.nwb.units import spike_index, spikes_source, units_table, waveforms_table
from ingest.remote import RemotePath
from schemas import LAKE_FILLED, SessionBundle, is_valid_session_id, rows_table
from schemas.bundle import TableData

_DURATION = re.compile(
    r"P(?:(?P<Y>\d+(?:\.\d+)?)Y)?(?:(?P<M>\d+(?:\.\d+)?)M)?(?:(?P<W>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<D>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_DAYS = {"Y": 365.25, "M": 365.25 / 12, "W": 7.0, "D": 1.0, "h": 1 / 24, "m": 1 / 1440}
_SUBJECT_TEXT = ("subject_id", "species", "sex", "genotype", "strain", "age")


class NWBDecoder:
    """Decode NWB 2.x HDF5 files (`*.nwb`) with h5py.

    Parameters
    ----------
    chunk_spikes
        About how many spikes one batch of the spikes stream holds (bounds memory).

    Examples
    --------
    >>> bundle = NWBDecoder().decode(Path("session.nwb"), DecodeOptions())  # doctest: +SKIP
    """

    name = "nwb"
    version = "3"

    def __init__(self, *, chunk_spikes: int = DEFAULT_CHUNK_SPIKES) -> None:
        self.chunk_spikes = chunk_spikes

    def sniff(self, path: Path) -> bool:
        """Whether `path` is a file with the `.nwb` suffix (any case)."""
        path = Path(path)
        return path.suffix.lower() == ".nwb" and path.is_file()

    def inputs(self, path: Path, options: DecodeOptions) -> list[Path]:
        """The one file this decoder reads."""
        return [Path(path)]

    def decode(self, path: Path, options: DecodeOptions) -> SessionBundle:
        """Decode one NWB file (a path, or a remote object read in place) into a bundle."""
        path = path if isinstance(path, RemotePath) else Path(path)
        with open_h5(path) as fh:
            ctx = NWBContext(fh, path)
            with ctx.reading("nwb_version"):
                check_version(ctx)
            module = read_module(ctx)
            with ctx.reading("identifier"):
                ctx.session_id = _session_id(ctx, options, module)
            tables = self._tables(ctx, module)
            if module is not None:
                tables = apply_tables(ctx, module, tables)
            exported = module is not None and module.exported
            if not exported:  # an nplake export carries its source's inventory
                with ctx.reading("inventory"):
                    claim_general(ctx)
                    inventory = inventory_table(ctx)
                if inventory is not None:
                    tables["inventory"] = inventory
            note = inventory_note(tables.get("inventory"))
            if note is not None:
                ctx.note(note)
            with ctx.reading("general"):
                row = _session_row(ctx, options, self, tables)
            if module is not None:
                row = apply_session(module, row, ctx.notes)
        tables["sessions"] = rows_table("sessions", [row])
        if module is not None:
            tables = apply_fixes(module, tables)
        return SessionBundle(ctx.session_id, tables, list(ctx.notes)).validate(source=path)

    def _tables(self, ctx: NWBContext, module: NplakeModule | None) -> dict[str, TableData]:
        units = ctx.fh.get("units")
        if not isinstance(units, h5py.Group):
            msg = "no units table (/units)"
            raise ctx.error(msg, "units")
        index = spike_index(ctx, units)
        with ctx.reading("general/extracellular_ephys"):
            elec = electrodes(ctx)
        series = find_series(ctx)
        own = series  # an nplake export's series written from other lake tables are not its own
        if module is not None:
            own = {p: g for p, g in series.items() if p not in module.table_series}
        intervals: dict[str, pa.Table | None] = {}
        builders: dict[str, Callable[[], TableData | None]] = {
            "probes": lambda: probes_table(ctx),
            "channels": lambda: elec.table if elec is not None else None,
            "units": lambda: units_table(ctx, units, index, elec),
            "spikes": lambda: spikes_source(ctx, index, self.chunk_spikes),
            "waveforms": lambda: waveforms_table(ctx, units, index.ids),
            "trials": lambda: trials_table(ctx),
            "intervals": lambda: intervals.update(interval_tables(ctx)) or intervals["intervals"],
            "stimulus_presentations": lambda: intervals["stimulus_presentations"],
            "licks": lambda: licks_table(ctx, series),
            "rewards": lambda: rewards_table(ctx, series),
            "running_speed": lambda: running_table(ctx, series),
        }
        tables: dict[str, TableData] = {}
        for name, build in builders.items():
            with ctx.reading(name):
                data = build()
            if data is not None:
                tables[name] = data
        with ctx.reading("timeseries"):
            catalogue, info = series_catalogue(ctx, own, ctx.used_by)
            samples = samples_source(ctx.path, catalogue)
        for name, data in (("timeseries", samples), ("timeseries_info", info)):
            if data is not None:
                tables[name] = data
        with ctx.reading("inventory"):
            claim_special(ctx, tables)
        described = descriptions_table(ctx, NOT_WALKED)
        if described is not None:
            tables["descriptions"] = described
        return tables


def check_version(ctx: NWBContext) -> None:
    """DecodeError unless the file is NWB 2.x: NWB 1.x files and plain HDF5 say what they are."""
    fh = ctx.fh
    version = as_text(fh.attrs.get("nwb_version"))
    if version is None and isinstance(fh.get("nwb_version"), h5py.Dataset):
        version = read_text(fh, "nwb_version")  # NWB 1.x keeps it as a dataset
    if version is None and "identifier" not in fh:
        msg = "an HDF5 file but not NWB (no nwb_version attribute, no /identifier)"
        raise ctx.error(msg, "nwb_version")
    major = re.match(r"\s*(?:NWB-)?(\d+)", version or "")
    if major and int(major.group(1)) < 2:
        msg = (
            f"NWB 1.x is not supported (this file says nwb_version {version!r}); nplake reads "
            "NWB 2.x. Convert the session to NWB 2 first: read it with the NWB 1 API of its "
            "time and write it again with pynwb (or convert the original recordings with "
            "NeuroConv)"
        )
        raise ctx.error(msg, "nwb_version")


def _session_id(ctx: NWBContext, options: DecodeOptions, module: NplakeModule | None) -> str:
    """The session id: the user's override, else the nplake module's, else the identifier.

    An nplake export records the lake's session id in its `/processing/nplake` module.
    """
    if options.session_id is not None:
        if not is_valid_session_id(options.session_id):
            msg = f"session id {options.session_id!r} is not valid (letters, digits, _ . -)"
            raise ctx.error(msg, "session_id")
        return options.session_id
    if module is not None:
        if module.session_id is not None:
            return module.session_id
        ctx.note("processing/nplake/sessions: no valid session_id; the identifier is used")
    identifier = read_text(ctx.fh, "identifier")
    if identifier is None or not is_valid_session_id(identifier):
        msg = (
            f"{identifier!r} is not a valid session id (1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit); pass a session id to override it"
        )
        raise ctx.error(msg, "identifier")
    return identifier


def _session_row(
    ctx: NWBContext, options: DecodeOptions, decoder: NWBDecoder, tables: dict[str, TableData]
) -> dict:
    fh = ctx.fh
    general = fh.get("general")
    general = general if isinstance(general, h5py.Group) else fh
    subject = general.get("subject")
    subject = subject if isinstance(subject, h5py.Group) else None
    start_text = read_text(fh, "session_start_time")
    if start_text is None:
        ctx.note("no /session_start_time (required by NWB): session_start_time is null")
    start = _timestamp(ctx, start_text, "session_start_time")
    row = {
        "session_id": ctx.session_id,
        "identifier": read_text(fh, "identifier"),
        "nwb_session_id": read_text(general, "session_id"),
        "session_start_time": start,
        "session_description": read_text(fh, "session_description"),
        "experimenter": text_list(general, "experimenter"),
        "nwb_version": as_text(fh.attrs.get("nwb_version")),
        **{key: read_text(general, key) for key in GENERAL_TEXT},
        **{key: _maybe_text(subject, key) for key in _SUBJECT_TEXT},
        **_allen_metadata(general),
        **general_columns(ctx, general, start_text),
    }
    dob_text = _maybe_text(subject, "date_of_birth")
    dob = _timestamp(ctx, dob_text, "subject/date_of_birth")
    row["date_of_birth"] = dob
    row["age_in_days"] = age_in_days(row["age"], dob, start)
    counts = {name: data.num_rows for name, data in tables.items()}
    row.update(
        has_ephys=counts.get("units", 0) > 0,
        has_task=any(counts.get(name, 0) > 0 for name in TASK_TABLES),
        has_sync=False,
        source_kind=decoder.name,
        source_uri=str(ctx.path.resolve()),
        decoder_version=decoder.version,
        decoder_options=json.dumps(options.to_json_dict(), sort_keys=True),
        notes="; ".join(ctx.notes) or None,
        **dict.fromkeys(LAKE_FILLED),
    )
    return row


def _maybe_text(group: h5py.Group | None, name: str) -> str | None:
    return read_text(group, name) if group is not None else None


def _timestamp(ctx: NWBContext, text: str | None, field: str) -> dt.datetime | None:
    """An ISO-8601 time as UTC (naive times are taken as UTC); None with a note if unparsable."""
    parsed = parse_iso_time(text)
    if parsed is None:
        if text:
            ctx.note(f"{field}: {text!r} is not an ISO-8601 time; left empty")
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def age_in_days(
    age: str | None, date_of_birth: dt.datetime | None, start: dt.datetime | None
) -> float | None:
    """Age in days from an ISO-8601 duration (365.25-day years), else from the birth date.

    Examples
    --------
    >>> age_in_days("P205D", None, None), age_in_days("P49Y", None, None)
    (205.0, 17897.25)
    """
    if age:
        match = _DURATION.fullmatch(age.strip())
        if match and any(match.groupdict().values()):
            parts = match.groupdict()
            seconds = float(parts.pop("s") or 0) / 86400
            return sum(float(v) * _DAYS[k] for k, v in parts.items() if v) + seconds
    if date_of_birth is not None and start is not None:
        return (start - date_of_birth).total_seconds() / 86400
    return None


def _allen_metadata(general: h5py.Group) -> dict:
    """session_type and rig from Allen lab metadata groups (or /general/stimulus)."""
    found: dict[str, str | None] = {"session_type": None, "rig": None}
    keys = {"session_type": ("session_type",), "rig": ("equipment_name", "rig_name", "rig")}
    for name in general:
        group = general.get(name)
        if not isinstance(group, h5py.Group):
            continue
        attrs = scalar_attrs(group)
        for column, candidates in keys.items():
            for key in candidates:
                value = attrs.get(key) if key in attrs else read_text(group, key)
                if found[column] is None and value is not None:
                    found[column] = str(value)
    if found["session_type"] is None:
        found["session_type"] = read_text(general, "stimulus")
    return found


__all__ = ["NWBDecoder", "age_in_days"]
