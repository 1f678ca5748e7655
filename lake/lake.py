"""Lake: the one object users hold — ingest, SQL, polars scans, metadata, time travel."""

from __future__ import annotations

import datetime as dt
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

from lake.history import History
from lake.jobs.report import IngestReport, Outcome
from lake.location import check_location
from lake.refs import VersionRef, resolve
from lake.sql import SqlLimits, check_read_only, connect, too_large, view_fields
from lake.storage.releases import Release, create_release, delete_release, list_releases
from lake.storage.schema import data_schema, empty_table, per_session
from lake.storage.snapshot import Snapshot
from lake.storage.store import Store
from schemas import TABLES, LakeError, UnknownSession, UnknownTable, validate_session_id
from schemas.spec import DESCRIPTION, UNIT

if TYPE_CHECKING:
    from lake.allen import AllenAccessors
    from lake.analysis import Analysis
    from lake.maintenance import Maintenance
    from lake.pynapple import PynappleSession
    from lake.storage.history import LakeDiff


class Lake:
    """A lake of Neuropixels sessions: one Delta table per entity under one root.

    Open one with `lake.open(uri)`. Reads see a consistent snapshot: the newest committed
    version (refreshed whenever a new one lands), or a fixed past one (`Lake.at`).
    """

    def __init__(
        self, store: Store, *, version: int | None = None, limits: SqlLimits | None = None
    ) -> None:
        self._store = store
        self._pinned = version
        self._limits = limits or SqlLimits.from_env()
        self._snapshot: Snapshot | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.RLock()

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
        """The consistent state reads use now: the newest one, or the pinned version's.

        `snapshot().files(table, session_id)` lists the files holding a table's rows.
        """
        return self._current()

    def pinned(self) -> Lake:
        """The lake fixed at the version it reads now (itself when pinned already)."""
        if self._pinned is not None:
            return self
        snapshot = self._current()
        fixed = Lake(self._store, version=snapshot.version, limits=self._limits)
        fixed._snapshot = snapshot
        return fixed

    @property
    def version(self) -> int:
        """The lake version this Lake reads (one per commit; see `history.versions()`)."""
        return self._current().version

    # ------------------------------------------------------------------ writes
    def ingest(
        self,
        paths: str | os.PathLike | Iterable[str | os.PathLike],
        *,
        jobs: int = 1,
        client=None,
        session_id: str | None = None,
        pickles: Iterable[str | os.PathLike] = (),
        on_outcome: Callable[[Outcome], None] | None = None,
        progress: bool = False,
        force: bool = False,
    ) -> IngestReport:
        """Ingest session files and folders; each session lands whole or not at all.

        Parameters
        ----------
        paths
            NWB files, raw rig session folders, or folders to search for them.
        jobs
            Worker processes (spawned) on this machine; 1 ingests in this process.
        client
            A `dask.distributed.Client`: prepare sessions on its cluster instead (needs
            `pip install "nplake[distributed]"`); `jobs` is then ignored.
        session_id
            Use this session id instead of the source's (only with a single source).
        pickles
            Behaviour pickles you trust to be loaded (pickles can run code when loaded).
        on_outcome
            Called with each source's outcome as it is known.
        progress
            Show a progress bar over sessions (on stderr).
        force
            Make a lake in a non-empty folder that is not one (refused otherwise).
        """
        from ingest import DecodeOptions, discover  # decoders load only when ingesting
        from lake.jobs.runner import run_ingest

        self._writable()
        check_location(self._store, force=force, writing=True)
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        sources, problems = discover(paths)
        if session_id is not None and len(sources) > 1:
            msg = f"session_id={session_id!r} applies to one source, but {len(sources)} were found"
            raise LakeError(msg)
        options = DecodeOptions(session_id=session_id, pickles=tuple(Path(p) for p in pickles))
        options.check_pickles(s.path for s in sources)
        executor = None
        if client is not None:
            from lake.jobs.dask import dask_executor

            executor = dask_executor(client)
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
                self._store,
                sources,
                problems,
                options,
                jobs=jobs,
                executor=executor,
                on_outcome=notify,
            )
        self._invalidate()
        return report

    def release(self, name: str, *, message: str = "") -> Release:
        """Name the current version `name` (stored in the lake; names never move)."""
        self._writable()
        snapshot = self._current()
        release = Release(
            name=name,
            version=snapshot.version,
            created_ms=int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000),
            message=message,
            sessions=snapshot.sessions.num_rows,
        )
        return create_release(self._store.files, release)

    def delete_release(self, name: str) -> Release:
        """Remove release `name`; `vacuum` may then reclaim the files only it kept."""
        self._writable()
        return delete_release(self._store.files, name)

    def releases(self) -> pl.DataFrame:
        """Every release: name, version, date, sessions, message."""
        rows = [
            {
                "name": r.name,
                "version": r.version,
                "created_at": dt.datetime.fromtimestamp(r.created_ms / 1000, dt.timezone.utc),
                "sessions": r.sessions,
                "message": r.message,
            }
            for r in list_releases(self._store.files)
        ]
        schema = {
            "name": pl.String,
            "version": pl.Int64,
            "created_at": pl.Datetime("us", "UTC"),
            "sessions": pl.Int64,
            "message": pl.String,
        }
        return pl.DataFrame(rows, schema=schema)

    # ------------------------------------------------------------------- reads
    def sql(self, query: str) -> pl.DataFrame:
        """Run a read-only DuckDB query over every table and the views of `queries/`.

        Only queries run (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); anything that
        would change a table, a view, a setting or a file raises `ReadOnlySql`, and a query
        over the memory and temporary-disk limits raises `QueryTooLarge`.

        Examples
        --------
        >>> lk.sql("SELECT count(*) AS n FROM units").item() > 0  # doctest: +SKIP
        True
        """
        check_read_only(query)
        with self._lock:
            con = self._connection()
            try:
                relation = con.sql(query)
                if relation is None:
                    return pl.DataFrame()
                return pl.DataFrame(_intervals_as_text(relation).to_arrow_table())
            except duckdb.OutOfMemoryException as exc:
                raise too_large(exc, self._limits) from None

    def connection(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection over the current snapshot, yours to use.

        It is sandboxed like `sql` (no file outside the lake's current files, settings locked)
        and independent: what you create in it does not reach `sql` or other connections.
        """
        return connect(self._store, self._current(), limits=self._limits)

    def scan(self, table: str) -> pl.LazyFrame:
        """Lazily read the current rows of one table (file pruning, predicate pushdown).

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
        empty = pl.from_arrow(empty_table(pa.schema(fields)))
        assert isinstance(empty, pl.DataFrame)
        if not state.files:
            return empty.lazy()
        stored = data_schema(spec.name, state.schema)
        stored_pl = pl.from_arrow(empty_table(stored))
        assert isinstance(stored_pl, pl.DataFrame)
        hive = per_session(spec.name)
        frame = pl.scan_parquet(
            list(state.files),
            hive_partitioning=hive,
            hive_schema={"session_id": pl.String} if hive else None,
            schema=stored_pl.schema,
            missing_columns="insert",
            extra_columns="ignore",
            storage_options=self._store.options(),
        )
        present = set(state.schema.names)
        return frame.select(
            pl.col(name) if name in present else pl.lit(None, dtype).alias(name)
            for name, dtype in empty.schema.items()
        )

    def sessions(self) -> pl.DataFrame:
        """One row per session in the lake (metadata, subject, provenance, row counts)."""
        return self.scan("sessions").collect()

    def require_session(self, session_id: str) -> str:
        """`session_id` if the lake holds that session, else `UnknownSession` naming close matches.

        Raises `InvalidSessionId` for a value that cannot be a session id at all, before it
        reaches any query.
        """
        sid = validate_session_id(session_id)
        known = self._current().sessions.column("session_id").to_pylist()
        if sid in known:
            return sid
        close = difflib.get_close_matches(sid, known, n=3, cutoff=0.6)
        hint = (
            f"; did you mean {', '.join(close)}?" if close else "; list them with `nplake sessions`"
        )
        msg = f"no session {sid!r} in the lake at {self.uri} (version {self.version}){hint}"
        raise UnknownSession(msg)

    def tables(self) -> pl.DataFrame:
        """Every table with its description, current rows, columns and files."""
        snapshot = self._current()
        rows = []
        for name, spec in TABLES.items():
            schema = snapshot.schema(name)
            rows.append(
                {
                    "table": name,
                    "rows": snapshot.rows(name),
                    "columns": len(schema),
                    "files": len(snapshot.files(name)),
                    "description": spec.description,
                }
            )
        return pl.DataFrame(rows)

    def describe(self, table: str) -> pl.DataFrame:
        """Columns of a table: type, unit, meaning, and whether the spec declares them."""
        spec = _spec(table)
        schema = self._current().schema(spec.name)
        rows = []
        for field in view_fields(spec.name, schema):
            meta = {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in (field.metadata or {}).items()
            }
            declared = spec.has_column(field.name)
            if declared:
                unit, description = (
                    spec.column(field.name).unit,
                    spec.column(field.name).description,
                )
            else:
                unit = meta.get(UNIT, "")
                description = meta.get(DESCRIPTION, "") or (
                    "(source column)"
                    if field.name in schema.names
                    else "(no session has this column: NULL; the queries use it)"
                )
            rows.append(
                {
                    "column": field.name,
                    "type": str(field.type),
                    "unit": unit,
                    "description": description,
                    "declared": declared,
                }
            )
        return pl.DataFrame(rows)

    # ------------------------------------------------------------- namespaces
    @property
    def maintenance(self) -> Maintenance:
        """Housekeeping: `run()`, `collect_garbage()`, `optimize()`, `vacuum()`, `repair()`."""
        from lake.maintenance import Maintenance

        self._writable()
        return Maintenance(self._store, self._invalidate)

    @property
    def history(self) -> History:
        """The lake's versions: `history.versions()`, `history.diff(a, b)`."""
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

    def at(self, ref: VersionRef) -> Lake:
        """The lake as it was: at a version number, a release name, or a date-time.

        Examples
        --------
        >>> lk.at(12); lk.at("2026.1"); lk.at("2026-03-01T12:00")  # doctest: +SKIP
        """
        version = resolve(self._store, ref)
        return Lake(self._store, version=version, limits=self._limits)

    def diff(self, before: VersionRef, after: VersionRef) -> LakeDiff:
        """Sessions added, removed and replaced between two versions, releases or dates."""
        a, b = resolve(self._store, before), resolve(self._store, after)
        return self.history.diff(a, b)

    def export_nwb(
        self, session_id: str, path: str | os.PathLike, *, overwrite: bool = False
    ) -> Path:
        """Write one session as a standard NWB file; ingesting it again gives the same rows.

        Parameters
        ----------
        session_id
            A session of this lake (of its pinned version, for a `Lake.at(...)`).
        path
            A `.nwb` file name, or a folder: the file is then
            `sub-<subject>/sub-<subject>_ses-<session>_ecephys.nwb` inside it (DANDI style).
        overwrite
            Replace an existing file.
        """
        from lake.export import export_nwb

        return export_nwb(self, session_id, path, overwrite=overwrite)

    def to_pynapple(self, session_id: str) -> PynappleSession:
        """One session as pynapple objects, as pynapple.load_file gives its NWB file.

        A dict: units (TsGroup with every unit column as metadata), trials, every interval
        table and stimulus presentations (IntervalSet), licks (Ts), rewards and running_speed
        (Tsd), and every time series of the timeseries table under its name (Tsd, TsdFrame
        or Ts); see `lake.pynapple`.
        Needs `pip install "nplake[pynapple]"`.
        """
        from lake.pynapple import to_pynapple

        return to_pynapple(self, session_id)

    # ---------------------------------------------------------------- internals
    def _current(self) -> Snapshot:
        with self._lock:
            if self._pinned is not None:
                if self._snapshot is None:
                    self._snapshot = self._store.snapshot(self._pinned)
                return self._snapshot
            latest = self._store.log.latest()
            if latest is None:
                check_location(self._store, force=False)
                msg = (
                    f"no nplake lake at {self._store.root}: ingest sessions first "
                    "(nplake ingest PATH --lake ...)"
                )
                raise LakeError(msg)
            if self._snapshot is None or self._snapshot.version != latest:
                self._snapshot = self._store.snapshot(latest)
                self._con = None
            return self._snapshot

    def _connection(self) -> duckdb.DuckDBPyConnection:
        snapshot = self._current()
        if self._con is None:
            self._con = connect(self._store, snapshot, limits=self._limits)
        return self._con

    def _invalidate(self) -> None:
        with self._lock:
            self._snapshot = None
            self._con = None

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
