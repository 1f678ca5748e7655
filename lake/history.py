"""History: the lake's versions (one per committed ingest) and what each one changed."""

from __future__ import annotations

import datetime as dt

import polars as pl

from lake.storage import Store


class History:
    """`lake.history`: versions of the lake, newest first. Read one with `Lake.at(version)`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def versions(self, *, limit: int | None = None) -> pl.DataFrame:
        """One row per lake version: when, what operation, which session and ingest."""
        rows = []
        for entry in self._store.table("sessions").history(limit=limit):
            rows.append(
                {
                    "version": entry.get("version"),
                    "committed_at": dt.datetime.fromtimestamp(
                        entry["timestamp"] / 1000, tz=dt.timezone.utc
                    ),
                    "operation": entry.get("nplake.operation") or entry.get("operation"),
                    "session_id": entry.get("nplake.session_id"),
                    "ingest_id": entry.get("nplake.ingest_id"),
                }
            )
        schema = {
            "version": pl.Int64,
            "committed_at": pl.Datetime("us", "UTC"),
            "operation": pl.String,
            "session_id": pl.String,
            "ingest_id": pl.String,
        }
        return pl.DataFrame(rows, schema=schema)
