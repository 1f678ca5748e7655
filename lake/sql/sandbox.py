"""SQL is read-only by construction, and bounded.

Three locks, each enough on its own against writes through `Lake.sql` / `nplake sql`:

1. **Statements**: DuckDB's own parser classifies every statement; only queries run (SELECT,
   WITH, VALUES, FROM-first, DESCRIBE, SHOW, SUMMARIZE, and EXPLAIN of those). COPY, CREATE,
   INSERT, UPDATE, DELETE, DROP, ALTER, ATTACH, INSTALL/LOAD, SET/RESET, PRAGMA, CALL, EXPORT,
   transactions and multi-statements like PIVOT (which creates a type) are refused before
   anything runs, so no query can change what the next one sees.
2. **Files**: the connection may open exactly the data files of its snapshot
   (`allowed_paths`; no folder is allowed, so a link planted in the lake leads nowhere), with
   every other file-system access disabled and the configuration locked.
3. **Resources**: memory and temporary disk are capped (`SqlLimits`); the spill folder is a
   fresh private folder per connection. A query over the cap stops with a message.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass

import duckdb

from schemas.errors import QueryTooLarge, ReadOnlySql

#: Statement types that only read.
_READ_ONLY = {"SELECT"}
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(ANALYZE\s+)?", re.IGNORECASE)


@dataclass(frozen=True)
class SqlLimits:
    """Memory and temporary disk a query may use (DuckDB sizes such as '4GB').

    Defaults: `$NPLAKE_SQL_MEMORY` or 4GB of memory, `$NPLAKE_SQL_TEMP` or 20GB of spill disk.
    """

    memory: str = "4GB"
    temp: str = "20GB"

    @staticmethod
    def from_env() -> SqlLimits:
        """Limits from the environment, else the defaults."""
        return SqlLimits(
            memory=os.environ.get("NPLAKE_SQL_MEMORY") or SqlLimits.memory,
            temp=os.environ.get("NPLAKE_SQL_TEMP") or SqlLimits.temp,
        )


def check_read_only(query: str) -> None:
    """ReadOnlySql unless every statement of `query` only reads."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error:
        return  # a syntax error: DuckDB reports it when the query runs
    for statement in statements:
        kind = statement.type.name
        if kind == "EXPLAIN":
            inner = _EXPLAIN.sub("", statement.query, count=1)
            if inner.strip() == statement.query.strip():  # EXPLAIN in a form we do not know
                msg = "the lake's SQL is read-only: use EXPLAIN [ANALYZE] SELECT ..."
                raise ReadOnlySql(msg)
            check_read_only(inner)
            continue
        if kind not in _READ_ONLY:
            msg = (
                f"the lake's SQL is read-only: a {kind} statement cannot run here (only queries: "
                "SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); save results with "
                "`nplake sql ... --out FILE` or from the DataFrame `Lake.sql` returns"
            )
            raise ReadOnlySql(msg)


def apply_limits(con: duckdb.DuckDBPyConnection, limits: SqlLimits) -> None:
    """Cap memory and spill disk; spill into a fresh private folder removed with `con`."""
    spill = tempfile.mkdtemp(prefix="nplake-sql-")
    weakref.finalize(con, shutil.rmtree, spill, True)
    con.execute(f"SET temp_directory = '{_quote(spill)}'")
    con.execute(f"SET memory_limit = '{_quote(limits.memory)}'")
    con.execute(f"SET max_temp_directory_size = '{_quote(limits.temp)}'")


def lock(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """Allow exactly `files`; disable every other file-system access; freeze the settings."""
    if files:  # bound, not spelled into the SQL: 10,000 quoted paths take long to parse
        con.execute("SET allowed_paths = ?", [files])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def too_large(exc: duckdb.OutOfMemoryException, limits: SqlLimits) -> QueryTooLarge:
    """The one-line error for a query over the limits."""
    msg = (
        f"the query needed more than {limits.memory} of memory and {limits.temp} of temporary "
        "disk: narrow it (filter sessions or units, aggregate before joining spikes), or raise "
        "the limits with NPLAKE_SQL_MEMORY / NPLAKE_SQL_TEMP"
    )
    return QueryTooLarge(msg)


def _quote(text: str) -> str:
    return text.replace("'", "''")
