"""`lake.history`: the lake's versions, the version at a date, and diffs (a thin face)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from lake.storage import history
from lake.storage.history import LakeDiff
from lake.storage.store import Store


class History:
    """Versions of one lake, newest first; read one with `Lake.at(version)`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def versions(self, *, limit: int | None = 50) -> pl.DataFrame:
        """One row per version (the newest `limit`; None for all): when, what, which sessions."""
        return history.versions(self._store.log, limit=limit)

    def version_at(self, when: dt.datetime) -> int:
        """The version the lake was at, at time `when` (naive times are local)."""
        return history.version_at(self._store.log, when)

    def diff(self, before: int, after: int) -> LakeDiff:
        """Sessions added, removed and replaced from version `before` to `after`."""
        log = self._store.log
        return history.diff(self._store.files, log.manifest(before), log.manifest(after))
