"""NWB file metadata beyond the basics -> `sessions` columns; and what of `/general` is claimed.

Kept as the file has it (docs/ingest.md): `/general/keywords` and `related_publications` as
lists (a scalar becomes a one-element list), `source_script` (and its `file_name` attribute),
the free-text fields (`notes` as `nwb_notes`, protocol, surgery, virus, pharmacology, slices,
data_collection), the subject's description and weight, optogenetic stimulus sites as JSON,
`timestamps_reference_time` and `file_create_date` as written, and the local offset of
`session_start_time` (the lake stores the start in UTC; the offset lets an export write the
time the way the source did: `2017-05-08T00:00:00-05:00`, not `05:00:00+00:00`).
"""

from __future__ import annotations

import datetime as dt
import json

import h5py
import numpy as np

from ingest._hdf5 import as_text, holds_text_or_numbers, read_text, text_array
from ingest.nwb.mapping import GENERAL_FIELDS, GENERAL_LISTS
from ingest.nwb.tables import NWBContext

#: Datasets the sessions row reads elsewhere (decoder.py), claimed here with the rest.
_ROOT = ("identifier", "session_description", "session_start_time")
_GENERAL = (
    "session_id",
    "experimenter",
    "institution",
    "lab",
    "experiment_description",
    "stimulus",
)
_SUBJECT = (
    "subject_id",
    "species",
    "sex",
    "genotype",
    "strain",
    "age",
    "date_of_birth",
    "description",
    "weight",
)
_SITE_FIELDS = ("description", "excitation_lambda", "location")


def general_columns(ctx: NWBContext, general: h5py.Group, start_text: str | None) -> dict:
    """The sessions columns of this module, read from `/general` and the file's root."""
    row: dict[str, object] = {key: text_list(general, key) for key in GENERAL_LISTS}
    row.update({column: read_text(general, name) for name, column in GENERAL_FIELDS.items()})
    script = general.get("source_script")
    if isinstance(script, h5py.Dataset):
        row["source_script_file_name"] = as_text(script.attrs.get("file_name"))
    subject = general.get("subject")
    if isinstance(subject, h5py.Group):
        row["subject_description"] = read_text(subject, "description")
        row["subject_weight"] = read_text(subject, "weight")
    row["optogenetic_sites"] = _optogenetic_sites(ctx, general)
    row["session_start_utc_offset"] = utc_offset(start_text)
    row["timestamps_reference_time"] = read_text(ctx.fh, "timestamps_reference_time")
    row["file_create_date"] = text_list(ctx.fh, "file_create_date")
    return row


def claim_general(ctx: NWBContext) -> None:
    """Claim the metadata datasets the sessions row holds (root, /general, subject, sites)."""
    fh = ctx.fh
    ctx.claim(*(fh.get(k) for k in (*_ROOT, "timestamps_reference_time", "file_create_date")))
    general = fh.get("general")
    if not isinstance(general, h5py.Group):
        return
    ctx.claim(*(general.get(k) for k in (*_GENERAL, *GENERAL_LISTS, *GENERAL_FIELDS)))
    subject = general.get("subject")
    if isinstance(subject, h5py.Group):
        ctx.claim(*(subject.get(k) for k in _SUBJECT))
    sites = general.get("optogenetics")
    if isinstance(sites, h5py.Group):
        for site in sites.values():
            if isinstance(site, h5py.Group):
                ctx.claim(*(site.get(k) for k in _SITE_FIELDS))


def text_list(group: h5py.Group, name: str) -> list[str] | None:
    """A text dataset that may be scalar or an array, as a list of strings (None: absent)."""
    obj = group.get(name)
    if not isinstance(obj, h5py.Dataset) or not holds_text_or_numbers(obj):
        return None
    if obj.ndim == 0:
        text = as_text(obj[()])
        return [text] if text is not None else None
    return [t for t in text_array(obj[()]) if t is not None]


def parse_iso_time(text: str | None) -> dt.datetime | None:
    """An ISO-8601 time as the file wrote it (a trailing Z read as +00:00); None if unparsable."""
    if not text:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = f"{value[:-1]}+00:00"
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def utc_offset(text: str | None) -> float | None:
    """Seconds east of UTC of an ISO-8601 time with an offset (None: no offset, unparsable).

    Examples
    --------
    >>> utc_offset("2017-05-08T00:00:00-05:00"), utc_offset("2020-01-01T00:00:00")
    (-18000.0, None)
    """
    parsed = parse_iso_time(text)
    offset = None if parsed is None else parsed.utcoffset()
    return None if offset is None else offset.total_seconds()


def _optogenetic_sites(ctx: NWBContext, general: h5py.Group) -> str | None:
    """`/general/optogenetics/<site>` as JSON: name, description, wavelength, location, device."""
    root = general.get("optogenetics")
    if not isinstance(root, h5py.Group):
        return None
    sites = []
    for name in root:
        site = root.get(name)
        if not isinstance(site, h5py.Group):
            continue
        entry: dict[str, object] = {"name": name}
        for key in _SITE_FIELDS:
            ds = site.get(key)
            if isinstance(ds, h5py.Dataset) and holds_text_or_numbers(ds):
                value = ds[()]
                entry[key] = as_text(value) if ds.dtype.kind in "SOU" else _number(value)
        entry["device"] = _link_name(site, "device")
        sites.append(entry)
    return json.dumps(sites, sort_keys=True) if sites else None


def _number(value: object) -> float | None:
    """The first number of a value (None for an empty one)."""
    flat = np.asarray(value).reshape(-1)
    return float(flat[0]) if flat.size else None


def _link_name(group: h5py.Group, name: str) -> str | None:
    """The last path part of what `group/name` links to (None when it links nowhere)."""
    link = group.get(name, getlink=True)
    if isinstance(link, h5py.SoftLink):
        return link.path.rstrip("/").rsplit("/", 1)[-1]
    target = group.get(name)
    return target.name.rsplit("/", 1)[-1] if target is not None else None
