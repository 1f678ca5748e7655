"""Every time series of an NWB file -> the lake's `timeseries` (samples) and `timeseries_info`.

A series is any TimeSeries-like group (a `data` dataset with `timestamps` or `starting_time`)
under `/acquisition`, `/processing/*` (not nplake's own module), `/stimulus` or `/analysis`,
at any depth (inside Position, CompassDirection, BehavioralEvents, EyeTracking, ... containers).

- **Components.** 1-d data is component `data`; 2-d data has one component per column, named
  x, y, z for spatial series (SpatialSeries and its extensions, e.g. Allen's EllipseSeries: the
  names pynapple gives them) and '0', '1', ... otherwise; every other per-sample dataset of the
  group (an EllipseSeries' `area`, `width`, `height`, `angle`; a `control` column) is a
  component named after it. Values are float64 with the source's `conversion` and `offset`
  applied (booleans as 0/1); text data (AnnotationSeries) go to `text`.
- **Not copied** (`inventory`): the data of image series (ImageSeries, OpticalSeries, ...; their
  sample times, file names and other small datasets are kept, so the series survives an
  export), whole electrical series (raw and LFP ElectricalSeries, SpikeEventSeries: data and
  timestamps), and data of more than 2 dimensions or of a type the lake cannot hold.
- **Everything else** a series carries (attributes, reference_frame, external_file, the
  container's and module's descriptions) goes into `timeseries_info.attributes` as JSON, so
  the exporter can write the series back the way the source had it.

The samples are streamed per (series, component), sorted, re-reading the file: a long
high-rate series is never held whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import h5py
import numpy as np
import pyarrow as pa

from ingest._hdf5 import as_text, holds_text_or_numbers, read_numbers, text_array
from ingest.nwb.tables import NWBContext
from schemas import DecodeError

#: Roots searched for series; nplake's own module is not source data.
ROOTS = ("acquisition", "processing", "stimulus", "analysis")
NPLAKE_MODULE = "/processing/nplake"
#: Types whose data are never copied: electrical recordings are skipped whole, images keep
#: their sample times.
ELECTRICAL = frozenset({"ElectricalSeries", "SpikeEventSeries", "EcephysSeries"})
IMAGES = frozenset(
    {"ImageSeries", "OpticalSeries", "TwoPhotonSeries", "OnePhotonSeries", "ImageMaskSeries"}
)
SPATIAL = frozenset({"SpatialSeries", "EllipseSeries"})
#: Datasets of a series group that are not components: handled on their own, or metadata of
#: the NWB types (kept in `attributes` even when one value per sample long).
_OWN = ("data", "timestamps", "starting_time")
_METADATA = frozenset(
    {
        "control_description",
        "reference_frame",
        "external_file",
        "dimension",
        "format",
        "field_of_view",
        "distance",
        "orientation",
        "bits_per_pixel",
    }
)


@dataclass(frozen=True)
class Series:
    """One series found: its name in the lake, where it is, and how to read its samples."""

    name: str
    path: str
    kind: str | None
    n_samples: int
    components: tuple[str, ...]
    #: component -> (dataset name, column or None); '' component: times only.
    sources: dict[str, tuple[str, int | None]]
    copied: bool
    text: bool


def find_series(ctx: NWBContext) -> dict[str, h5py.Group]:
    """Every TimeSeries-like group of the file (not nplake's module), by full path."""
    found: dict[str, h5py.Group] = {}

    def visit(_name: str, obj: h5py.HLObject) -> None:
        name = obj.name if isinstance(obj.name, str) else as_text(obj.name)  # bytes: not UTF-8
        own = name.startswith(f"{NPLAKE_MODULE}/")
        if isinstance(obj, h5py.Group) and not own and is_series(obj):
            found[name] = obj

    for root in ROOTS:
        group = ctx.fh.get(root)
        if isinstance(group, h5py.Group):
            with ctx.reading(root):
                group.visititems(visit)
    return found


def is_series(group: h5py.Group) -> bool:
    """Whether a group looks like a TimeSeries (data with timestamps or a starting time)."""
    if isinstance(group.get("timestamps"), h5py.Dataset) and "data" in group:
        return isinstance(group.get("data"), h5py.Dataset)
    return isinstance(group.get("data"), h5py.Dataset) and "starting_time" in group


def series_times(group: h5py.Group, n: int | None = None) -> np.ndarray:
    """Sample times of a series: timestamps, else starting_time + i / rate."""
    stamps = group.get("timestamps")
    if isinstance(stamps, h5py.Dataset):
        return read_numbers(stamps, f"{group.name}/timestamps").astype(np.float64).reshape(-1)
    start = group["starting_time"]
    first = read_numbers(start, f"{group.name}/starting_time").reshape(-1)
    rate = np.asarray(start.attrs.get("rate", np.nan)).reshape(-1)
    if rate.dtype.kind not in "iuf" or not first.size or not rate.size:
        msg = f"starting_time {first[:1]} with rate {rate[:1]}: one number each is expected"
        raise DecodeError(msg, file=group.file.filename, field=f"{group.name}/starting_time")
    if n is None:
        n = group["data"].shape[0] if group["data"].ndim else 1
    return float(first[0]) + np.arange(n, dtype=np.float64) / float(rate[0])


def kind_of(obj: h5py.HLObject) -> str | None:
    """The neurodata_type of an HDF5 object (None when it has none)."""
    return as_text(obj.attrs.get("neurodata_type"))


def series_catalogue(
    ctx: NWBContext, groups: dict[str, h5py.Group], used_by: dict[str, str]
) -> tuple[list[Series], pa.Table | None]:
    """The series to copy and the `timeseries_info` rows of all of them (None: no series).

    Electrical series are skipped whole (left to the inventory); `used_by` names the lake
    table another reader decoded a series into (licks, rewards, running_speed).
    """
    names = unique_names(list(groups))
    found, rows = [], []
    for path, group in groups.items():
        kind = kind_of(group)
        if kind in ELECTRICAL:
            ctx.skip(group, f"{kind}: dense electrical recording, not copied")
            continue
        with ctx.reading(path.lstrip("/")):
            series, row = _describe(ctx, names[path], path, group, kind)
        row["lake_table"] = used_by.get(path)
        found.append(series)
        rows.append(row)
    if not rows:
        return found, None
    return found, pa.Table.from_pylist(rows, schema=_INFO_SCHEMA)


def unique_names(paths: list[str]) -> dict[str, str]:
    """The series name of each path: its last part, with parents added until unique.

    Examples
    --------
    >>> unique_names(["/acquisition/a/x", "/processing/m/x", "/acquisition/y"])
    {'/acquisition/a/x': 'a/x', '/processing/m/x': 'm/x', '/acquisition/y': 'y'}
    """
    depth = dict.fromkeys(paths, 1)
    while True:
        names = {p: "/".join(p.strip("/").split("/")[-depth[p] :]) for p in paths}
        counts: dict[str, int] = {}
        for name in names.values():
            counts[name] = counts.get(name, 0) + 1
        clash = [p for p in paths if counts[names[p]] > 1 and depth[p] < p.count("/")]
        if not clash:
            return names
        for p in clash:
            depth[p] += 1


def _describe(
    ctx: NWBContext, name: str, path: str, group: h5py.Group, kind: str | None
) -> tuple[Series, dict]:
    data = group["data"]
    times_ds = group.get("timestamps")
    n = _rows(times_ds) if isinstance(times_ds, h5py.Dataset) else _rows(data)
    text = h5py.check_string_dtype(data.dtype) is not None or data.dtype.kind in "SUO"
    numeric = data.dtype.kind in "biuf"
    copied = kind not in IMAGES and data.ndim <= 2 and (numeric or text) and _rows(data) == n
    sources: dict[str, tuple[str, int | None]] = {}
    if copied and (data.ndim == 1 or text):
        sources["data"] = ("data", None)
    elif copied:
        labels = _column_names(kind, group, data.shape[1])
        sources.update({label: ("data", k) for k, label in enumerate(labels)})
    else:
        why = "image data" if kind in IMAGES else f"{data.ndim}-d {data.dtype} data"
        ctx.skip(data, f"{kind or 'series'}: {why}, not copied")
        sources[""] = ("", None)
    small: dict[str, object] = {}
    small_attrs: dict[str, dict] = {}
    for key in group:
        obj = group[key]
        if key in _OWN or not isinstance(obj, h5py.Dataset):
            continue
        per_sample = obj.ndim == 1 and obj.shape[0] == n and obj.dtype.kind in "biuf"
        if per_sample and key not in _METADATA:
            sources[key] = (key, None)
            ctx.claim(obj)
        elif (value := _small_value(obj)) is not None:
            small[key] = value
            if obj.attrs:
                small_attrs[key] = _attrs(obj)
            ctx.claim(obj)
    ctx.claim(times_ds, group.get("starting_time"))
    if copied:
        ctx.claim(data)
    components = tuple(sorted(sources))
    series = Series(name, path, kind, n, components, sources, copied, text and copied)
    return series, _info_row(ctx, series, group, {"datasets": small, "dataset_attrs": small_attrs})


def _rows(data: h5py.Dataset) -> int:
    return int(data.shape[0]) if data.ndim else 1


def _column_names(kind: str | None, group: h5py.Group, width: int) -> list[str]:
    spatial = kind in SPATIAL or "reference_frame" in group
    if spatial and width <= 3:
        return ["x", "y", "z"][:width]
    return [str(k) for k in range(width)]


def _small_value(ds: h5py.Dataset) -> object | None:
    """A small dataset as a JSON value (text, numbers, lists of them); None when not small."""
    if ds.size > 10_000 or not holds_text_or_numbers(ds) or h5py.check_dtype(ref=ds.dtype):
        return None
    value = ds[()]
    if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind in "SO":
        return as_text(value) if ds.ndim == 0 else text_array(value)
    if ds.dtype.kind not in "biuf":
        return None
    return np.asarray(value).tolist()


def _attrs(obj: h5py.HLObject, skip: tuple[str, ...] = ()) -> dict[str, object]:
    """JSON-ready attributes of an HDF5 object (references and other odd values left out)."""
    out: dict[str, object] = {}
    for name in obj.attrs:
        key = as_text(name)  # a damaged name comes back as bytes
        if key in skip:
            continue
        value = obj.attrs[name]
        if isinstance(value, bytes | np.bytes_ | str):
            out[key] = as_text(value)
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biufSUO":
            if value.dtype.kind in "SUO":
                out[key] = text_array(value) if value.ndim else as_text(value[()])
            else:
                out[key] = value.tolist()
        elif isinstance(value, np.generic | int | float | bool):
            out[key] = np.asarray(value).item()
    return out


_DATA_OWN = ("unit", "conversion", "offset", "resolution")
_GROUP_OWN = ("description", "comments", "namespace", "neurodata_type", "object_id")


def _info_row(ctx: NWBContext, s: Series, group: h5py.Group, small: dict) -> dict:
    """The timeseries_info row of one series (`small`: its small datasets and their attrs)."""
    data = group["data"]
    stamps = group.get("timestamps")
    start = group.get("starting_time")
    rate = starting = None
    if not isinstance(stamps, h5py.Dataset) and isinstance(start, h5py.Dataset):
        rate = float(np.asarray(start.attrs["rate"]).reshape(-1)[0])
        starting = float(start[()])
    parent = group.parent
    module = _module(group)
    attributes = {
        "group": _attrs(group, _GROUP_OWN),
        "data": _attrs(data, _DATA_OWN),
        **small,
        "timestamps": _attrs(stamps) if isinstance(stamps, h5py.Dataset) else {},
        "starting_time": _attrs(start, ("rate",)) if isinstance(start, h5py.Dataset) else {},
    }
    if parent.name.count("/") >= 1 and kind_of(parent) not in (None, "ProcessingModule"):
        attributes["container_description"] = as_text(parent.attrs.get("description"))
    if module is not None:
        attributes["module_description"] = as_text(module.attrs.get("description"))
    return {
        "series": s.name,
        "path": s.path,
        "neurodata_type": s.kind,
        "namespace": as_text(group.attrs.get("namespace")),
        "container": _container(parent),
        "description": as_text(group.attrs.get("description")),
        "comments": as_text(group.attrs.get("comments")),
        "unit": as_text(data.attrs.get("unit")),
        "components": list(s.components),
        "n_samples": s.n_samples,
        "rate": rate,
        "starting_time": starting,
        "conversion": number_attr(data, "conversion", 1.0),
        "offset": number_attr(data, "offset", 0.0),
        "resolution": number_attr(data, "resolution", None),
        "data_dtype": _dtype_name(data),
        "data_shape": list(data.shape),
        "data_copied": s.copied,
        "attributes": json.dumps(attributes, sort_keys=True),
    }


def _module(group: h5py.Group) -> h5py.Group | None:
    node = group.parent
    while node.name not in ("/", ""):
        if kind_of(node) == "ProcessingModule":
            return node
        node = node.parent
    return None


def _container(parent: h5py.Group) -> str | None:
    kind = kind_of(parent)
    return None if kind in (None, "NWBFile") else kind


def number_attr(ds: h5py.Dataset, name: str, default: float | None) -> float | None:
    value = ds.attrs.get(name)
    if value is None:
        return default
    return float(np.asarray(value).reshape(-1)[0])


def _dtype_name(ds: h5py.Dataset) -> str:
    if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind in "SUO":
        return "text"
    return str(ds.dtype)


_INFO_SCHEMA = pa.schema(
    [
        ("series", pa.string()),
        ("path", pa.string()),
        ("neurodata_type", pa.string()),
        ("namespace", pa.string()),
        ("container", pa.string()),
        ("description", pa.string()),
        ("comments", pa.string()),
        ("unit", pa.string()),
        ("components", pa.list_(pa.string())),
        ("n_samples", pa.int64()),
        ("rate", pa.float64()),
        ("starting_time", pa.float64()),
        ("conversion", pa.float64()),
        ("offset", pa.float64()),
        ("resolution", pa.float64()),
        ("data_dtype", pa.string()),
        ("data_shape", pa.list_(pa.int64())),
        ("data_copied", pa.bool_()),
        ("lake_table", pa.string()),
        ("attributes", pa.string()),
    ]
)
