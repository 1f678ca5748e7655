"""DuckDB over a snapshot: one view per table (its current files only) plus `queries/`.

Views read the snapshot's Parquet files directly with `read_parquet`, the fastest path measured
here (STACK.md): per-session tables (spikes, sync_edges) with hive partitioning (session_id
typed VARCHAR, so numeric-looking ids stay strings), shared tables with session_id stored in
the files. Files written under older schemas are read by name (`union_by_name`) only when a
table has files of more than one schema.
"""

from __future__ import annotations

from importlib import resources

import duckdb
import pyarrow as pa

from lake.storage.schema import empty_table, per_session
from lake.storage.snapshot import Snapshot, TableState
from queries import GUARANTEED_COLUMNS, MATERIALIZED_VIEWS, REFERENCE_TABLES, reference_table
from schemas import TABLES

_HIVE_TYPES = "{'session_id': 'VARCHAR'}"
#: Folders of queries/ loaded into every connection, in this order.
QUERY_FOLDERS = ("views", "presets", "macros")
#: DuckDB settings of every connection (docs/analysis.md, "How the SQL reads spikes"):
#: - lake files never change, so their Parquet footers are parsed once per connection;
#: - a hash join whose build side has at most this many distinct keys (e.g. the chosen units)
#:   hands the list to the spikes scan, which then skips the row groups and pages that hold
#:   none of them (unit_id statistics). Beyond ~2,000 keys checking the list costs more per
#:   row than it saves (measured), and the scan falls back to the keys' min/max.
#: - no statistics propagation: with `can_have_nan` (below) DuckDB takes NaN as every float
#:   column's max statistic and answered `SELECT max(time) FROM spikes` with NaN, from the
#:   statistics alone (DuckDB 2.0.1; benchmarks/bench_queries.py: same speed within noise).
SETTINGS = {
    "parquet_metadata_cache": "true",
    "dynamic_or_filter_threshold": "1024",
    "disabled_optimizers": "'statistics_propagation'",
}


def create_views(con: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> list[str]:
    """Every table of `snapshot` as a view (sessions as a table); the files they read."""
    for setting, value in SETTINGS.items():
        con.execute(f"SET {setting} = {value}")
    materialize(con, "sessions", snapshot.sessions)
    files: list[str] = []
    deferred: list[TableState] = []
    for name in TABLES:
        state = snapshot.tables[name] if name != "sessions" else None
        if state is None:
            continue
        if per_session(name) and state.files:
            # Binding a view over thousands of files costs ~0.1-0.2 s at 10,000 sessions, and
            # every query view naming it would bind it again: they load against an empty table
            # of the same columns, and the real view replaces it at the end (DuckDB binds a
            # view's text when it is queried).
            materialize(con, name, empty_table(pa.schema(view_fields(name, state.schema))))
            deferred.append(state)
        else:
            files += _create_table_view(con, state)
    load_reference_tables(con)
    load_query_files(con)
    materialize_views(con, MATERIALIZED_VIEWS)
    for state in deferred:
        con.execute(f'DROP TABLE "{state.name}"')
        files += _create_table_view(con, state)
    return files


def _create_table_view(con: duckdb.DuckDBPyConnection, state: TableState) -> list[str]:
    ordered = view_fields(state.name, state.schema)
    if not state.files:
        materialize(con, state.name, empty_table(pa.schema(ordered)))
        return []
    # The file list is bound as a variable, not spelled into the SQL: parsing a literal of 10,000
    # paths costs twice as long (and a view over a variable reads the same files).
    variable = f"nplake_files_{state.name}"
    con.execute(f"SET VARIABLE {variable} = ?", [list(state.files)])
    options = ["can_have_nan = true"]
    if per_session(state.name):
        options += ["hive_partitioning = true", f"hive_types = {_HIVE_TYPES}"]
    else:
        options.append("hive_partitioning = false")
    if len(state.groups) > 1:
        options.append("union_by_name = true")
    source = f"read_parquet(getvariable('{variable}'), {', '.join(options)})"
    if per_session(state.name):  # one fixed schema (closed tables), session_id from folders
        present = {f.name for f in state.schema}
    else:
        present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    columns = []
    for field in ordered:
        if field.name in present:
            columns.append(f'"{field.name}"')
        else:  # an extra column no current file has
            columns.append(f'CAST(NULL AS {_duckdb_type(con, field)}) AS "{field.name}"')
    con.execute(f'CREATE VIEW "{state.name}" AS SELECT {", ".join(columns)} FROM {source}')
    return list(state.files)


def load_reference_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The reference tables shipped in queries/reference (brain_regions), as in-memory tables.

    Copied from Arrow before the sandbox locks file access, so no reference file needs to be
    among the connection's allowed files.
    """
    for name in REFERENCE_TABLES:
        materialize(con, name, reference_table(name))


def materialize(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Copy a small Arrow table into DuckDB as table `name` (visible to every cursor)."""
    con.register("_nplake_arrow", table)
    try:
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _nplake_arrow')
    finally:
        con.unregister("_nplake_arrow")


def view_fields(name: str, schema: pa.Schema) -> list[pa.Field]:
    """The columns a table shows to readers, in order: SQL views and polars scans alike."""
    return _ordered_fields(name, schema) + _guaranteed_fields(name, schema)


def _ordered_fields(name: str, schema: pa.Schema) -> list[pa.Field]:
    """Declared columns in spec order, then extra columns in the order the lake added them."""
    spec = TABLES[name]
    by_name = {f.name: f for f in schema}
    declared = [by_name.get(c.name, c.field()) for c in spec.columns]
    extras = [f for f in schema if not spec.has_column(f.name)]
    return declared + extras


_ARROW_OF_SQL = {"DOUBLE": pa.float64(), "BIGINT": pa.int64(), "VARCHAR": pa.string()}


def _guaranteed_fields(name: str, schema: pa.Schema) -> list[pa.Field]:
    """Columns `queries` relies on that no session of this table has (added as NULL)."""
    wanted = GUARANTEED_COLUMNS.get(name, {})
    return [
        pa.field(column, _ARROW_OF_SQL[sql_type])
        for column, sql_type in wanted.items()
        if column not in schema.names
    ]


def _duckdb_type(con: duckdb.DuckDBPyConnection, field: pa.Field) -> str:
    empty = empty_table(pa.schema([field]))
    con.register("_nplake_type_probe", empty)
    try:
        return con.execute("DESCRIBE SELECT * FROM _nplake_type_probe").fetchall()[0][1]
    finally:
        con.unregister("_nplake_type_probe")


def materialize_views(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> None:
    """Replace small views by tables holding their rows (views built on them keep working)."""
    for name in names:
        con.execute(f'CREATE TABLE "_nplake_m_{name}" AS SELECT * FROM "{name}"')
        con.execute(f'DROP VIEW "{name}"')
        con.execute(f'ALTER TABLE "_nplake_m_{name}" RENAME TO "{name}"')


def load_query_files(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Run every .sql file of queries/ (views, presets, macros); returns the names loaded.

    Files may depend on each other; they are retried until no more succeed, so a file can use
    a view defined in a file that sorts after it.
    """
    pending = []
    root = resources.files("queries")
    for folder in QUERY_FOLDERS:
        directory = root / folder
        if not directory.is_dir():
            continue
        pending += sorted(
            (f for f in directory.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name
        )
    loaded: list[str] = []
    while pending:
        failed = []
        errors = {}
        for file in pending:
            try:
                con.execute(file.read_text())
                loaded.append(file.name.removesuffix(".sql"))
            except duckdb.Error as exc:
                failed.append(file)
                errors[file.name] = exc
        if len(failed) == len(pending):
            detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
            msg = f"queries/ files do not load: {detail}"
            raise RuntimeError(msg)
        pending = failed
    return loaded
