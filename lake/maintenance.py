"""`lake.maintenance`: housekeeping verbs of one lake (lake/storage/maintenance.py does them).

None of them changes what any retained version answers; all are safe while other processes
ingest. `nplake maintenance` runs `run()`; the verbs are also commands of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from lake.storage.maintenance import (
    RETENTION_HOURS,
    MaintenanceReport,
    collect_garbage,
    optimize,
    run_all,
    vacuum,
)
from lake.storage.repair import RepairReport, repair
from lake.storage.store import Store


class Maintenance:
    """Housekeeping of one lake: `run()`, or `collect_garbage()`, `optimize()`, `vacuum()`."""

    def __init__(self, store: Store, on_change: Callable[[], None]) -> None:
        self._store = store
        self._on_change = on_change

    def run(
        self, *, retention_hours: float = RETENTION_HOURS, compact: bool = True
    ) -> MaintenanceReport:
        """Publish, collect garbage, optimize (unless `compact=False`), vacuum."""
        report = run_all(self._store, retention_hours=retention_hours, compact=compact)
        self._on_change()
        return report

    def publish(self) -> int:
        """Bring the Delta tables up to the newest version (after a writer was killed)."""
        commits = self._store.publish()
        self._on_change()
        return commits

    def collect_garbage(self) -> MaintenanceReport:
        """Delete files of failed or killed ingests (never those of a running one)."""
        report = collect_garbage(self._store)
        self._on_change()
        return report

    def optimize(self, *, tables: tuple[str, ...] | None = None) -> MaintenanceReport:
        """Merge small files of the shared tables (time travel keeps the old ones)."""
        report = optimize(self._store, tables=tables)
        self._on_change()
        return report

    def vacuum(self, *, retention_hours: float = RETENTION_HOURS) -> MaintenanceReport:
        """Delete files only versions older than `retention_hours` read (releases keep theirs).

        A retention below the 7-day default gives up time travel to versions older than that;
        named releases stay readable whatever the retention.
        """
        report = vacuum(self._store, retention_hours=retention_hours)
        self._on_change()
        return report

    def repair(self) -> RepairReport:
        """Rewrite Delta log entries whose statistics are not valid JSON (see docs/ingest.md)."""
        report = repair(self._store)
        self._on_change()
        return report
