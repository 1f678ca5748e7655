"""The one error hierarchy of nplake.

It lives in the bottom layer so that `ingest` and `lake` raise the same types without import
cycles. Callers catch `NplakeError`; the batch runner reports it per session. Anything else that
escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class NplakeError(Exception):
    """Base class of every error nplake raises on purpose."""


def one_line(message: str) -> str:
    """`message` on one line: line breaks a library quoted from a file are shown escaped."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


class DecodeError(NplakeError):
    """A source file could not be decoded; names the file, the field and the session."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        session_id: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.session_id = session_id
        self.reason = one_line(message)
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.field:
            where.append(self.field)
        prefix = ": ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class SchemaViolation(NplakeError):
    """A table does not fit its spec in `schemas.TABLES` (column, type, key, order or values).

    `file` and `session_id`, when known, are named too: the value rules (`schemas.checks`) run
    where the source file is known, and their message must say which file to fix.
    """

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        column: str | None = None,
        file: str | Path | None = None,
        session_id: str | None = None,
    ):
        self.table = table
        self.column = column
        self.file = str(file) if file is not None else None
        self.session_id = session_id
        self.reason = one_line(message)
        where = ".".join(x for x in (table, column) if x)
        text = f"{where}: {self.reason}" if where else self.reason
        super().__init__(f"{self.file}: {text}" if self.file else text)


class InvalidSessionId(NplakeError, ValueError):
    """A session id does not match the id pattern; it would reach predicates and file names."""


class InvalidName(NplakeError, ValueError):
    """A table, column or view name is not a plain identifier."""


class UnknownTable(NplakeError, KeyError):
    """A table name that is not in `schemas.TABLES`."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownSession(NplakeError, LookupError):
    """A session id that is not in the lake (the message suggests close matches)."""


class UnknownRegion(NplakeError, ValueError):
    """A brain region or grouping level the Allen CCF ontology (`brain_regions`) does not have."""


class CommitConflict(NplakeError):
    """Another writer changed the same session first; this ingest was not committed."""


class UnsupportedTable(NplakeError):
    """A Delta table uses features this version of nplake cannot read correctly."""


class LakeError(NplakeError):
    """The lake location is missing, unreadable, or not an nplake lake."""


class ExportError(NplakeError):
    """An NWB export could not be written (target exists, folder not writable, disk full...)."""


class InconsistentSession(NplakeError):
    """A session's rows contradict each other (spikes vs units, channels vs probes, ...)."""


class ReadOnlySql(NplakeError, PermissionError):
    """A SQL statement that would change something was refused: the lake's SQL is read-only."""


class QueryTooLarge(NplakeError, MemoryError):
    """A query needed more memory and temporary disk than the SQL limits allow."""
