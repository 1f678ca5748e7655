"""The nplake data model: table specs, the SessionBundle, ids and errors. No I/O."""

from schemas.bundle import BatchSource, SessionBundle, StreamSource, rows_table
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
