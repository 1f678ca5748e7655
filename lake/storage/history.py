"""The lake's past: versions with what each did, the version at a date, and diffs.

All of it comes from the lake log and its checkpoints — which sessions each commit landed or
replaced and how many rows each file holds per session — never from reading data files, so a
diff between two releases of a large lake takes milliseconds.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import polars as pl

from lake.storage.files import Files
from lake.storage.log import LakeLog
from lake.storage.manifest import Manifest
from lake.storage.read import read_rows
from schemas import TABLES, LakeError

_SESSION_FIELDS = ["session_id", "ingest_id", "source_uri", "pipeline_version"]


def versions(log: LakeLog, *, limit: int | None = None) -> pl.DataFrame:
    """One row per lake version, newest first: when, what, which sessions."""
    latest = log.latest()
    rows = []
    if latest is not None:
        oldest = 0 if limit is None else max(0, latest - limit + 1)
        for version in range(latest, oldest - 1, -1):
            entry = log.entry(version)
            rows.append(
                {
                    "version": version,
                    "committed_at": _time(entry.timestamp_ms),
                    "operation": entry.operation,
                    "sessions": [s.session_id for s in entry.landed],
                    "replaced": [s.session_id for s in entry.landed if s.replaced],
                }
            )
    schema = {
        "version": pl.Int64,
        "committed_at": pl.Datetime("ms", "UTC"),
        "operation": pl.String,
        "sessions": pl.List(pl.String),
        "replaced": pl.List(pl.String),
    }
    return pl.DataFrame(rows, schema=schema)


def version_at(log: LakeLog, when: dt.datetime) -> int:
    """The newest version committed at or before `when` (binary search over the log)."""
    if when.tzinfo is None:
        when = when.astimezone()  # a naive time is the local time of this machine
    target = int(when.timestamp() * 1000)
    latest = log.latest()
    if latest is None:
        msg = f"no nplake lake at {log.files.root}"
        raise LakeError(msg)
    first = log.entry(0).timestamp_ms
    if target < first:
        msg = f"{when.isoformat()} is before the lake existed (created {_time(first).isoformat()})"
        raise LakeError(msg)
    lo, hi = 0, latest  # entry timestamps increase with the version (commit enforces it)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if log.entry(mid).timestamp_ms <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class LakeDiff:
    """What changed between two lake versions.

    `sessions`: one row per added, removed or replaced session, with its source, pipeline
    version and ingest before and after. `rows`: per session and table, the rows before and
    after and the rows added and removed (a replaced session's old rows all go, its new rows
    all come).
    """

    before: int
    after: int
    sessions: pl.DataFrame
    rows: pl.DataFrame

    def __str__(self) -> str:
        if self.sessions.is_empty():
            return f"versions {self.before} and {self.after}: no session changed"
        counts = self.sessions["change"].value_counts().sort("change")
        summary = ", ".join(f"{n} {c}" for c, n in counts.iter_rows())
        lines = [f"from version {self.before} to {self.after}: {summary}"]
        for row in self.sessions.iter_rows(named=True):
            lines.append(f"  {row['change']:9} {row['session_id']}  {_provenance(row)}")
            mine = self.rows.filter(pl.col("session_id") == row["session_id"])
            for r in mine.iter_rows(named=True):
                lines.append(
                    f"            {r['table']}: {r['rows_before']:,} -> {r['rows_after']:,} rows "
                    f"(+{r['added']:,} -{r['removed']:,})"
                )
        return "\n".join(lines)

    def to_json(self) -> str:
        """The diff as JSON (for scripts)."""
        body = {
            "before": self.before,
            "after": self.after,
            "sessions": self.sessions.to_dicts(),
            "rows": self.rows.to_dicts(),
        }
        return json.dumps(body, indent=2, default=str)


def diff(files: Files, before: Manifest, after: Manifest) -> LakeDiff:
    """The sessions and rows that differ between two manifests."""
    a = _sessions(files, before)
    b = _sessions(files, after)
    joined = a.join(b, on="session_id", how="full", suffix="_after", coalesce=True)
    change = (
        pl.when(pl.col("ingest_id").is_null())
        .then(pl.lit("added"))
        .when(pl.col("ingest_id_after").is_null())
        .then(pl.lit("removed"))
        .when(pl.col("ingest_id") != pl.col("ingest_id_after"))
        .then(pl.lit("replaced"))
    )
    sessions = (
        joined.with_columns(change.alias("change"))
        .filter(pl.col("change").is_not_null())
        .select(
            "session_id",
            "change",
            pl.col("source_uri").alias("source_before"),
            pl.col("source_uri_after").alias("source_after"),
            pl.col("pipeline_version").alias("pipeline_before"),
            pl.col("pipeline_version_after").alias("pipeline_after"),
            pl.col("ingest_id").alias("ingest_before"),
            pl.col("ingest_id_after").alias("ingest_after"),
        )
        .sort("session_id")
    )
    changed = set(sessions["session_id"].to_list())
    rows = []
    for table in TABLES:
        if table == "sessions":
            continue
        old, new = before.session_rows(table), after.session_rows(table)
        for sid in sorted(changed):
            n_old, n_new = old.get(sid, 0), new.get(sid, 0)
            if n_old or n_new:
                rows.append(
                    {
                        "session_id": sid,
                        "table": table,
                        "rows_before": n_old,
                        "rows_after": n_new,
                        "added": n_new,
                        "removed": n_old,
                    }
                )
    schema = {
        "session_id": pl.String,
        "table": pl.String,
        "rows_before": pl.Int64,
        "rows_after": pl.Int64,
        "added": pl.Int64,
        "removed": pl.Int64,
    }
    return LakeDiff(before.version, after.version, sessions, pl.DataFrame(rows, schema=schema))


def _provenance(row: dict) -> str:
    """Where a changed session's rows came from, before -> after (only what differs)."""
    parts = []
    for key in ("source", "pipeline"):
        before, after = row[f"{key}_before"], row[f"{key}_after"]
        if row["change"] == "replaced" and before != after:
            parts.append(f"{key} {before} -> {after}")
        elif after or before:
            parts.append(f"{key} {after or before}")
    return "; ".join(parts)


def _sessions(files: Files, manifest: Manifest) -> pl.DataFrame:
    if manifest.version < 0 or not manifest.paths("sessions"):
        return pl.DataFrame(schema=dict.fromkeys(_SESSION_FIELDS, pl.String))
    frame = pl.from_arrow(read_rows(files, manifest, "sessions", columns=_SESSION_FIELDS))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
