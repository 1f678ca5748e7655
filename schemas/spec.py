"""Column and table specs: the one source Arrow schemas, pydantic models and docs derive from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from schemas.ids import SESSION_ID_PATTERN

if TYPE_CHECKING:
    import pydantic

#: Metadata keys written on every Arrow field and into the Delta schema.
DESCRIPTION = "description"
UNIT = "unit"


@dataclass(frozen=True)
class Column:
    """One column: name, Arrow type, physical unit ('' when dimensionless) and meaning."""

    name: str
    type: pa.DataType
    unit: str
    description: str
    nullable: bool = True

    def field(self) -> pa.Field:
        """The Arrow field, with unit and description as field metadata."""
        return pa.field(
            self.name,
            self.type,
            nullable=self.nullable,
            metadata={DESCRIPTION: self.description, UNIT: self.unit},
        )


@dataclass(frozen=True)
class TableSpec:
    """A table of the lake: its columns, keys, partitioning and sort order.

    `open_columns` tables keep every extra column a source has (metrics, task columns); the
    other tables accept only their declared columns.
    """

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    sort_by: tuple[str, ...]
    unique_key: bool = True
    open_columns: bool = False
    partition_by: tuple[str, ...] = ("session_id",)
    notes: str = ""
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})
        missing = [k for k in (*self.key, *self.sort_by) if k not in self._by_name]
        if missing:
            msg = f"table {self.name}: key/sort columns {missing} are not declared"
            raise ValueError(msg)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of the declared columns, in order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """The declared column `name` (KeyError if the table has no such column)."""
        return self._by_name[name]

    def has_column(self, name: str) -> bool:
        """Whether `name` is a declared column."""
        return name in self._by_name

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of the declared columns, with units and descriptions as metadata."""
        return pa.schema(
            [c.field() for c in self.columns], metadata={DESCRIPTION: self.description}
        )

    @cached_property
    def row_model(self) -> type[pydantic.BaseModel]:
        """A pydantic model of one row, derived from the columns (used for metadata rows)."""
        import pydantic  # only decoders build rows: readers of the lake never load pydantic

        fields: dict[str, Any] = {}
        for col in self.columns:
            py = _python_type(col.type)
            if col.name == "session_id":
                py = pydantic.constr(pattern=SESSION_ID_PATTERN)
            if col.nullable:
                fields[col.name] = (py | None, pydantic.Field(None, description=col.description))
            else:
                fields[col.name] = (py, pydantic.Field(..., description=col.description))
        config = pydantic.ConfigDict(extra="allow" if self.open_columns else "forbid", strict=False)
        model_name = "".join(p.capitalize() for p in self.name.split("_")) + "Row"
        return pydantic.create_model(model_name, __config__=config, **fields)


def _python_type(t: pa.DataType) -> Any:
    """The Python type pydantic validates an Arrow value against."""
    if pa.types.is_boolean(t):
        return bool
    if pa.types.is_integer(t):
        return int
    if pa.types.is_floating(t):
        return float
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return str
    if pa.types.is_timestamp(t):
        return dt.datetime
    if pa.types.is_date(t):
        return dt.date
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return list[_python_type(t.value_type)]
    msg = f"no python type for arrow type {t}"
    raise TypeError(msg)
