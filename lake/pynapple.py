"""One session as pynapple objects — what `pynapple.load_file` gives for its NWB file.

`to_pynapple(lake, session_id)` (also `Lake.to_pynapple`) reads the session through the lake's
public seam (`Lake.sql`, `Lake.analysis.spike_trains`: the snapshot's spikes files opened with
`Lake.store.open_input`) at one lake version and returns a dict of pynapple objects:

======================  =====================  ================================================
key                     pynapple object        from
======================  =====================  ================================================
``units``               TsGroup                units + spikes; metadata below
``trials``              IntervalSet            trials (its columns as metadata)
``<interval table>``    IntervalSet            intervals (and stimulus_presentations, where
                                               the lake keeps them apart), one per name
                                               (epochs, ``*_presentations``, ...)
``licks``               Ts                     every lick; with several lick sources also one
                                               Ts per source under its name (NWB series
                                               names, e.g. lick_left_times)
``rewards``             Tsd                    reward volume (mL) at each reward
``running_speed``       Tsd                    running speed (cm/s)
``<series name>``       Tsd, TsdFrame, Ts      every time series the lake keeps (timeseries),
                                               keyed as load_file keys them (speed, volume,
                                               events, ...)
======================  =====================  ================================================

Units metadata: pynapple's `rate`; every column of units_annotated (the unit's own columns as
the source named them, its area — structure_acronym, structure_id, beryl_acronym, ... — probe
and session columns; list columns, and a unit column named `rate`, which pynapple keeps for its
own, are left out); and, under their NWB names as load_file shows
them, the peak electrode's columns: x, y, z, location and the source's other electrodes
columns (imp, filtering, ...). `location` is where load_file finds it: the unit's own location
when it has one, else its probe's (the NWB electrode group's), else its peak electrode's; the
unit's finest area is structure_acronym (units_annotated: the peak electrode's first).

What differs from load_file, on purpose: `licks`, `rewards` and `running_speed` are added under
the lake's names (the lake's own tables; `licks` is a `Ts` of every lick); a trials or interval
table whose ids do not start at 0 still gets its columns as metadata (load_file then fails to
build it and returns the raw NWB object); tables load_file mistakes for unit tables (a trials
table with a ragged `*_times` column) come back as IntervalSets; series whose values the lake
does not copy (image frames) are not handed out. IntervalSets are built by pynapple from the
same columns, so its rules apply alike (rows with a NaN start or end dropped, overlapping
intervals joined and their metadata dropped, with pynapple's warnings). When a series has the
name of one of the keys above, the key above wins.

Importing this module imports pynapple (`pip install "nplake[pynapple]"`); `import lake` does
not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ingest.nwb.mapping import ELECTRODE_COLUMNS
from schemas import TABLES, LakeError

try:
    import pynapple as nap
except ImportError as exc:  # pragma: no cover - the extra is missing
    msg = 'lake.pynapple needs pynapple: pip install "nplake[pynapple]"'
    raise ImportError(msg) from exc

if TYPE_CHECKING:
    from lake.analysis import SpikeTrains, UnitsLike
    from lake.lake import Lake

#: Channels columns shown as units metadata under the NWB electrodes names load_file uses.
_ELECTRODE_NAMES = {lake: nwb for nwb, lake in ELECTRODE_COLUMNS.items() if nwb in ("x", "y", "z")}
#: Columns of the lake's own bookkeeping, not the source's, left out of interval metadata.
_INTERVAL_KEYS = ("session_id", "name", "row", "trial_index", "module")
#: Lake tables holding NWB interval tables by name (stimulus presentations may have their own).
_INTERVAL_TABLES = ("intervals", "stimulus_presentations")


class PynappleSession(dict):
    """The pynapple objects of one session, by key (see the module doc); a plain dict."""

    def __init__(self, session_id: str, objects: dict[str, Any]) -> None:
        super().__init__(objects)
        self.session_id = session_id

    def __repr__(self) -> str:
        width = max((len(k) for k in self), default=4)
        rows = [f"  {k:<{width}}  {type(v).__name__}" for k, v in self.items()]
        return "\n".join([f"session {self.session_id}", *rows])


def to_pynapple(lake: Lake, session_id: str) -> PynappleSession:
    """One session as pynapple objects, as `pynapple.load_file` gives its NWB file.

    Parameters
    ----------
    lake
        The lake (read at the version it reads now, once for every table).
    session_id
        A session of the lake.

    Examples
    --------
    >>> data = lk.to_pynapple("1052076410")  # doctest: +SKIP
    >>> data["units"].getby_category("structure_acronym")["VISp"]  # doctest: +SKIP
    """
    lake = lake.pinned()
    sid = lake.require_session(session_id)
    objects: dict[str, Any] = {"units": _units(lake, sid)}
    objects.update(_interval_sets(lake, sid))
    objects.update(_events(lake, sid))
    running = lake.sql(f"SELECT time, speed FROM running_speed {_where(sid)} ORDER BY time")
    if running.height:
        objects["running_speed"] = nap.Tsd(
            t=running["time"].to_numpy(), d=running["speed"].to_numpy()
        )
    for key, series in _time_series(lake, sid).items():
        objects.setdefault(key, series)
    return PynappleSession(sid, objects)


def units_tsgroup(lake: Lake, units: UnitsLike = None) -> nap.TsGroup:
    """One TsGroup of chosen units across sessions, keyed by unit_id, with `units`' metadata.

    Each session keeps its own clock: spike times are seconds on their session's master clock
    and are not shifted, because sessions share no clock to shift them to. So the group is
    fit for what is computed per unit (rates, ISIs, autocorrelograms, tuning to a unit's own
    session's events) and not for anything that compares times across sessions: restricting
    to one session's epochs, counting in shared time bins or cross-correlating units of
    different sessions would mix clocks. Split it with ``group.getby_category("session_id")``
    for those. Each unit's time support is its own session's span (first to last spike of the
    session), so `rate` is over its own session; the group's time support (pynapple needs one)
    spans from the earliest to the latest of those spans.

    pynapple keys units by integers, so unit ids must be unique across the chosen sessions
    (Allen ids are); otherwise `LakeError` names the clashes (choose fewer sessions, or build
    one group per session with `to_pynapple`).

    Parameters
    ----------
    lake
        The lake.
    units
        None (every unit), a quality preset name, or a polars frame with session_id, unit_id.
    """
    lake = lake.pinned()
    chosen = lake.analysis.units(units)
    clash = (
        chosen.group_by("unit_id")
        .agg(pl.col("session_id").unique())
        .filter(pl.col("session_id").list.len() > 1)
        .sort("unit_id")
    )
    if clash.height:
        shown = ", ".join(f"{u} ({', '.join(sorted(s))})" for u, s in clash.head(5).iter_rows())
        msg = (
            f"{clash.height} unit ids occur in several sessions of the selection: {shown}; "
            "a TsGroup keys units by integer, so choose units of fewer sessions or build one "
            "group per session with Lake.to_pynapple"
        )
        raise LakeError(msg)
    spans = lake.analysis.session_spans().join(
        chosen.select("session_id").unique(), on="session_id", how="semi"
    )
    parts, frames = {}, []
    for (sid,), picked in chosen.partition_by("session_id", as_dict=True).items():
        span = spans.filter(pl.col("session_id") == sid)
        if span.height == 0:  # a session without spikes: nothing pynapple can hold
            continue
        support = nap.IntervalSet(span["first_spike_time"].item(), span["last_spike_time"].item())
        trains = lake.analysis.spike_trains(str(sid), picked["unit_id"].to_numpy())
        parts.update(_ts(trains, support))
        frames.append(_unit_metadata(lake, str(sid), trains.unit_ids))
    if not parts:
        msg = "no chosen unit belongs to a session with spikes"
        raise LakeError(msg)
    first = float(spans["first_spike_time"].min())  # type: ignore[arg-type]
    last = float(spans["last_spike_time"].max())  # type: ignore[arg-type]
    metadata = pl.concat(frames, how="diagonal_relaxed").to_pandas().set_index("unit_id")
    metadata = metadata.loc[sorted(parts)]
    return nap.TsGroup(
        parts,
        time_support=nap.IntervalSet(first, last),
        bypass_check=True,  # each unit keeps its own session's support (see above)
        metadata=metadata,
    )


# ----------------------------------------------------------------------------------- units
def _units(lake: Lake, sid: str) -> nap.TsGroup:
    """The session's units: spike trains from one flat array, metadata from the lake's rows.

    The group pynapple makes of them (load_file alike): its time support is the union of the
    units' [first, last] spike spans and every unit is restricted to it. When those spans
    overlap into one interval and no spike lies outside it, that union is known up front and
    the restriction changes nothing, so each Ts is made on it directly (no per-unit time
    support, no second copy of every spike); the group is the same, rates included.
    """
    trains = lake.analysis.spike_trains(sid)
    metadata = _unit_metadata(lake, sid, trains.unit_ids).to_pandas().set_index("unit_id")
    support = _one_span(trains)
    if support is None and not _spans(trains).any():
        msg = (
            f"session {sid}: no unit has spikes at two different times, so pynapple has no "
            "time support for its TsGroup of units"
        )
        raise LakeError(msg)
    if support is None:  # gaps between the spans: pynapple's own union and restriction
        return nap.TsGroup(_ts(trains), metadata=metadata)
    return nap.TsGroup(
        _ts(trains, support), time_support=support, bypass_check=True, metadata=metadata
    )


def _spans(trains: SpikeTrains) -> np.ndarray:
    """Per unit with spikes: whether its last spike is after its first (a span pynapple keeps)."""
    has = trains.ends > trains.starts
    return trains.times[trains.ends[has] - 1] > trains.times[trains.starts[has]]


def _one_span(trains: SpikeTrains) -> nap.IntervalSet | None:
    """The union of the units' spike spans when it is one interval holding every spike.

    A unit's span is [first, last] spike; pynapple gives a unit whose spikes all share one time
    no span (zero length), so its spikes must fall inside the others' union. None when spans
    leave a gap or only touch, or when no unit has a span.
    """
    has = trains.ends > trains.starts
    first = trains.times[trains.starts[has]]
    last = trains.times[trains.ends[has] - 1]
    spans = _spans(trains)
    if not spans.any():
        return None
    order = np.argsort(first[spans], kind="stable")
    lo, hi = first[spans][order], last[spans][order]
    reach = np.maximum.accumulate(hi)
    if np.any(lo[1:] >= reach[:-1]):  # a gap, or spans that only touch
        return None
    a, b = float(lo[0]), float(reach[-1])
    if np.any(first[~spans] < a) or np.any(last[~spans] > b):
        return None
    return nap.IntervalSet(a, b)


def _ts(trains: SpikeTrains, support: nap.IntervalSet | None = None) -> dict[int, nap.Ts]:
    """One Ts per unit, each a view of the session's flat array until pynapple copies it.

    A loop over units because a TsGroup is a dict of Ts; no file is read here.
    """
    keys = trains.unit_ids.tolist()
    return {k: nap.Ts(t=t, time_support=support) for k, t in zip(keys, trains.split(), strict=True)}


def _unit_metadata(lake: Lake, sid: str, unit_ids: np.ndarray) -> pl.DataFrame:
    """units_annotated's columns plus the peak electrode's under NWB names, one row per unit."""
    annotated = lake.sql(f"SELECT * FROM units_annotated {_where(sid)} ORDER BY unit_id").drop(
        "location"
    )
    electrodes = lake.sql(_electrodes_query(lake, sid))
    own = [c for c in electrodes.columns if c != "unit_id" and c in annotated.columns]
    frame = annotated.join(electrodes.drop(own), on="unit_id", how="left")  # the unit's first
    keep = [
        c
        for c, dtype in frame.schema.items()
        if not isinstance(dtype, pl.List | pl.Struct | pl.Array)
        and c != "rate"  # pynapple's own column: the unit's spikes over the time support
    ]
    frame = frame.select(keep)
    return (
        pl.DataFrame({"unit_id": unit_ids}, schema={"unit_id": pl.Int64})
        .join(frame, on="unit_id", how="left")
        .select(pl.exclude(_all_null(frame, ("unit_id",))))
    )


def _electrodes_query(lake: Lake, sid: str) -> str:
    """The peak electrode's x, y, z, location and source columns of each unit of a session."""
    extras = [
        name
        for name in lake.snapshot().schema("channels").names
        if not TABLES["channels"].has_column(name)
    ]
    picked = [f'c."{lake_name}" AS "{nwb}"' for lake_name, nwb in _ELECTRODE_NAMES.items()]
    picked += [f'c."{name}"' for name in extras]
    location = (
        "coalesce(nullif(CAST(u.location AS VARCHAR), ''), nullif(p.location, ''), "
        "nullif(c.structure_acronym, '')) AS location"
    )
    return (
        f"SELECT u.unit_id, {', '.join([location, *picked])} FROM units AS u "
        "LEFT JOIN channels AS c ON c.session_id = u.session_id AND c.probe = u.probe "
        "AND c.channel = u.peak_channel "
        "LEFT JOIN probes AS p ON p.session_id = u.session_id AND p.probe = u.probe "
        f"WHERE u.session_id = '{sid}'"
    )


# ------------------------------------------------------------------------------- intervals
def _interval_sets(lake: Lake, sid: str) -> dict[str, nap.IntervalSet]:
    """The trials and every interval table of the session, each with its own columns."""
    out = {}
    trials = lake.sql(f"SELECT * FROM trials {_where(sid)} ORDER BY trial_index")
    if trials.height:
        out["trials"] = _interval_set(trials)
    for table in _INTERVAL_TABLES:
        if table not in TABLES:
            continue
        rows = lake.sql(f'SELECT * FROM {table} {_where(sid)} ORDER BY name, "row"')
        for (name,), one in rows.partition_by("name", as_dict=True, maintain_order=True).items():
            out.setdefault(str(name), _interval_set(one))
    return out


def _interval_set(rows: pl.DataFrame) -> nap.IntervalSet:
    """An IntervalSet built by pynapple from a table's rows (start, end, then its columns).

    Columns no row of this table has (they belong to other sessions or other interval tables
    sharing the lake's table) are left out, as are the lake's keys.
    """
    rows = rows.drop([c for c in _INTERVAL_KEYS if c in rows.columns])
    rows = rows.drop(_all_null(rows, ("start_time", "stop_time")))
    frame = rows.rename({"start_time": "start", "stop_time": "end"}).to_pandas()
    return nap.IntervalSet(frame)  # list columns (tags) as numpy arrays, like load_file


# ---------------------------------------------------------------------------------- events
def _events(lake: Lake, sid: str) -> dict[str, nap.Ts | nap.Tsd]:
    """Licks (all, and per source when there are several) and rewards."""
    out: dict[str, nap.Ts | nap.Tsd] = {}
    licks = lake.sql(f"SELECT time, source FROM licks {_where(sid)} ORDER BY time, source")
    if licks.height:
        out["licks"] = nap.Ts(t=licks["time"].to_numpy())
        sources = licks.partition_by("source", as_dict=True, maintain_order=True)
        if len(sources) > 1:
            for (source,), rows in sorted(sources.items(), key=lambda item: str(item[0])):
                out.setdefault(str(source), nap.Ts(t=rows["time"].to_numpy()))
    rewards = lake.sql(f"SELECT time, volume FROM rewards {_where(sid)} ORDER BY time")
    if rewards.height:
        volume = rewards["volume"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        out["rewards"] = nap.Tsd(t=rewards["time"].to_numpy(), d=volume)
    return out


def _time_series(lake: Lake, sid: str) -> dict[str, nap.Ts | nap.Tsd | nap.TsdFrame]:
    """The session's other time series (position, head direction, pupil, ...), by series name.

    Read from the lake's time-series tables when it has them (`timeseries`: one row per sample
    and component; `timeseries_info`: one row per series), else nothing. One `Tsd` per series
    of one component, one `TsdFrame` (columns = components: x, y, z of a SpatialSeries; 0, 1,
    ... of other 2-d data) per series of several, a `Ts` per text series (NWB annotations), in
    the series' own sample order, as load_file reads them. Series whose values the lake did not
    copy (images, electrical series: listed in the inventory) are left out.
    """
    if not {"timeseries", "timeseries_info"} <= set(TABLES):
        return {}
    info = lake.sql(
        f"SELECT series, components FROM timeseries_info {_where(sid)} "
        "AND coalesce(data_copied, true) ORDER BY series",
    )
    if info.height == 0:
        return {}
    samples = lake.sql(
        "SELECT series, component, sample, time, value, text IS NOT NULL AS is_text "
        f"FROM timeseries {_where(sid)} ORDER BY series, sample",
    )
    by_series = samples.partition_by("series", as_dict=True, maintain_order=True)
    out: dict[str, nap.Ts | nap.Tsd | nap.TsdFrame] = {}
    for name, components in info.iter_rows():  # a loop over series, not samples
        rows = by_series.get((name,))
        if rows is None:
            continue
        out[str(name)] = _series(rows, list(components or []))
    return out


def _series(rows: pl.DataFrame, components: list[str]) -> nap.Ts | nap.Tsd | nap.TsdFrame:
    """One series' rows (sorted by sample) as the pynapple object load_file makes of it."""
    if rows["is_text"].all():
        return nap.Ts(t=rows["time"].to_numpy())
    if len(components) <= 1:
        return nap.Tsd(t=rows["time"].to_numpy(), d=rows["value"].to_numpy())
    order = {c: i for i, c in enumerate(components)}
    wide = rows.with_columns(
        pl.col("component").replace_strict(order, return_dtype=pl.Int64).alias("at")
    ).sort("sample", "at")
    values = wide["value"].to_numpy().reshape(-1, len(components))
    times = wide["time"].to_numpy()[:: len(components)]
    columns: list = (
        [int(c) for c in components] if all(c.isdigit() for c in components) else components
    )
    return nap.TsdFrame(t=times, d=values, columns=columns)


# --------------------------------------------------------------------------------- helpers
def _where(sid: str) -> str:
    """The filter on one session (an id `Lake.require_session` validated)."""
    return f"WHERE session_id = '{sid}'"


def _all_null(frame: pl.DataFrame, keep: tuple[str, ...]) -> list[str]:
    """Columns of `frame` with no value in any row, but those in `keep`."""
    if frame.height == 0:
        return []
    counts = frame.null_count().row(0, named=True)
    return [c for c, n in counts.items() if n == frame.height and c not in keep]
