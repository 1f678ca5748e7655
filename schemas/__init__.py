"""The nplake data model: table specs, the SessionBundle, ids and errors. No I/O.

`SessionBundle` and its helpers (numpy, conform, value checks) load on first use, so a reader
of the lake that only needs the specs and errors imports little.
"""

from typing import TYPE_CHECKING, Any

from schemas.errors import (
    CommitConflict,
    DecodeError,
    InvalidName,
    InvalidSessionId,
    LakeError,
    NplakeError,
    SchemaViolation,
    UnknownSession,
    UnknownTable,
    UnsupportedTable,
)
from schemas.ids import SESSION_ID_PATTERN, is_valid_session_id, validate_session_id
from schemas.spec import Column, TableSpec
from schemas.tables import LAKE_FILLED, SESSION_SCOPED, TABLES

if TYPE_CHECKING:
    from schemas.bundle import BatchSource, SessionBundle, StreamSource, rows_table

_BUNDLE_NAMES = ("BatchSource", "SessionBundle", "StreamSource", "rows_table")


def __getattr__(name: str) -> Any:
    """Load the bundle module when one of its names is first asked for."""
    if name in _BUNDLE_NAMES:
        from schemas import bundle

        return getattr(bundle, name)
    msg = f"module 'schemas' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "LAKE_FILLED",
    "SESSION_ID_PATTERN",
    "SESSION_SCOPED",
    "TABLES",
    "BatchSource",
    "Column",
    "CommitConflict",
    "DecodeError",
    "InvalidName",
    "InvalidSessionId",
    "LakeError",
    "NplakeError",
    "SchemaViolation",
    "SessionBundle",
    "StreamSource",
    "TableSpec",
    "UnknownSession",
    "UnknownTable",
    "UnsupportedTable",
    "is_valid_session_id",
    "rows_table",
    "validate_session_id",
]
