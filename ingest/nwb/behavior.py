"""NWB behaviour series -> the lake's licks, rewards and running_speed tables.

Series are found by name (`series.find_series`: TimeSeries at any depth, e.g. inside
BehavioralEvents / BehavioralTimeSeries containers, ndx-events `Events`), plus pynwb-4
`EventsTable`s in `/events`. Every series also lands whole in `timeseries`; `ctx.used_by`
records which of them these tables were decoded from.

- licks: every series or events table whose name contains "lick" (Allen:
  `/processing/licking/licks`); `source` is the series name (an events table's text `source`
  column, when it has one, names the source of each row).
- rewards: Allen `/processing/rewards/{volume,autorewarded}` (time, volume mL, auto-rewarded);
  any other series whose name contains "reward" gives time and source; an events table named
  like a reward gives time and, when it has them, its `volume`, `auto_rewarded` and `source`
  columns.
- running_speed: Allen `/processing/running/speed`, else the best series named like a speed
  (`running_speed`, `wheel_speed`, `*velocity*`; not `*unfiltered*` or `*end_times*`), else a
  series named like running or a wheel whose data unit is a speed (`.../s`: a wheel *position*
  is not a speed); m/s and mm/s become cm/s.

Times come from `timestamps`, else `starting_time + i / rate`. Data values apply the
TimeSeries `conversion` (and `offset`) attributes.
"""

from __future__ import annotations

import re

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest._hdf5 import as_text, text_array
from ingest.nwb.series import series_times
from ingest.nwb.tables import NWBContext

_ALLEN_REWARDS = "/processing/rewards"
_ALLEN_SPEED = "/processing/running/speed"
_SPEED = re.compile(r"speed|velocity", re.IGNORECASE)
_RUNNING = re.compile(r"running|wheel", re.IGNORECASE)
_NOT_SPEED = re.compile(r"unfiltered|end_time", re.IGNORECASE)
_TO_CM_PER_S = {"m/s": 100.0, "meters/second": 100.0, "mm/s": 0.1}
_SPEED_UNIT = re.compile(r"/\s*s(ec(ond)?)?$", re.IGNORECASE)


def series_data(group: h5py.Group) -> np.ndarray:
    """The data of a series with its conversion and offset applied."""
    data = group["data"]
    values = np.asarray(data[()])
    if values.dtype.kind not in "iuf":
        return values
    conversion = float(np.asarray(data.attrs.get("conversion", 1.0)).reshape(-1)[0])
    offset = float(np.asarray(data.attrs.get("offset", 0.0)).reshape(-1)[0])
    return values.astype(np.float64) * conversion + offset


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _events_tables(ctx: NWBContext) -> dict[str, h5py.Group]:
    """pynwb-4 EventsTables (`/events/<name>` with a `timestamp` column)."""
    root = ctx.fh.get("events")
    if not isinstance(root, h5py.Group):
        return {}
    return {
        f"/events/{name}": root[name]
        for name in root
        if isinstance(root.get(name), h5py.Group)
        and isinstance(root[name].get("timestamp"), h5py.Dataset)
    }


def _times_by_source(
    parts: list[tuple[str | pa.Array, np.ndarray]],
) -> tuple[np.ndarray, pa.Array]:
    """Concatenated times and a dictionary-encoded source column.

    A part's source is a name for all its times, or a text array with one source per time.
    """
    sources = [
        pa.array([name], pa.string()) if isinstance(name, str) else name for name, _ in parts
    ]
    names = list(dict.fromkeys(n for s in sources for n in s.unique().to_pylist()))
    lookup = pa.array(names, pa.string())
    codes = [
        np.full(len(t), names.index(name), dtype=np.int32)
        if isinstance(name, str)
        else pc.index_in(name, value_set=lookup).to_numpy(zero_copy_only=False).astype(np.int32)
        for name, t in parts
    ]
    times = np.concatenate([t for _, t in parts])
    return times, pa.DictionaryArray.from_arrays(pa.array(np.concatenate(codes)), lookup)


def _event_source(ctx: NWBContext, group: h5py.Group, path: str, n: int) -> str | pa.Array:
    """An events table's per-row `source` text column, else its name."""
    column = group.get("source")
    if isinstance(column, h5py.Dataset) and column.shape == (n,):
        values = pa.array(text_array(column[()]), pa.string())
        if values.null_count == 0:
            return values
        ctx.note(f"{path}/source has undecodable values; the table name is the source")
    return _basename(path)


def _claim_events(ctx: NWBContext, group: h5py.Group, columns: tuple[str, ...]) -> None:
    """Claim an events table's ids, timestamps and the columns the lake keeps of it."""
    ctx.claim(group.get("id"), group.get("timestamp"), *(group.get(c) for c in columns))


def _event_times(group: h5py.Group) -> np.ndarray:
    return np.asarray(group["timestamp"][()], dtype=np.float64).reshape(-1)


def licks_table(ctx: NWBContext, series: dict[str, h5py.Group]) -> pa.Table | None:
    """Lick times from every series or events table named like a lick."""
    parts = []
    with ctx.reading("licks"):
        for path, group in series.items():
            if "lick" in _basename(path).lower():
                parts.append((_basename(path), series_times(group)))
                ctx.used_by[path] = "licks"
        for path, group in _events_tables(ctx).items():
            if "lick" in _basename(path).lower():
                stamps = _event_times(group)
                parts.append((_event_source(ctx, group, path, len(stamps)), stamps))
                _claim_events(ctx, group, ("source",))
    if not parts:
        return None
    times, source = _times_by_source(parts)
    return pa.table({"time": pa.array(times), "source": source})


def rewards_table(ctx: NWBContext, series: dict[str, h5py.Group]) -> pa.Table | None:
    """Reward times (with volume and auto-rewarded flags from Allen files)."""
    tables = []
    with ctx.reading("rewards"):
        allen = _allen_rewards(ctx, series)
        if allen is not None:
            tables.append(allen)
        parts = [
            (_basename(path), series_times(group))
            for path, group in series.items()
            if "reward" in _basename(path).lower() and not path.startswith(f"{_ALLEN_REWARDS}/")
        ]
        ctx.used_by.update(
            dict.fromkeys(
                (p for p, g in series.items() if "reward" in _basename(p).lower()), "rewards"
            )
        )
        events = [
            _events_rewards(ctx, path, group)
            for path, group in _events_tables(ctx).items()
            if "reward" in _basename(path).lower()
        ]
    if parts:
        times, source = _times_by_source(parts)
        tables.append(pa.table({"time": pa.array(times), "source": source.cast(pa.string())}))
    tables += events
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


def _events_rewards(ctx: NWBContext, path: str, group: h5py.Group) -> pa.Table:
    """Rewards of an events table: time, and volume / auto_rewarded / source when present."""
    times = _event_times(group)
    n = len(times)
    columns = {"time": pa.array(times)}
    volume = group.get("volume")
    if isinstance(volume, h5py.Dataset) and volume.shape == (n,) and volume.dtype.kind in "iuf":
        columns["volume"] = pa.array(np.asarray(volume[()], dtype=np.float64))
    auto = group.get("auto_rewarded")
    if isinstance(auto, h5py.Dataset) and auto.shape == (n,) and auto.dtype.kind in "biu":
        columns["auto_rewarded"] = pa.array(np.asarray(auto[()]).astype(bool))
    _claim_events(ctx, group, ("volume", "auto_rewarded", "source"))
    source = _event_source(ctx, group, path, n)
    columns["source"] = pa.array([source] * n, pa.string()) if isinstance(source, str) else source
    return pa.table(columns)


def _allen_rewards(ctx: NWBContext, series: dict[str, h5py.Group]) -> pa.Table | None:
    volume = series.get(f"{_ALLEN_REWARDS}/volume")
    auto = series.get(f"{_ALLEN_REWARDS}/autorewarded")
    main = volume if volume is not None else auto
    if main is None:
        return None
    times = series_times(main)
    n = len(times)
    columns = {"time": pa.array(times)}
    if volume is not None and len(volume["data"]) == n:
        columns["volume"] = pa.array(series_data(volume), pa.float64())
    if auto is not None and len(auto["data"]) == n:
        columns["auto_rewarded"] = pa.array(np.asarray(auto["data"][()]).astype(bool))
    elif auto is not None:
        ctx.note("processing/rewards/autorewarded does not match the reward times; ignored")
    columns["source"] = pa.array(["rewards"] * n, pa.string())
    return pa.table(columns)


def running_table(ctx: NWBContext, series: dict[str, h5py.Group]) -> pa.Table | None:
    """Running speed (cm/s) from the Allen series or the best series named like a speed."""
    candidates = sorted(
        (rank, path)
        for path, group in series.items()
        if (rank := _speed_rank(path, group)) is not None
    )
    if not candidates:
        return None
    path = candidates[0][1]
    ctx.used_by[path] = "running_speed"
    if len(candidates) > 1:
        ctx.note(f"running speed from {path}; other speed series ignored")
    group = series[path]
    with ctx.reading(path.lstrip("/")):
        times = series_times(group)
        speed = series_data(group)
    if speed.ndim != 1 or len(speed) != len(times) or speed.dtype.kind != "f":
        ctx.note(f"{path} is not one speed value per timestamp; running speed skipped")
        return None
    unit = (as_text(group["data"].attrs.get("unit")) or "").strip().lower()
    speed = speed * _TO_CM_PER_S.get(unit, 1.0)
    return pa.table({"time": pa.array(times), "speed": pa.array(speed)})


def _speed_rank(path: str, group: h5py.Group) -> int | None:
    """How good a running-speed source a series is (lower is better); None: not one."""
    name = _basename(path)
    if path == _ALLEN_SPEED:
        return 0
    if _NOT_SPEED.search(name):
        return None
    if _SPEED.search(name):
        return 1 if name.lower() == "running_speed" else 2
    data = group.get("data")
    unit = as_text(data.attrs.get("unit")) if isinstance(data, h5py.Dataset) else None
    if _RUNNING.search(name) and unit and _SPEED_UNIT.search(unit.strip()):
        return 3
    return None
