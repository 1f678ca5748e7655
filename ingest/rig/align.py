"""Clock alignment: a least-squares fit of a probe clock to the sync (master) clock.

Both clocks record the same barcodes (`barcodes.py`). Barcodes are matched by value, and
`t_sync = a * t_probe + b` is fitted by least squares over every edge of the matched barcodes
(the start pulse and each run of bits: rises and falls, paired by rank), or over their start
times when the edges are not given (the common older tools draw a line through two barcodes
and report no error). A spike at probe sample `s` is then at
`a * (s / nominal_rate) + b` on the master clock (`apply`).

Policies
--------
Matching
    A value is matched only when it occurs exactly once on each clock; repeated values are
    ambiguous and are left out (they are unmatched rows in the audit).
Outliers
    One robust pass. A first line comes from medians (the median slope between consecutive
    matches, then the median offset), so a bad match cannot drag it. Matches further from that
    line than `outlier_samples` sync samples (default 5), or than 5 robust standard deviations
    when the residuals are broad, are left out of the least-squares fit; their audit rows have
    `used_in_fit = False` and the note counts them.
Quality
    status 'aligned' when the largest residual of the fitted matches is within the timing
    resolution of the two clocks: one sync sample plus one probe sample (when the probe's
    nominal rate is given; else one sync sample). 'flagged' when it is larger, when only two
    barcodes matched (no residual to check), or when the slope is more than `max_slope_ppm`
    from 1 (a wrong nominal rate); the note says why.

    FORMATS.md 2.2 asks to flag above one sync sample; the real files say that is too strict.
    Each clock stamps an edge up to one of its own samples late, so residuals spread over both
    sample periods: barcodes of `alignment/vbn_test_case_1.json` fitted across two 30 kHz
    probes leave RMS 12-18 µs and max 25-41 µs, and a 30 kHz probe against a 100 kHz sync
    clock leaves up to ~22 µs. With one sync sample (10 µs) as the limit every real probe
    would be flagged and the flag would mean nothing.
Unaligned probes
    A probe with no barcodes (no TTL events, a wrong line), a sync file with none, or fewer than
    two barcodes matching, is never given a guessed mapping: its fit has status 'unaligned',
    `a = 1, b = 0` (its own clock) and the reason in `note`, and `apply` refuses it unless
    called with `allow_unaligned=True`. The session assembler keeps such a probe on its own
    clock, writes `clock_status = 'unaligned'` and the reason in its probes row, and surfaces it
    in the session notes and the ingest summary, so no query mistakes its times for master-clock
    times.

Examples
--------
>>> fit = fit_clock(p_times, p_values, s_times, s_values, sync_sample_period=1e-5)  # doctest: +SKIP
>>> spike_times = apply(fit, spike_samples, 30000.0)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa

from ingest.rig.barcodes import BarcodeEdges, paired_edges
from schemas import DecodeError

Status = Literal["aligned", "flagged", "unaligned"]

#: Columns of the `clock_alignment` table (without session_id), in order.
AUDIT_SCHEMA = pa.schema(
    [
        pa.field("probe", pa.string(), nullable=False),
        pa.field("barcode", pa.int64(), nullable=False),
        pa.field("probe_time", pa.float64(), nullable=False),
        pa.field("sync_time", pa.float64()),
        pa.field("residual", pa.float64()),
        pa.field("used_in_fit", pa.bool_(), nullable=False),
        pa.field("n_edges", pa.int64()),
        pa.field("edge_rms_residual", pa.float64()),
    ]
)


@dataclass(frozen=True)
class ClockFit:
    """The fitted mapping `t_sync = a * t_probe + b` of one probe, its quality and audit.

    Attributes
    ----------
    status
        'aligned', 'flagged' or 'unaligned' (see the module docstring).
    a, b
        Slope (s/s) and offset (s); 1 and 0 when unaligned.
    n_matched
        Barcodes matched between the clocks.
    n_used
        Matches that entered the least-squares fit (n_matched minus outliers).
    rms_residual, max_residual
        Over the fitted matches, in seconds; None when unaligned.
    residual_limit
        The max residual above which the fit is flagged (s).
    effective_rate
        `nominal_rate / a` in Hz, when a nominal rate was given and the probe is aligned.
    note
        Why the fit is flagged or unaligned, and what was left out ('' when nothing).
    audit
        One row per barcode seen on the probe clock, in the `clock_alignment` shape.
    """

    status: Status
    a: float
    b: float
    n_matched: int
    n_used: int
    rms_residual: float | None
    max_residual: float | None
    sync_sample_period: float
    nominal_rate: float | None
    residual_limit: float
    note: str
    audit: pa.Table = field(repr=False)
    #: Barcode edges (rises and falls) the least-squares line went through; the matched
    #: barcodes' start times alone when the edges were not given.
    n_edges: int = 0

    @property
    def aligned(self) -> bool:
        """Whether the probe has a mapping to the master clock (aligned or flagged)."""
        return self.status != "unaligned"

    @property
    def effective_rate(self) -> float | None:
        """The probe's sample rate measured on the master clock (nominal rate / a)."""
        if not self.aligned or self.nominal_rate is None:
            return None
        return self.nominal_rate / self.a

    def probe_columns(self) -> dict[str, object]:
        """The clock columns of this probe's `probes` row."""
        fitted = self.aligned
        return {
            "aligned_sampling_rate": self.effective_rate,
            "clock_slope": self.a if fitted else None,
            "clock_offset": self.b if fitted else None,
            "clock_rms_residual": self.rms_residual,
            "clock_max_residual": self.max_residual,
            "clock_n_barcodes": self.n_matched,
            "clock_n_edges": self.n_edges if fitted else None,
            "clock_status": self.status,
            "clock_note": self.note or None,
        }


def fit_clock(
    probe_times: np.ndarray,
    probe_values: np.ndarray,
    sync_times: np.ndarray,
    sync_values: np.ndarray,
    *,
    sync_sample_period: float,
    nominal_rate: float | None = None,
    probe: str = "",
    outlier_samples: float = 5.0,
    max_slope_ppm: float = 1000.0,
    residual_limit: float | None = None,
    probe_edges: BarcodeEdges | None = None,
    sync_edges: BarcodeEdges | None = None,
) -> ClockFit:
    """Fit a probe clock to the sync clock from barcodes decoded on both.

    Parameters
    ----------
    probe_times, probe_values
        Barcode start times (s, probe clock) and values, as `decode_barcodes` returns them.
    sync_times, sync_values
        The same on the sync clock.
    sync_sample_period
        One sync sample (s): the residual a good fit stays within.
    nominal_rate
        The probe's nominal sample rate (Hz), for `effective_rate`.
    probe
        Probe name written in the audit rows.
    outlier_samples
        Matches further than this many sync samples from the robust first line are left out.
    max_slope_ppm
        A slope further than this from 1 flags the fit (the nominal rate is probably wrong).
    residual_limit
        A larger max residual (s) flags the fit. Default: one sync sample plus one probe sample
        (`1 / nominal_rate`), or one sync sample without a nominal rate.
    probe_edges, sync_edges
        Every edge of the barcodes on each clock (`Barcodes.edges`, in the order of the times
        and values given). With both, the line is fitted through every edge of the matched
        barcodes — the start pulse and every bit's rise and fall, paired by rank within
        barcodes of the same value — instead of the start times alone: ~20 points a barcode
        instead of one, so the clocks' rounding averages out (max error on synthetic sessions
        from 11 µs to 2-3 µs). A barcode whose edges differ in number on the two clocks
        contributes its start only.

    Examples
    --------
    >>> t = np.arange(5) * 30.0
    >>> fit = fit_clock(t, np.arange(5), 2 + t * (1 + 1e-6), np.arange(5), sync_sample_period=1e-5)
    >>> fit.status, round(fit.b, 9)
    ('aligned', 2.0)
    """
    p_times = np.asarray(probe_times, dtype=np.float64).ravel()
    p_values = np.asarray(probe_values, dtype=np.int64).ravel()
    s_times = np.asarray(sync_times, dtype=np.float64).ravel()
    s_values = np.asarray(sync_values, dtype=np.int64).ravel()
    for name, t, v in (("probe", p_times, p_values), ("sync", s_times, s_values)):
        if len(t) != len(v):
            msg = f"{name}: {len(t)} barcode times but {len(v)} values"
            raise ValueError(msg)
    order = np.argsort(p_times, kind="stable")
    p_times, p_values = p_times[order], p_values[order]
    sync_index = _match(p_values, s_values)
    matched = sync_index >= 0
    matched_sync = np.full(len(p_times), np.nan)
    matched_sync[matched] = s_times[sync_index[matched]]
    unaligned = _why_unaligned(len(p_times), len(s_times), int(matched.sum()))
    audit_inputs = (probe, p_times, p_values, matched_sync)
    if unaligned:
        return _unaligned(audit_inputs, unaligned, sync_sample_period, nominal_rate, matched)
    x, y = p_times[matched], matched_sync[matched]
    a0, b0 = _robust_line(x, y)
    first = y - (a0 * x + b0)
    spread = 1.4826 * np.median(np.abs(first - np.median(first)))
    inlier = np.abs(first) <= max(outlier_samples * sync_sample_period, 5.0 * spread)
    if inlier.sum() < 2:
        reason = f"the {len(x)} matched barcodes do not lie on one line"
        return _unaligned(audit_inputs, reason, sync_sample_period, nominal_rate, matched)
    a, b = _least_squares(x[inlier], y[inlier])
    matched_rows = np.flatnonzero(matched)
    edges = None
    if probe_edges is not None and sync_edges is not None:
        pairs = (order[matched_rows[inlier]], sync_index[matched_rows[inlier]])
        edges = paired_edges(probe_edges, sync_edges, *pairs)
    if edges is not None and len(edges[0]):
        ex, ey, owner = edges
        first = ey - (a * ex + b)
        keep = np.abs(first) <= max(outlier_samples * sync_sample_period, 5.0 * _spread(first))
        ex, ey, owner = ex[keep], ey[keep], owner[keep]
        a, b = _least_squares(ex, ey)
        used_res = ey - (a * ex + b)
        per_barcode = np.flatnonzero(inlier)[owner]  # edge -> row of x among the matches
        n_edges = np.bincount(per_barcode, minlength=len(x))
        edge_ss = np.bincount(per_barcode, weights=used_res**2, minlength=len(x))
    else:
        used_res = (y - (a * x + b))[inlier]
        n_edges = inlier.astype(np.int64)
        edge_ss = np.where(inlier, (y - (a * x + b)) ** 2, 0.0)
    residual = y - (a * x + b)
    rms = float(np.sqrt(np.mean(used_res**2)))
    worst = float(np.max(np.abs(used_res)))
    if residual_limit is None:
        residual_limit = sync_sample_period + (1.0 / nominal_rate if nominal_rate else 0.0)
    flags = []
    if worst > residual_limit * (1 + 1e-9):
        flags.append(
            f"max residual {worst * 1e6:.1f} µs exceeds the clocks' resolution "
            f"({residual_limit * 1e6:.1f} µs)"
        )
    if inlier.sum() == 2:
        flags.append("only 2 barcodes matched: no residual to check the fit with")
    ppm = (a - 1.0) * 1e6
    if abs(ppm) > max_slope_ppm:
        flags.append(f"clock slope is {ppm:.0f} ppm from 1: is the nominal rate right?")
    n_out = int((~inlier).sum())
    notes = (
        [*flags, f"{n_out} of {len(x)} matched barcodes left out as outliers"] if n_out else flags
    )
    all_res = np.full(len(p_times), np.nan)
    all_res[matched] = residual
    used = np.zeros(len(p_times), dtype=bool)
    used[matched_rows[inlier]] = True
    edge_counts = np.zeros(len(p_times), dtype=np.int64)
    edge_counts[matched_rows] = n_edges
    edge_rms = np.full(len(p_times), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        edge_rms[matched_rows] = np.where(n_edges > 0, np.sqrt(edge_ss / n_edges), np.nan)
    return ClockFit(
        status="flagged" if flags else "aligned",
        a=float(a),
        b=float(b),
        n_matched=len(x),
        n_used=int(inlier.sum()),
        rms_residual=rms,
        max_residual=worst,
        sync_sample_period=sync_sample_period,
        nominal_rate=nominal_rate,
        residual_limit=residual_limit,
        note="; ".join(notes),
        audit=_audit(*audit_inputs, all_res, used, edge_counts, edge_rms),
        n_edges=int(np.sum(n_edges)),
    )


def apply(
    fit: ClockFit,
    sample_index: np.ndarray,
    nominal_rate: float,
    *,
    allow_unaligned: bool = False,
) -> np.ndarray:
    """Master-clock times (s, float64) of probe samples: `a * (sample_index / nominal_rate) + b`.

    `sample_index` may be (N,) or (N, 1), any integer or float dtype; the result is (N,). The
    fit is in seconds, so one fit serves every band: pass the rate of the counter the indices
    count on (30 kHz spike samples; 2.5 kHz LFP sample indices; but Open Ephys LFP timestamps
    that count on the 30 kHz acquisition counter, as in the Allen `vbn_test_case_1.json`,
    take 30 kHz). An unaligned fit raises DecodeError unless `allow_unaligned` (then the times
    stay on the probe's own clock).

    Examples
    --------
    >>> apply(fit, spike_times, 30000.0)  # doctest: +SKIP
    """
    if not fit.aligned and not allow_unaligned:
        msg = f"probe clock is unaligned ({fit.note}); pass allow_unaligned=True to keep it"
        raise DecodeError(msg, field="clock_alignment")
    samples = np.asarray(sample_index).ravel()
    return fit.a * (samples.astype(np.float64) / float(nominal_rate)) + fit.b


# --- internals -------------------------------------------------------------------------------


def _spread(values: np.ndarray) -> float:
    """A robust standard deviation (1.4826 x the median absolute deviation)."""
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _match(p_values: np.ndarray, s_values: np.ndarray) -> np.ndarray:
    """Sync barcode index of each probe barcode whose value occurs once on each clock (else -1)."""
    out = np.full(len(p_values), -1, dtype=np.int64)
    if len(p_values) == 0 or len(s_values) == 0:
        return out
    s_unique, s_first, s_count = np.unique(s_values, return_index=True, return_counts=True)
    _, p_inverse, p_count = np.unique(p_values, return_inverse=True, return_counts=True)
    once_on_probe = p_count[p_inverse] == 1
    pos = np.searchsorted(s_unique, p_values)
    pos_ok = np.minimum(pos, len(s_unique) - 1)
    found = (pos < len(s_unique)) & (s_unique[pos_ok] == p_values) & once_on_probe
    found &= s_count[pos_ok] == 1
    out[found] = s_first[pos_ok[found]]
    return out


def _why_unaligned(n_probe: int, n_sync: int, n_matched: int) -> str:
    if n_probe == 0:
        return "no barcodes on the probe clock (no TTL events on the barcode line?)"
    if n_sync == 0:
        return "no barcodes on the sync clock"
    if n_matched < 2:
        return f"{n_matched} barcode(s) match between the clocks; at least 2 are needed"
    return ""


def _robust_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """A line through (x, y) from medians: consecutive slopes, then offsets."""
    dx = np.diff(x)
    good = dx > 0
    a = float(np.median(np.diff(y)[good] / dx[good])) if good.any() else 1.0
    b = float(np.median(y - a * x))
    return a, b


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Ordinary least squares `y = a x + b`, centred for precision."""
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    a = float(np.dot(dx, y - ym) / np.dot(dx, dx))
    return a, float(ym - a * xm)


def _unaligned(
    audit_inputs: tuple[str, np.ndarray, np.ndarray, np.ndarray],
    reason: str,
    period: float,
    nominal_rate: float | None,
    matched: np.ndarray,
) -> ClockFit:
    n = len(matched)
    return ClockFit(
        status="unaligned",
        a=1.0,
        b=0.0,
        n_matched=int(matched.sum()),
        n_used=0,
        rms_residual=None,
        max_residual=None,
        sync_sample_period=period,
        nominal_rate=nominal_rate,
        residual_limit=period + (1.0 / nominal_rate if nominal_rate else 0.0),
        note=reason,
        audit=_audit(
            *audit_inputs,
            np.full(n, np.nan),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=np.int64),
            np.full(n, np.nan),
        ),
    )


def _audit(
    probe: str,
    p_times: np.ndarray,
    p_values: np.ndarray,
    sync_time: np.ndarray,
    residual: np.ndarray,
    used: np.ndarray,
    n_edges: np.ndarray,
    edge_rms: np.ndarray,
) -> pa.Table:
    n = len(p_times)
    return pa.Table.from_arrays(
        [
            pa.array([probe] * n, type=pa.string()),
            pa.array(p_values, type=pa.int64()),
            pa.array(p_times, type=pa.float64()),
            pa.array(sync_time, type=pa.float64(), from_pandas=True),
            pa.array(residual, type=pa.float64(), from_pandas=True),
            pa.array(used, type=pa.bool_()),
            pa.array(n_edges, type=pa.int64()),
            pa.array(edge_rms, type=pa.float64(), from_pandas=True),
        ],
        schema=AUDIT_SCHEMA,
    )
