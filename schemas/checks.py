"""Value rules every decoder's tables obey: times are finite seconds on the session's clock.

`SessionBundle.validate()` runs them on each conformed table: in-memory tables at once, streams
(spikes, sync_edges) batch by batch while the lake writes them, so nothing is read twice and a
refusal still comes before the commit. Each rule either **refuses** the session (a
`SchemaViolation` naming the file, table, column and the offending value) or **keeps** it with a
note (bundle notes, hence `sessions.notes` and the ingest summary). The rules and why each is a
refusal or a note are tabled in docs/ingest.md ("What is refused, what is noted").

Per batch the common case costs one min and one max over the times (NaN and ±inf show there);
the offending rows are located only when something is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from schemas.errors import SchemaViolation
from schemas.tables import TABLES

#: |time| beyond this is not seconds from a session's start (2 days: milliseconds of a session
#: longer than 3 minutes, sample indices and Unix times all land beyond it).
MAX_TIME_S = 172_800.0
#: Times this little before 0 are not noted: aligning a probe clock puts a spike at t = 0
#: within a probe sample (33 µs) of it, on either side.
NEGATIVE_TOLERANCE_S = 1e-3
#: A value this far (or the session's span, if longer) outside the bulk of the session's times
#: is noted as far outside the session.
FAR_MARGIN_S = 3_600.0
#: Spike times that are all whole numbers are refused from this many spikes on.
WHOLE_SPIKES_MIN = 100
#: Values per column kept to locate the bulk of a column's times (every value when fewer).
SAMPLE_SIZE = 65_536


@dataclass(frozen=True)
class TimeRule:
    """The rules of one time column.

    `nan`: what a NaN time gets. "refuse" where a row means nothing without its time (a spike,
    a lick, a speed sample); "note" where the row carries more than its time (a trial without
    a start still has its outcome; the views give it no events); "keep" where NaN means
    "unknown" by design (a stop_time the source did not record, an unmatched barcode).
    `bounded`: |t| <= MAX_TIME_S (probe-clock times are not: a probe clock can start long
    before the recording); `beyond` says whether a time beyond it is refused or noted (a
    series of the source's own, such as an event marker on another clock, is kept).
    `session_clock`: on the session's clock, so times before 0 and far outside the session
    are noted. `whole`: all-whole values are refused (spike times).
    """

    table: str
    column: str
    nan: Literal["refuse", "note", "keep"] = "refuse"
    bounded: bool = True
    beyond: Literal["refuse", "note"] = "refuse"
    session_clock: bool = True
    whole: bool = False


TIME_RULES: tuple[TimeRule, ...] = (
    TimeRule("spikes", "time", whole=True),
    TimeRule("trials", "start_time", nan="note"),
    TimeRule("trials", "stop_time", nan="keep"),
    TimeRule("intervals", "start_time", nan="note"),
    TimeRule("intervals", "stop_time", nan="keep"),
    TimeRule("stimulus_presentations", "start_time", nan="note"),
    TimeRule("stimulus_presentations", "stop_time", nan="keep"),
    TimeRule("licks", "time"),
    TimeRule("rewards", "time"),
    TimeRule("running_speed", "time"),
    TimeRule("timeseries", "time", nan="note", beyond="note", session_clock=False),
    TimeRule("sync_edges", "time", session_clock=False),
    TimeRule("clock_alignment", "probe_time", bounded=False, session_clock=False),
    TimeRule("clock_alignment", "sync_time", nan="keep", session_clock=False),
)
#: Tables whose rows are intervals: a stop before its start is noted.
INTERVAL_TABLES = ("trials", "intervals", "stimulus_presentations")


def rules_for(table: str) -> tuple[TimeRule, ...]:
    """The time rules of `table` (empty for tables without time columns)."""
    return tuple(r for r in TIME_RULES if r.table == table)


@dataclass
class _Stats:
    """What a pass over one column found: finite count and range, negatives, a sample."""

    rule: TimeRule
    stride: int = 1
    count: int = 0
    low: float = np.inf
    high: float = -np.inf
    negative: int = 0
    nan: int = 0
    nan_at: str = ""
    beyond: int = 0
    beyond_at: str = ""
    whole: bool = True
    example: float | None = None
    samples: list[np.ndarray] = field(default_factory=list)

    def add(self, values: np.ndarray, low: float, high: float) -> None:
        """Take finite `values` whose min and max are `low` and `high`."""
        if not len(values):
            return
        offset = (-self.count) % self.stride
        self.samples.append(values[offset :: self.stride].copy())
        self.count += len(values)
        self.low, self.high = min(self.low, low), max(self.high, high)
        if low < -NEGATIVE_TOLERANCE_S:
            self.negative += int(np.count_nonzero(values < -NEGATIVE_TOLERANCE_S))
        if self.rule.whole and self.whole:
            head = values[:4096]
            self.whole = bool(np.all(head == np.floor(head))) and bool(
                np.all(values == np.floor(values))
            )
            if self.example is None:
                self.example = float(values[0])

    def bulk(self) -> tuple[float, float] | None:
        """Where the bulk of the values lie: the sample without its extreme 0.1 %.

        At least the lowest and the highest value are left out, so a lone outlier never widens
        its own column's bulk (a column of one or two values has none).
        """
        if not self.samples:
            return None
        values = np.sort(np.concatenate(self.samples))
        trim = max(1, len(values) // 1000)
        if len(values) <= 2 * trim:
            return None
        return float(values[trim]), float(values[len(values) - 1 - trim])


class ValueChecks:
    """The value rules over one session's tables; raises refusals, collects notes.

    Parameters
    ----------
    session_id, source
        Named in every refusal (the source is the file or folder the decoder read).

    Examples
    --------
    >>> checks = ValueChecks("s1")
    >>> checks.check_table("licks", pa.table({"time": [-2.0, 1.0], "source": ["a", "a"]}))
    >>> checks.notes()
    ['licks.time: 1 value before 0 s (down to -2 s); kept as stored']
    """

    def __init__(self, session_id: str, source: str | Path | None = None) -> None:
        self.session_id = session_id
        self.source = str(source) if source is not None else None
        self._stats: dict[tuple[str, str], _Stats] = {}
        self._notes: list[str] = []
        self.pending: set[str] = set()

    def check_table(self, name: str, table: pa.Table) -> None:
        """Check an in-memory table (refusals raise now; notes wait for `finish`)."""
        stats = self._new_stats(name, table.num_rows)
        batch = table.combine_chunks() if table.num_rows else table
        self._scan(name, batch, stats, 0)
        self._stats.update({(name, s.rule.column): s for s in stats})
        if name in INTERVAL_TABLES and table.num_rows:
            self._stop_before_start(name, table)

    def stream(
        self,
        name: str,
        batches: Iterator[pa.RecordBatch],
        num_rows: int,
        done: Callable[[list[str]], None],
    ) -> Iterator[pa.RecordBatch]:
        """Pass a stream's batches through, checking each; `done(notes)` at the end of a pass.

        Refusals raise at the batch that shows them (all-whole spike times at the end).
        """
        stats = self._new_stats(name, num_rows)
        rows = 0
        for batch in batches:
            self._scan(name, batch, stats, rows)
            rows += batch.num_rows
            yield batch
        self._stats.update({(name, s.rule.column): s for s in stats})
        self.pending.discard(name)
        done(self.notes())

    def expect_stream(self, name: str, num_rows: int) -> None:
        """Hold the session-wide rules back until stream `name` was read (if it has rows)."""
        if num_rows and any(r.session_clock or r.whole for r in rules_for(name)):
            self.pending.add(name)

    def notes(self) -> list[str]:
        """The notes on every table seen so far; refuses all-whole spike times.

        Rows that end before they start, NaN starts and times before 0 are noted per table;
        times far outside the session only once no stream is pending (the span needs them all).
        """
        notes = list(self._notes)
        for stats in self._stats.values():
            rule = stats.rule
            if rule.whole and stats.whole and stats.count >= WHOLE_SPIKES_MIN:
                msg = (
                    f"all {stats.count:,} values are whole numbers (e.g. {stats.example:g}): "
                    "sample indices or milliseconds, not seconds; convert the source's times "
                    "to seconds"
                )
                raise self._refusal(msg, rule)
            if rule.nan == "note" and stats.nan:
                notes.append(
                    f"{rule.table}.{rule.column}: {stats.nan:,} NaN (e.g. {stats.nan_at}); "
                    "kept as stored (such a row holds no events in the views)"
                )
            if stats.beyond:
                s = "" if stats.beyond == 1 else "s"
                notes.append(
                    f"{rule.table}.{rule.column}: {stats.beyond:,} value{s} more than "
                    f"{MAX_TIME_S:g} s from the session start (e.g. {stats.beyond_at}); kept as "
                    "stored"
                )
            if rule.session_clock and stats.negative:
                s = "" if stats.negative == 1 else "s"
                notes.append(
                    f"{rule.table}.{rule.column}: {stats.negative:,} value{s} before 0 s "
                    f"(down to {stats.low:g} s); kept as stored"
                )
        return notes if self.pending else notes + self._far_notes()

    # --- internals ---------------------------------------------------------------------------

    def _new_stats(self, name: str, num_rows: int) -> list[_Stats]:
        stride = max(1, num_rows // SAMPLE_SIZE)
        return [_Stats(rule, stride) for rule in rules_for(name)]

    def _scan(self, name: str, batch: pa.RecordBatch | pa.Table, stats: list[_Stats], rows: int):
        """Refuse non-finite and out-of-range values of one batch; add the rest to `stats`."""
        for s in stats:
            rule = s.rule
            if rule.column not in batch.column_names or not batch.num_rows:
                continue
            column = batch.column(rule.column)
            values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
            low, high = float(values.min()), float(values.max())
            if not (np.isfinite(low) and np.isfinite(high)):
                values, low, high = self._finite(s, batch, values, rows)
            if rule.bounded and len(values) and max(-low, high) > MAX_TIME_S:
                raw = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
                at = int(np.flatnonzero(np.abs(raw) > MAX_TIME_S)[0])
                if rule.beyond == "note":
                    values, low, high = self._beyond(s, batch, raw, at, rows)
                    s.add(values, low, high)
                    continue
                msg = (
                    f"{raw[at]:g} s ({self._where(name, batch, at, rows)}) is more than "
                    f"{MAX_TIME_S:g} s (2 days) from the session start: not seconds on the "
                    "session clock (milliseconds, sample indices or Unix time?); convert the "
                    "source's times to seconds from the session start"
                )
                raise self._refusal(msg, rule)
            s.add(values, low, high)

    def _finite(self, stats: _Stats, batch, values: np.ndarray, rows: int):
        """Refuse ±inf (and NaN where refused); the finite values, their min and max."""
        rule = stats.rule
        infinite = np.isinf(values)
        nan = np.isnan(values)
        bad = infinite | nan if rule.nan == "refuse" else infinite
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            n = int(bad.sum())
            what = (
                "NaN"
                if not infinite.any()
                else "infinite"
                if bad.sum() == infinite.sum()
                else "infinite or NaN"
            )
            msg = (
                f"{n:,} value{' is' if n == 1 else 's are'} {what}, e.g. {values[at]} "
                f"({self._where(rule.table, batch, at, rows)}): times must be finite seconds "
                "on the session clock; fix the source"
            )
            raise self._refusal(msg, rule)
        if rule.nan == "note" and not stats.nan:
            stats.nan_at = self._where(rule.table, batch, int(np.flatnonzero(nan)[0]), rows)
        stats.nan += int(nan.sum())
        finite = values[~nan]
        if not len(finite):
            return finite, np.inf, -np.inf
        return finite, float(finite.min()), float(finite.max())

    def _beyond(self, stats: _Stats, batch, raw: np.ndarray, at: int, rows: int):
        """Count the values beyond MAX_TIME_S (noted); the others, their min and max."""
        if not stats.beyond:
            stats.beyond_at = f"{raw[at]:g} s at {self._where(stats.rule.table, batch, at, rows)}"
        keep = np.abs(raw) <= MAX_TIME_S  # NaN compares False: already counted, not kept
        stats.beyond += int((np.abs(raw) > MAX_TIME_S).sum())
        values = raw[keep]
        if not len(values):
            return values, np.inf, -np.inf
        return values, float(values.min()), float(values.max())

    def _stop_before_start(self, name: str, table: pa.Table) -> None:
        start = table.column("start_time").to_numpy()
        stop = table.column("stop_time").to_numpy()
        bad = stop < start  # NaN compares False: an unknown stop is not before its start
        if not bad.any():
            return
        at = int(np.flatnonzero(bad)[0])
        n = int(bad.sum())
        rows = "row ends" if n == 1 else "rows end"
        self._notes.append(
            f"{name}: {n:,} {rows} before {'it starts' if n == 1 else 'they start'} (e.g. "
            f"{self._where(name, table, at, 0)}: start_time {start[at]:g} s, stop_time "
            f"{stop[at]:g} s); kept as stored"
        )

    def _far_notes(self) -> list[str]:
        """Columns with values far outside the span where the bulk of the session's times lie."""
        clock = [s for s in self._stats.values() if s.rule.session_clock and s.count]
        bulks = [b for s in clock if (b := s.bulk()) is not None]
        if not bulks:
            return []
        low, high = min(b[0] for b in bulks), max(b[1] for b in bulks)
        margin = max(FAR_MARGIN_S, high - low)
        notes = []
        for s in clock:
            where = []
            if s.low < low - margin:
                where.append(f"as early as {s.low:g} s")
            if s.high > high + margin:
                where.append(f"as late as {s.high:g} s")
            if where:
                notes.append(
                    f"{s.rule.table}.{s.rule.column}: values {' and '.join(where)}, more than "
                    f"{margin:g} s outside the session's span ({low:g} to {high:g} s, where the "
                    "bulk of its times lie); kept as stored"
                )
        return notes

    def _where(self, name: str, batch, at: int, rows: int) -> str:
        """The offending row by its key columns (e.g. 'unit_id=12'), else its row number."""
        keys = [
            c
            for c in TABLES[name].key
            if c != "session_id" and c in batch.column_names and not _is_time(name, c)
        ]
        if not keys:
            return f"row {rows + at}"
        return ", ".join(f"{c}={batch.column(c)[at].as_py()!r}" for c in keys)

    def _refusal(self, message: str, rule: TimeRule) -> SchemaViolation:
        return SchemaViolation(
            message,
            table=rule.table,
            column=rule.column,
            file=self.source,
            session_id=self.session_id,
        )


def _is_time(table: str, column: str) -> bool:
    return any(r.column == column for r in rules_for(table))


__all__ = ["MAX_TIME_S", "TIME_RULES", "TimeRule", "ValueChecks", "rules_for"]
