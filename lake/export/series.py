"""Export: every time series of the session, written back where and how the source had it.

`timeseries_info` says what each series was (NWB path, type and namespace, container,
description, unit, rate or timestamps, conversion, offset, the data's type and shape, small
datasets such as reference_frame or external_file); `timeseries` holds its samples. A series is
rebuilt with the pynwb class of its type (or of the nearest core type pynwb knows, for an
extension it does not), its values turned back into the source's data type
(`(value - offset) / conversion`), and put at its path: `/acquisition`, inside its container
(Position, CompassDirection, BehavioralEvents, EyeTracking, ...), in its processing module, or
under `/stimulus`. Series the lake did not copy the data of (images) keep their sample times,
file names and metadata, with empty data.

Licks, rewards and running speed decoded from such series are therefore written as those
series (pynapple finds `lick_left_times` again); only rows that came from elsewhere (a rig's
sync lines, a task file) are written from the lake tables (`lake.export.task`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lake.export.context import ExportContext

_SPATIAL_ORDER = ("x", "y", "z")
#: Types a file may hold whose pynwb class we write instead, when pynwb does not know them.
_FALLBACK = {"EllipseSeries": "SpatialSeries"}


def add_series(nwbfile: Any, ctx: ExportContext) -> None:
    """Every series of `timeseries_info`, with its samples from `timeseries`."""
    info = ctx.rows.table("timeseries_info")
    if not info.num_rows:
        return
    samples = ctx.rows.table("timeseries")
    ranges = _ranges(samples)
    for row in info.to_pylist():
        series = _build(ctx, row, samples, ranges)
        if series is not None:
            _place(nwbfile, ctx, row, series)


def _ranges(samples: pa.Table) -> dict[tuple[str, str], tuple[int, int]]:
    """(series, component) -> rows [start, stop) of `timeseries` (sorted by series, component)."""
    if not samples.num_rows:
        return {}
    runs = (
        pl.from_arrow(samples.select(["series", "component"]))
        .with_row_index("row")
        .group_by("series", "component", maintain_order=True)
        .agg(pl.col("row").first().alias("start"), pl.col("row").last().alias("last"))
    )
    return {(s, c): (int(a), int(b) + 1) for s, c, a, b in runs.iter_rows()}


def _column(samples: pa.Table, span: tuple[int, int], name: str) -> pa.Array:
    start, stop = span
    return samples.column(name).slice(start, stop - start).combine_chunks()


def _build(ctx: ExportContext, row: dict, samples: pa.Table, ranges: dict) -> Any:
    name, components = row["series"], list(row["components"] or [])
    attributes = json.loads(row["attributes"] or "{}")
    cls = _series_class(row["neurodata_type"], row["namespace"], components)
    allowed = _arguments(cls)
    kwargs: dict[str, Any] = {"name": name.rsplit("/", 1)[-1]}
    spans = {c: ranges.get((name, c)) for c in components}
    if any(span is None for span in spans.values()):
        msg = f"timeseries_info lists series {name!r} but timeseries lacks some of its samples"
        raise ctx.rows.inconsistent(msg)
    first = spans[components[0]] if components else None
    if row["rate"] is not None:
        kwargs.update(starting_time=row["starting_time"], rate=row["rate"])
    elif first is not None:
        kwargs["timestamps"] = _column(samples, first, "time").to_numpy()
    data_components = [c for c in components if _is_data(c)]
    if row["data_copied"] and data_components:
        kwargs["data"] = _data(row, samples, spans, data_components)
    extra = [c for c in components if c and not _is_data(c)]
    for component in extra:
        if component in allowed:
            kwargs[component] = _column(samples, spans[component], "value").to_numpy()
    for key in ("unit", "description", "comments", "conversion", "offset", "resolution"):
        if row.get(key) is not None and key in allowed:
            kwargs[key] = row[key]
    kwargs.update(_extras(attributes, allowed, set(kwargs)))
    _starting_frame(ctx, row["path"], kwargs)
    if "data" not in kwargs and "external_file" not in kwargs:
        kwargs["data"] = np.zeros((0,) * max(1, len(row["data_shape"] or [1])))
    return cls(**kwargs)


def _is_data(component: str) -> bool:
    return component in ("data", *_SPATIAL_ORDER) or component.isdigit()


def _data(row: dict, samples: pa.Table, spans: dict, components: list[str]) -> np.ndarray:
    """The source's data array: components stacked as its columns, in its data type."""
    if components == ["data"] and row["data_dtype"] == "text":
        return np.asarray(_column(samples, spans["data"], "text").to_pylist(), dtype=object)
    order = sorted(components, key=_column_position)
    columns = [_column(samples, spans[c], "value") for c in order]
    values = np.column_stack([pc.fill_null(c, np.nan).to_numpy() for c in columns])
    if components == ["data"]:
        values = values[:, 0]
    raw = (values - (row["offset"] or 0.0)) / (row["conversion"] or 1.0)
    dtype = row["data_dtype"] or "float64"
    if dtype == "bool":
        return raw.astype(bool)
    kind = np.dtype(dtype)
    if kind.kind in "iu":
        return np.rint(raw).astype(kind)
    return raw.astype(kind)


def _column_position(component: str) -> int:
    """Where a component sits among the data's columns (x, y, z; or its index)."""
    if component in _SPATIAL_ORDER:
        return _SPATIAL_ORDER.index(component)
    return int(component) if component.isdigit() else -1


def _extras(attributes: dict, allowed: set[str], taken: set[str]) -> dict[str, Any]:
    """Constructor arguments from the series' small datasets and attributes."""
    out: dict[str, Any] = {}
    sources = (
        attributes.get("datasets", {}),
        attributes.get("group", {}),
        attributes.get("data", {}),
    )
    for source in sources:
        for key, value in source.items():
            if key in allowed and key not in taken and key not in out:
                out[key] = value
    starting = attributes.get("dataset_attrs", {}).get("external_file", {}).get("starting_frame")
    if starting is not None and "starting_frame" in allowed:
        out["starting_frame"] = starting
    return out


def _starting_frame(ctx: ExportContext, path: str, kwargs: dict) -> None:
    """Write an external file's `starting_frame` as the source had it, even when pynwb refuses.

    Older writers stored one starting frame for many files (DANDI 000207: `[0]` for 90 files);
    pynwb 4 refuses that for new files, so the value is set with h5py once the file is written.
    """
    frames, files = kwargs.get("starting_frame"), kwargs.get("external_file")
    if frames is None or files is None or len(frames) == len(files):
        return
    del kwargs["starting_frame"]
    kwargs["starting_frame"] = list(range(len(files)))  # what pynwb accepts; replaced below

    def restore(fh: Any) -> None:
        fh[f"{path}/external_file"].attrs["starting_frame"] = np.asarray(frames, dtype=np.int32)

    ctx.after_write.append(restore)


def _series_class(kind: str | None, namespace: str | None, components: list[str]) -> Any:
    """The pynwb class to write a series of type `kind` with (a core one when unknown)."""
    from pynwb import get_class

    for name, space in ((kind, namespace or "core"), (_FALLBACK.get(kind or ""), "core")):
        if name:
            try:
                return get_class(name, space)
            except (KeyError, ValueError, TypeError):
                continue
    spatial = bool(components) and set(components) <= {*_SPATIAL_ORDER}
    return get_class("SpatialSeries" if spatial else "TimeSeries", "core")


def _arguments(cls: Any) -> set[str]:
    from hdmf.utils import get_docval

    return {a["name"] for a in get_docval(cls.__init__)}


# --- where a series goes ------------------------------------------------------------------------


def _place(nwbfile: Any, ctx: ExportContext, row: dict, series: Any) -> None:
    """Put `series` at its source path: acquisition, a container, a module or stimulus."""
    parts = row["path"].strip("/").split("/")
    attributes = json.loads(row["attributes"] or "{}")
    root, rest = parts[0], parts[1:-1]
    if root == "processing" and rest:
        holder = ctx.module_named(nwbfile, rest[0], attributes.get("module_description"))
        rest = rest[1:]
    elif root == "stimulus":
        add = nwbfile.add_stimulus_template if rest[:1] == ["templates"] else nwbfile.add_stimulus
        add(series)
        return
    else:
        holder = nwbfile
    if rest:
        container = _container(nwbfile, ctx, holder, root, rest[-1], row, attributes)
        _add_to(container, series)
    elif holder is nwbfile:
        (nwbfile.add_analysis if root == "analysis" else nwbfile.add_acquisition)(series)
    else:
        holder.add(series)


def _container(
    nwbfile: Any, ctx: ExportContext, holder: Any, root: str, name: str, row: dict, attrs: dict
) -> Any:
    """The container (Position, BehavioralEvents, ...) named `name` in `holder`, made once."""
    from pynwb import get_class

    key = (root, id(holder), name)
    if key in ctx.containers:
        return ctx.containers[key]
    kind = row["container"] or "BehavioralTimeSeries"
    try:
        cls = get_class(kind, "core")
    except (KeyError, ValueError, TypeError):
        cls = get_class("BehavioralTimeSeries", "core")
    container = cls(name=name)
    description = attrs.get("container_description")
    if description and hasattr(container, "description"):
        container.description = description
    if holder is nwbfile:
        (nwbfile.add_analysis if root == "analysis" else nwbfile.add_acquisition)(container)
    else:
        holder.add(container)
    ctx.containers[key] = container
    return container


def _add_to(container: Any, series: Any) -> None:
    conf = container.__clsconf__
    confs = conf if isinstance(conf, list) else [conf]
    getattr(container, confs[0]["add"])(series)
