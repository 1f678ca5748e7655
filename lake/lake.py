"""Lake: the one object users hold — ingest, SQL, polars scans, metadata, time travel."""

from __future__ import annotations

import difflib
import os
import threading
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl
import pyarrow as pa

from ingest import DecodeOptions, discover
from lake.history import History
from lake.jobs import IngestReport, Outcome, run_ingest
from lake.maintenance import Maintenance
from lake.snapshot import Snapshot, take_snapshot
from lake.storage import INGEST_ID, Store
from lake.views import connect, view_fields
from schemas import TABLES, LakeError, UnknownSession, UnknownTable, validate_session_id
from schemas.spec import DESCRIPTION, UNIT

if TYPE_CHECKING:
    from lake.allen import AllenAccessors
    from lake.analysis import Analysis


class Lake:
    """A lake of Neuropixels sessions: one Delta table per entity under one root.

    Open one with `lake.open(uri)`. Reads see a consistent snapshot: the latest committed state
    (refreshed whenever a new session lands), or a fixed past version (`Lake.at`).
    """

    def __init__(self, store: Store, *, version: int | None = None) -> None:
        self._store = store
        self._pinned = version
        self._snapshot: Snapshot | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._sessions_dt = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        at = f", version={self._pinned}" if self._pinned is not None else ""
        return f"Lake({self._store.root!r}{at})"

    @property
    def uri(self) -> str:
        """Where the lake lives (absolute folder or s3:// URI)."""
        return self._store.root

    @property
    def store(self) -> Store:
        """Where the lake's files live; `store.open_input(uri)` opens one of them."""
        return self._store

    def snapshot(self) -> Snapshot:
        """The consistent state reads use now: the latest one, or the pinned version's.

        `snapshot().files(table, session_id)` lists the files holding a table's rows.
        """
        return self._current()

    def pinned(self) -> Lake:
        """This lake fixed at the version it reads now (itself when pinned already).

        Every read of the returned Lake sees one snapshot, even while sessions are ingested.
        """
        if self._pinned is not None:
            return self
        snapshot = self._current()
        fixed = Lake(self._store, version=snapshot.version)
        fixed._snapshot = snapshot
        return fixed

    @property
    def version(self) -> int:
        """The lake version: the version of its sessions table, the commit point of ingests."""
        return self._current().version

    # ------------------------------------------------------------------ writes
    def ingest(
        self,
        paths: str | os.PathLike | Iterable[str | os.PathLike],
        *,
        jobs: int = 1,
        session_id: str | None = None,
        pickles: Iterable[str | os.PathLike] = (),
        on_outcome: Callable[[Outcome], None] | None = None,
        progress: bool = False,
    ) -> IngestReport:
        """Ingest session files and folders; each session lands whole or not at all.

        Parameters
        ----------
        paths
            NWB files, raw rig session folders, or folders to search for them.
        jobs
            Worker processes (spawned); 1 ingests in this process.
        session_id
            Use this session id instead of the source's (only with a single source).
        pickles
            Behaviour pickles you trust to be loaded (pickles can run code when loaded).
        on_outcome
            Called with each source's outcome as it finishes.
        progress
            Show a progress bar over sessions (on stderr).
        """
        self._writable()
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        sources, problems = discover(paths)
        if session_id is not None and len(sources) > 1:
            msg = f"session_id={session_id!r} applies to one source, but {len(sources)} were found"
            raise LakeError(msg)
        options = DecodeOptions(session_id=session_id, pickles=tuple(Path(p) for p in pickles))
        options.check_pickles(s.path for s in sources)
        with ExitStack() as stack:
            callbacks = [on_outcome] if on_outcome else []
            if progress:
                from lake.progress import session_progress

                total = len(sources) + len(problems)
                callbacks.append(stack.enter_context(session_progress(total)))

            def notify(outcome: Outcome) -> None:
                for callback in callbacks:
                    callback(outcome)

            report = run_ingest(
                self._store, sources, problems, options, jobs=jobs, on_outcome=notify
            )
        self._invalidate()
        return report

    # ------------------------------------------------------------------- reads
    def sql(self, query: str) -> pl.DataFrame:
        """Run DuckDB SQL over the current rows of every table and the views of `queries/`.

        Examples
        --------
        >>> lk.sql("SELECT count(*) AS n FROM units").item() > 0  # doctest: +SKIP
        True
        """
        con = self.connection()
        with self._lock:
            relation = con.sql(query)
            if relation is None:  # a statement without a result (e.g. CREATE TEMP VIEW)
                return pl.DataFrame()
            return pl.DataFrame(_intervals_as_text(relation).to_arrow_table())

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection behind `sql` (views over the current snapshot; read-only)."""
        snapshot = self._current()
        if self._con is None:
            self._con = connect(self._store, snapshot)
        return self._con

    def scan(self, table: str) -> pl.LazyFrame:
        """Lazily read the current rows of one table (partition pruning, predicate pushdown).

        Examples
        --------
        >>> good = lk.scan("units").filter(pl.col("quality") == "good")  # doctest: +SKIP
        """
        spec = _spec(table)
        snapshot = self._current()
        if spec.name == "sessions":
            return pl.from_arrow(snapshot.sessions).lazy()
        state = snapshot.tables[spec.name]
        fields = view_fields(spec.name, state.schema)
        empty = pl.from_arrow(pa.schema(fields).empty_table())
        assert isinstance(empty, pl.DataFrame)
        if not state.files:
            return empty.lazy()
        current = list(snapshot.ingest_ids.values())
        frame = pl.scan_delta(
            self._store.table_uri(spec.name),
            version=state.version,
            storage_options=self._store.options(),
        ).filter(pl.col(INGEST_ID).is_in(current))
        stored = set(state.schema.names)
        return frame.select(
            pl.col(name) if name in stored else pl.lit(None, dtype).alias(name)
            for name, dtype in empty.schema.items()
        )

    def sessions(self) -> pl.DataFrame:
        """One row per session in the lake (metadata, subject, provenance, row counts)."""
        return self.scan("sessions").collect()

    def require_session(self, session_id: str) -> str:
        """`session_id` if the lake holds that session, else `UnknownSession` naming close matches.

        Raises `InvalidSessionId` for a value that cannot be a session id at all, before it
        reaches any query.

        Examples
        --------
        >>> lk.require_session("1052076411")  # doctest: +SKIP
        UnknownSession: no session '1052076411' in the lake at ... (version 4);
        did you mean 1052076410?
        """
        sid = validate_session_id(session_id)
        known = self.sessions()["session_id"].to_list()
        if sid in known:
            return sid
        close = difflib.get_close_matches(sid, known, n=3, cutoff=0.6)
        hint = (
            f"; did you mean {', '.join(close)}?" if close else "; list them with `nplake sessions`"
        )
        msg = f"no session {sid!r} in the lake at {self.uri} (version {self.version}){hint}"
        raise UnknownSession(msg)

    def tables(self) -> pl.DataFrame:
        """Every table with its description, current rows and number of columns."""
        snapshot = self._current()
        rows = []
        for name, spec in TABLES.items():
            if name == "sessions":
                n, width = snapshot.sessions.num_rows, snapshot.sessions.num_columns
            else:
                state = snapshot.tables[name]
                n, width = state.rows, len(state.schema)
            rows.append(
                {"table": name, "rows": n, "columns": width, "description": spec.description}
            )
        return pl.DataFrame(rows)

    def describe(self, table: str) -> pl.DataFrame:
        """Columns of a table: type, unit, meaning, and whether the spec declares them."""
        spec = _spec(table)
        snapshot = self._current()
        schema = (
            snapshot.sessions.schema
            if spec.name == "sessions"
            else snapshot.tables[spec.name].schema
        )
        rows = []
        for field in view_fields(spec.name, schema):
            meta = {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in (field.metadata or {}).items()
            }
            declared = spec.has_column(field.name)
            rows.append(
                {
                    "column": field.name,
                    "type": str(field.type),
                    "unit": spec.column(field.name).unit if declared else meta.get(UNIT, ""),
                    "description": (
                        spec.column(field.name).description
                        if declared
                        else meta.get(DESCRIPTION, "")
                        or (
                            "(source column)"
                            if field.name in schema.names
                            else "(no session has this column: NULL; the queries use it)"
                        )
                    ),
                    "declared": declared,
                }
            )
        return pl.DataFrame(rows)

    @property
    def maintenance(self) -> Maintenance:
        """Housekeeping: `collect_garbage()`, `compact()`, `vacuum()`."""
        self._writable()
        return Maintenance(self._store, self._invalidate)

    @property
    def history(self) -> History:
        """The lake's versions: `history.versions()`; read one with `at(version)`."""
        return History(self._store)

    @property
    def analysis(self) -> Analysis:
        """Event-aligned counts, PSTHs and rates: `analysis.aligned_counts(...)`, `.psth(...)`."""
        from lake.analysis import Analysis

        return Analysis(self)

    @property
    def allen(self) -> AllenAccessors:
        """Allen SDK-style tables and per-session helpers: `allen.get_unit_table()`, ..."""
        from lake.allen import AllenAccessors

        return AllenAccessors(self)

    def at(self, version: int) -> Lake:
        """The same lake as it was at lake `version` (read-only); see `history.versions()`."""
        newest = self._store.table("sessions").version()
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= newest:
            msg = f"lake {self.uri} has versions 0 to {newest}; there is no version {version!r}"
            raise LakeError(msg)
        return Lake(self._store, version=version)

    def export_nwb(
        self, session_id: str, path: str | os.PathLike, *, overwrite: bool = False
    ) -> Path:
        """Write one session as a standard NWB file; ingesting it again gives the same rows.

        Parameters
        ----------
        session_id
            A session of this lake (of its pinned version, for a `Lake.at(version)`).
        path
            A `.nwb` file name, or a folder: the file is then
            `sub-<subject>/sub-<subject>_ses-<session>_ecephys.nwb` inside it (DANDI style).
        overwrite
            Replace an existing file.

        Examples
        --------
        >>> lk.export_nwb("1064644573", "shared/")  # doctest: +SKIP
        PosixPath('shared/sub-512345/sub-512345_ses-1064644573_ecephys.nwb')
        """
        from lake.export import export_nwb

        return export_nwb(self, session_id, path, overwrite=overwrite)

    # ---------------------------------------------------------------- internals
    def _current(self) -> Snapshot:
        if self._pinned is not None:
            if self._snapshot is None:
                self._snapshot = take_snapshot(self._store, self._pinned)
            return self._snapshot
        if self._sessions_dt is None:
            if not self._store.exists():
                msg = (
                    f"no nplake lake at {self._store.root}: ingest sessions first "
                    "(nplake ingest PATH --lake ...)"
                )
                raise LakeError(msg)
            self._sessions_dt = self._store.table("sessions")
        else:
            self._sessions_dt.update_incremental()
        if self._snapshot is None or self._snapshot.version != self._sessions_dt.version():
            self._snapshot = take_snapshot(self._store)
            self._con = None
        return self._snapshot

    def _invalidate(self) -> None:
        self._snapshot = None
        self._con = None
        self._sessions_dt = None

    def _writable(self) -> None:
        if self._pinned is not None:
            msg = f"this Lake is pinned to version {self._pinned} and is read-only"
            raise LakeError(msg)


def _intervals_as_text(relation: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """INTERVAL columns (e.g. a difference of timestamps) as DuckDB's text, which polars reads.

    polars cannot import Arrow's month-day-nano intervals; `epoch(x)` gives seconds instead.
    """
    if not any(str(t) == "INTERVAL" for t in relation.types):
        return relation
    names = ['"' + c.replace('"', '""') + '"' for c in relation.columns]
    return relation.project(
        ", ".join(
            f"CAST({n} AS VARCHAR) AS {n}" if str(t) == "INTERVAL" else n
            for n, t in zip(names, relation.types, strict=True)
        )
    )


def _spec(table: str):
    if table not in TABLES:
        msg = f"unknown table {table!r}; tables: {', '.join(TABLES)}"
        raise UnknownTable(msg)
    return TABLES[table]
