"""`lake.plots`: PNG figures of the common questions (matplotlib, imported only when plotting).

- `raster_psth`: raster and PSTH of chosen units of one session around an event;
- `area_psth`: mean PSTH per brain area over every session, for a unit selection;
- `units_per_area`: how many units each session has in each brain area (a heat map).

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no GUI, no global
state) and written as PNG files; each function returns the path it wrote. The `*_figure`
variants (`raster_psth_figure`, ...) take the same arguments but `out` and return the
matplotlib `Figure` instead, to restyle or show in a notebook.

Examples
--------
>>> from lake.plots import units_per_area
>>> units_per_area(lk, out="figures/areas.png", preset="allen_visual_coding")  # doctest: +SKIP
PosixPath('figures/areas.png')
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from lake.presets import preset_expr

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lake.lake import Lake

#: Most units drawn side by side by `raster_psth`.
MAX_RASTER_UNITS = 12


def window_bins(window: tuple[float, float], bin_width: float) -> tuple[float, float, int]:
    """(start, bin_width, n_bins) of PSTH bins from START that cover the window (START, STOP).

    The last bin ends at or just after STOP when the window is not a whole number of bins.
    ValueError for a window that is not finite with START < STOP, or a bin width that is not
    a positive number.
    """
    start, stop, width = float(window[0]), float(window[1]), float(bin_width)
    if not (math.isfinite(start) and math.isfinite(stop) and start < stop):
        msg = f"window must be finite seconds START < STOP, got ({start:g}, {stop:g})"
        raise ValueError(msg)
    if not (math.isfinite(width) and width > 0):
        msg = f"bin width must be a positive number of seconds, got {width:g}"
        raise ValueError(msg)
    return start, width, max(1, math.ceil((stop - start) / width - 1e-9))


def raster_psth(
    lk: Lake,
    session_id: str,
    unit_ids: list[int],
    event: str,
    *,
    out: str | os.PathLike,
    window: tuple[float, float] = (-0.5, 1.0),
    bin_width: float = 0.02,
) -> Path:
    """Raster (one row per event) above a PSTH (Hz) for each chosen unit of one session.

    Writes `raster_psth_figure(...)` to `out` (see there for the parameters).
    """
    fig = raster_psth_figure(lk, session_id, unit_ids, event, window=window, bin_width=bin_width)
    return _save(fig, out)


def raster_psth_figure(
    lk: Lake,
    session_id: str,
    unit_ids: list[int],
    event: str,
    *,
    window: tuple[float, float] = (-0.5, 1.0),
    bin_width: float = 0.02,
) -> Figure:
    """Raster (one row per event) above a PSTH (Hz) for each chosen unit of one session.

    One column per unit (sorted by id): the raster on top (a tick per spike, in the unit's
    event rows), its PSTH below as one step line.

    Parameters
    ----------
    lk
        The lake.
    session_id
        The session.
    unit_ids
        Units to draw (1 to `MAX_RASTER_UNITS`).
    event
        An event name of the `events` view, e.g. 'trials.change_time' or 'licks'.
    window
        Seconds around each event; the PSTH uses bins of `bin_width` over the same window.
    bin_width
        PSTH bin width (s).
    """
    sid = lk.require_session(session_id)
    ids = sorted({int(u) for u in unit_ids})
    if not 1 <= len(ids) <= MAX_RASTER_UNITS:
        msg = f"raster_psth draws 1 to {MAX_RASTER_UNITS} units, got {len(ids)}"
        raise ValueError(msg)
    known = lk.scan("units").filter(pl.col("session_id") == sid).select("unit_id").collect()
    missing = sorted(set(ids) - set(known["unit_id"].to_list()))
    if missing:
        msg = f"session {sid} has no unit {', '.join(map(str, missing))} ({known.height} units)"
        raise ValueError(msg)
    start, bin_width, n_bins = window_bins(window, bin_width)
    stop = float(window[1])
    chosen = pl.DataFrame({"session_id": [sid] * len(ids), "unit_id": ids})
    an = lk.analysis
    spikes = an.aligned_spikes(chosen, event, window=(start, stop))
    rates = an.psth(chosen, event, bins=(start, bin_width, n_bins))
    order = np.sort(an.events(event).filter(pl.col("session_id") == sid)["event_index"].to_numpy())

    fig = _figure(width=2.6 * len(ids), height=5.0)
    grid = fig.add_gridspec(2, len(ids), height_ratios=(3, 2), hspace=0.08)
    for col, unit in enumerate(ids):
        ax_r = fig.add_subplot(grid[0, col])
        ax_p = fig.add_subplot(grid[1, col], sharex=ax_r)
        mine = spikes.filter(pl.col("unit_id") == unit)
        rows = np.searchsorted(order, mine["event_index"].to_numpy())  # event -> raster row
        ax_r.scatter(mine["rel_time"].to_numpy(), rows, s=4, marker="|", color="black", lw=0.6)
        ax_r.set_ylim(-0.5, max(len(order), 1) - 0.5)
        ax_r.axvline(0.0, color="tab:red", lw=0.8)
        ax_r.set_title(f"unit {unit}", fontsize=8)
        ax_r.tick_params(labelbottom=False, labelsize=7)
        psth = rates.filter(pl.col("unit_id") == unit).sort("bin")
        edges = np.append(psth["bin_start"].to_numpy(), start + n_bins * bin_width)
        ax_p.stairs(psth["rate_hz"].to_numpy(), edges, color="black")
        ax_p.axvline(0.0, color="tab:red", lw=0.8)
        ax_p.set_xlim(start, stop)
        ax_p.tick_params(labelsize=7)
        ax_p.set_xlabel(f"s from {event}", fontsize=7)
        if col == 0:
            ax_r.set_ylabel(f"{event} (events)", fontsize=7)
            ax_p.set_ylabel("rate (Hz)", fontsize=7)
    fig.suptitle(f"session {sid}", fontsize=9)
    return fig


def area_psth(
    lk: Lake,
    event: str,
    *,
    out: str | os.PathLike,
    preset: str | None = None,
    bins: tuple[float, float, int] = (-0.5, 0.02, 75),
    areas: list[str] | None = None,
) -> Path:
    """Mean PSTH (Hz) per brain area around `event`, over every session's units.

    Writes `area_psth_figure(...)` to `out` (see there for the parameters).
    """
    return _save(area_psth_figure(lk, event, preset=preset, bins=bins, areas=areas), out)


def area_psth_figure(
    lk: Lake,
    event: str,
    *,
    preset: str | None = None,
    bins: tuple[float, float, int] = (-0.5, 0.02, 75),
    areas: list[str] | None = None,
) -> Figure:
    """Mean PSTH (Hz) per brain area around `event`, over every session's units.

    One step line per area that has units, labelled with the area and its number of units.

    Parameters
    ----------
    lk
        The lake.
    event
        An event name of the `events` view, e.g. 'licks'.
    preset
        Use only units passing this quality preset (default: every unit).
    bins
        (start, width, n_bins) in seconds from the event.
    areas
        Areas to draw (default: the 8 with the most units).
    """
    table = lk.analysis.psth_by_area(preset, event, bins=bins)
    if areas is None:
        top = (
            table.group_by("structure_acronym")
            .agg(pl.col("n_units").max())
            .sort("n_units", "structure_acronym", descending=[True, False])
        )
        areas = top["structure_acronym"].drop_nulls().head(8).to_list()
    start, width, n_bins = float(bins[0]), float(bins[1]), int(bins[2])
    fig = _figure(width=7.0, height=4.0)
    ax = fig.add_subplot()
    for area in areas:
        rows = table.filter(pl.col("structure_acronym") == area).sort("bin")
        if rows.height:
            edges = np.append(rows["bin_start"].to_numpy(), start + n_bins * width)
            label = f"{_short(area)} ({rows['n_units'][0]} units)"
            ax.stairs(rows["rate_hz"].to_numpy(), edges, label=label)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel(f"s from {event}")
    ax.set_ylabel("mean rate (Hz)")
    ax.set_title(f"PSTH per area around {event}" + (f" ({preset} units)" if preset else ""))
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def units_per_area(
    lk: Lake, *, out: str | os.PathLike, preset: str | None = None, max_areas: int = 40
) -> Path:
    """Heat map of units per (brain area, session), with the counts written in the cells."""
    return _save(units_per_area_figure(lk, preset=preset, max_areas=max_areas), out)


def units_per_area_figure(lk: Lake, *, preset: str | None = None, max_areas: int = 40) -> Figure:
    """Heat map of units per (brain area, session), with the counts written in the cells.

    Rows are the `max_areas` areas with the most units (units without an area: "(none)"),
    columns the sessions in id order; a cell holds the number of units (preset applied).
    """
    units = lk.analysis.units_annotated().lazy()
    if preset is not None:
        units = units.filter(preset_expr(preset))
    counts = (
        units.group_by("structure_acronym", "session_id")
        .agg(pl.len().alias("n"))
        .with_columns(pl.col("structure_acronym").fill_null("(none)"))
        .collect()
    )
    totals = (
        counts.group_by("structure_acronym")
        .agg(pl.col("n").sum())
        .sort("n", "structure_acronym", descending=[True, False])
    )
    area_names = totals["structure_acronym"].head(max_areas).to_list()
    if not area_names:
        msg = f"no units to plot: none pass preset {preset!r}" if preset else "no units to plot"
        raise ValueError(msg)
    sessions = sorted(lk.sessions()["session_id"].to_list())
    cells = counts.join(
        pl.DataFrame({"structure_acronym": area_names, "i": range(len(area_names))}),
        on="structure_acronym",
    ).join(pl.DataFrame({"session_id": sessions, "j": range(len(sessions))}), on="session_id")
    grid = np.zeros((len(area_names), len(sessions)), dtype=np.int64)
    grid[cells["i"].to_numpy(), cells["j"].to_numpy()] = cells["n"].to_numpy()

    area_labels = [_short(a) for a in area_names]
    session_labels = [_short(s) for s in sessions]
    longest_area = max((len(a) for a in area_labels), default=4)
    longest_session = max((len(s) for s in session_labels), default=4)
    fig = _figure(
        width=max(5.0, 0.3 * len(sessions) + 0.07 * longest_area + 3.0),
        height=max(4.0, 0.22 * len(area_names) + 0.07 * longest_session + 2.0),
    )
    ax = fig.add_subplot()
    image = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(sessions)), session_labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(area_names)), area_labels, fontsize=6)
    for (i, j), n in np.ndenumerate(grid):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=5, color="white")
    fig.colorbar(image, ax=ax, label="units")
    ax.set_title("units per area and session" + (f" ({preset})" if preset else ""))
    return fig


def _short(label: str, limit: int = 24) -> str:
    """A tick label cut to `limit` characters (real sources have long area strings)."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _figure(*, width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, out: str | os.PathLike) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120)
    return path
