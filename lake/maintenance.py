"""Maintenance: remove orphaned ingests, compact small files, vacuum unreferenced files.

None of these changes what a query answers. `collect_garbage` only touches partitions no
sessions row names and that are older than a grace period, so ingests still running elsewhere
are safe. `vacuum` deletes files of old table versions: time travel to before its horizon stops
working (Delta's default horizon, 7 days, is kept unless you pass a shorter one).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lake.storage import INGEST_ID, Store
from schemas import SESSION_SCOPED


@dataclass(frozen=True)
class GarbageReport:
    """Partitions removed per table by `collect_garbage`."""

    removed: dict[str, int]

    def __str__(self) -> str:
        total = sum(self.removed.values())
        parts = ", ".join(f"{t}: {n}" for t, n in self.removed.items() if n)
        return f"removed {total} orphaned partitions" + (f" ({parts})" if parts else "")


class Maintenance:
    """`lake.maintenance`: housekeeping verbs on every table of one lake."""

    def __init__(self, store: Store, on_change) -> None:
        self._store = store
        self._on_change = on_change

    def collect_garbage(self, *, older_than: dt.timedelta = dt.timedelta(hours=1)) -> GarbageReport:
        """Delete partitions of failed or killed ingests older than `older_than`.

        Only partitions whose ingest id no sessions row names are touched.
        """
        store = self._store
        sessions = store.table("sessions").to_pyarrow_table(columns=["session_id", INGEST_ID])
        current = set(sessions.column(INGEST_ID).to_pylist())
        horizon = dt.datetime.now(dt.timezone.utc) - older_than
        cutoff = f"{horizon:%Y%m%dT%H%M%S%f}Z"
        removed = {}
        for name in SESSION_SCOPED:
            table = store.table(name)
            actions = pa.table(table.get_add_actions(flatten=True))
            if actions.num_rows == 0:
                removed[name] = 0
                continue
            ids = set(pc.unique(actions.column(f"partition.{INGEST_ID}")).to_pylist())
            orphans = sorted(i for i in ids - current if i < cutoff)
            if orphans:
                listed = ", ".join(f"'{i}'" for i in orphans)
                table.delete(f"{INGEST_ID} IN ({listed})")
            removed[name] = len(orphans)
        self._on_change()
        return GarbageReport(removed)

    def compact(self) -> dict[str, dict]:
        """Merge small files within each partition (metrics per table)."""
        metrics = {}
        for name in (*SESSION_SCOPED, "sessions"):
            metrics[name] = self._store.table(name).optimize.compact()
        self._on_change()
        return metrics

    def vacuum(self, *, retention_hours: float | None = None) -> dict[str, int]:
        """Delete files no longer referenced by recent table versions (count per table).

        `retention_hours` below Delta's 7-day default also gives up time travel to versions
        older than that.
        """
        deleted = {}
        for name in (*SESSION_SCOPED, "sessions"):
            table = self._store.table(name)
            files = table.vacuum(
                retention_hours=retention_hours,
                dry_run=False,
                enforce_retention_duration=retention_hours is None,
            )
            deleted[name] = len(files)
        self._on_change()
        return deleted
