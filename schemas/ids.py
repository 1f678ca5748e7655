"""Validation of the identifiers that reach Delta predicates, SQL text and file names."""

from __future__ import annotations

import re

from schemas.errors import InvalidName, InvalidSessionId

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_SESSION_ID = re.compile(SESSION_ID_PATTERN)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def validate_session_id(value: object, *, source: str | None = None) -> str:
    """Return `value` if it is a valid session id, else raise `InvalidSessionId`.

    Session ids are 1-128 characters of letters, digits, `_`, `.` and `-`, starting with a letter
    or digit, so they are safe inside Delta predicates, SQL literals and file names.
    """
    if isinstance(value, str) and _SESSION_ID.fullmatch(value) and ".." not in value:
        return value
    where = f"{source}: " if source else ""
    msg = (
        f"{where}session id {value!r} is not valid: use 1-128 letters, digits, '_', '.' or '-', "
        "starting with a letter or digit"
    )
    raise InvalidSessionId(msg)


def is_valid_session_id(value: object) -> bool:
    """Whether `value` passes `validate_session_id`."""
    return isinstance(value, str) and bool(_SESSION_ID.fullmatch(value)) and ".." not in value


def validate_name(value: object, *, what: str = "name") -> str:
    """Return `value` if it is a plain identifier (letters, digits, `_`), else raise."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    msg = f"{what} {value!r} is not a plain identifier (letters, digits and '_')"
    raise InvalidName(msg)


def sanitize_column_name(name: str) -> str:
    """Map a source column name to a Delta-safe identifier (spaces, '/', ':' … become '_')."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name.strip())
    if not cleaned or cleaned[0].isdigit():
        cleaned = f"c_{cleaned}"
    return cleaned
