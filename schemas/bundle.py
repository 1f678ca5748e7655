"""SessionBundle: what a decoder returns — one session as Arrow tables, one per lake table.

Small tables are `pa.Table`s. Tables too large for memory (spikes of a 100 M-spike session) are
`BatchSource`s: a schema, a row count and a re-iterable stream of sorted record batches.
`validate()` conforms every table to its spec and checks the session as a whole; streams are
checked while they flow, so an error surfaces before the lake commits anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from schemas.checks import ValueChecks
from schemas.conform import (
    conform_batches,
    conform_columns,
    conformed_schema,
    sort_conformed,
)
from schemas.errors import SchemaViolation
from schemas.ids import validate_session_id
from schemas.tables import SESSION_SCOPED, TABLES


@runtime_checkable
class BatchSource(Protocol):
    """A table delivered as a stream of record batches, readable more than once."""

    @property
    def schema(self) -> pa.Schema:
        """Schema of the batches."""
        ...

    @property
    def num_rows(self) -> int:
        """Total rows over all batches (known before reading)."""
        ...

    def batches(self) -> Iterator[pa.RecordBatch]:
        """A fresh iterator over the batches, in the table's sort order."""
        ...


@dataclass(frozen=True)
class StreamSource:
    """A BatchSource built from a schema, a row count and a function that opens the stream."""

    schema: pa.Schema
    num_rows: int
    open: Callable[[], Iterator[pa.RecordBatch]]

    def batches(self) -> Iterator[pa.RecordBatch]:
        """A fresh iterator over the batches."""
        return self.open()


TableData = pa.Table | BatchSource


@dataclass
class SessionBundle:
    """One decoded session: `tables` maps lake table names to Arrow tables or batch sources.

    `notes` are human-readable remarks for the ingest summary (quirks handled, probes left on
    their own clock); they also land in `sessions.notes`.
    """

    session_id: str
    tables: dict[str, TableData]
    notes: list[str] = field(default_factory=list)
    #: Set on the bundles `validate()` returns; the lake validates bundles that are not.
    validated: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        validate_session_id(self.session_id)
        unknown = sorted(set(self.tables) - set(TABLES))
        if unknown:
            msg = f"unknown tables {unknown}; known: {sorted(TABLES)}"
            raise SchemaViolation(msg)

    def num_rows(self, name: str) -> int:
        """Rows of table `name` in this session (0 when the source has none)."""
        data = self.tables.get(name)
        return 0 if data is None else data.num_rows

    def table(self, name: str) -> pa.Table:
        """Table `name` as one in-memory Arrow table (streams are read whole: mind the size)."""
        data = self.tables.get(name)
        if data is None:
            return TABLES[name].arrow_schema.empty_table()
        if isinstance(data, pa.Table):
            return data
        table = pa.Table.from_batches(list(data.batches()), schema=data.schema)
        return table.cast(_plain_schema(data.schema))

    def batches(self, name: str) -> Iterator[pa.RecordBatch]:
        """Table `name` as record batches, whatever its form."""
        data = self.tables.get(name)
        if data is None:
            return iter(())
        if isinstance(data, pa.Table):
            return iter(data.to_batches())
        return data.batches()

    def validate(self, *, source: str | Path | None = None) -> SessionBundle:
        """A new bundle whose tables all fit their specs; raises SchemaViolation otherwise.

        Checks: exactly one sessions row with this session id; every table conformed (types,
        required columns, unique keys, sort order); units referenced by spikes and waveforms
        exist; each unit's spike_count equals its rows in spikes (checked as spikes stream);
        the value rules of `schemas.checks` (finite times in range, ...), whose refusals name
        `source` (the file or folder decoded) and whose notes join the bundle's notes and its
        sessions row. Notes about a stream are added when it has been read to its end.
        """
        try:
            return self._validated(source)
        except SchemaViolation as exc:
            raise _naming(exc, source, self.session_id) from None

    def _validated(self, source: str | Path | None) -> SessionBundle:
        sid = self.session_id
        if "sessions" not in self.tables or self.num_rows("sessions") != 1:
            msg = "a bundle needs exactly one sessions row"
            raise SchemaViolation(msg, table="sessions")
        checks = ValueChecks(sid, source)
        bundle = SessionBundle(sid, {}, list(self.notes), validated=True)
        out: dict[str, TableData] = {}
        for name, data in self.tables.items():
            spec = TABLES[name]
            if isinstance(data, pa.Table):
                columns = conform_columns(spec, data, sid)
                checks.check_table(name, columns)  # in the source's order: rows named as there
                out[name] = sort_conformed(spec, columns)
            else:
                checks.expect_stream(name, data.num_rows)
                out[name] = StreamSource(
                    schema=conformed_schema(spec, data.schema),
                    num_rows=data.num_rows,
                    open=_conformed_stream(spec, data, sid, checks, bundle.add_notes),
                )
        for name, data in _check_units(out).items():
            bundle.tables[name] = data if isinstance(data, pa.Table) else _named(data, source, sid)
        bundle.add_notes(checks.notes())
        return bundle

    def add_notes(self, notes: list[str]) -> None:
        """Add notes (those not there yet) to the bundle's notes and to its sessions row."""
        new = [n for n in dict.fromkeys(notes) if n not in self.notes]
        if not new:
            return
        self.notes.extend(new)
        row = self.tables.get("sessions")
        if not isinstance(row, pa.Table) or "notes" not in row.column_names:
            return
        text = row.column("notes")[0].as_py() or ""
        added = [n for n in new if n not in text]
        if added:
            notes_text = "; ".join([text, *added] if text else added)
            index = row.schema.get_field_index("notes")
            field_ = row.schema.field(index)
            self.tables["sessions"] = row.set_column(
                index, field_, pa.array([notes_text], field_.type)
            )


def _naming(exc: SchemaViolation, source: str | Path | None, sid: str) -> SchemaViolation:
    """`exc`, naming the source file and the session when it does not yet."""
    if exc.file is not None or source is None:
        return exc
    return SchemaViolation(
        exc.reason, table=exc.table, column=exc.column, file=source, session_id=sid
    )


def _named(data: BatchSource, source: str | Path | None, sid: str) -> StreamSource:
    """A stream whose SchemaViolations name the source file and the session."""

    def opener() -> Iterator[pa.RecordBatch]:
        try:
            yield from data.batches()
        except SchemaViolation as exc:
            raise _naming(exc, source, sid) from None

    return StreamSource(data.schema, data.num_rows, opener)


def _conformed_stream(
    spec, data: BatchSource, sid: str, checks: ValueChecks, done: Callable[[list[str]], None]
) -> Callable[[], Iterator[pa.RecordBatch]]:
    """Each pass: the value rules on the decoder's batches, then conformed to the spec.

    The value rules come first, so a NaN or infinite time is named as such, not as rows out of
    order; `done` receives the notes at the end of each pass.
    """

    def opener() -> Iterator[pa.RecordBatch]:
        checked = checks.stream(spec.name, data.batches(), data.num_rows, done)
        return conform_batches(spec, checked, sid)

    return opener


def _check_units(tables: dict[str, TableData]) -> dict[str, TableData]:
    """Cross-table checks on conformed tables; wraps a spikes stream in a counting check."""
    units = tables.get("units")
    unit_ids = units.column("unit_id").to_numpy() if units is not None else np.array([], np.int64)
    expected = units.column("spike_count").to_numpy() if units is not None else unit_ids
    waveforms = tables.get("waveforms")
    if waveforms is not None and waveforms.num_rows:
        missing = ~np.isin(waveforms.column("unit_id").to_numpy(), unit_ids)
        if missing.any():
            msg = f"{int(missing.sum())} waveform rows name units that are not in units"
            raise SchemaViolation(msg, table="waveforms", column="unit_id")
    spikes = tables.get("spikes")
    n_spikes = 0 if spikes is None else spikes.num_rows
    if n_spikes != int(expected.sum()):
        msg = f"{n_spikes} spikes but units.spike_count sums to {int(expected.sum())}"
        raise SchemaViolation(msg, table="spikes")
    if spikes is None:
        return tables
    if isinstance(spikes, pa.Table):
        for _ in _count_spikes_per_unit(iter(spikes.to_batches()), unit_ids, expected):
            pass
        return tables

    def checked() -> Iterator[pa.RecordBatch]:
        return _count_spikes_per_unit(spikes.batches(), unit_ids, expected)

    return {**tables, "spikes": StreamSource(spikes.schema, spikes.num_rows, checked)}


def _count_spikes_per_unit(
    batches: Iterator[pa.RecordBatch], unit_ids: np.ndarray, expected: np.ndarray
) -> Iterator[pa.RecordBatch]:
    """Pass batches through while counting spikes per unit; raise at the end on any mismatch.

    Batches are sorted by unit_id (checked by conform), so each batch is a few runs of equal
    ids: counting searches the run boundaries, O(units log spikes) per batch, not O(spikes).
    """
    order = np.argsort(unit_ids, kind="stable")
    sorted_ids = unit_ids[order]
    counts = np.zeros(len(unit_ids), dtype=np.int64)
    for batch in batches:
        ids = batch.column(batch.schema.get_field_index("unit_id")).to_numpy()
        starts = np.flatnonzero(np.diff(ids)) + 1
        run_ids = ids[np.concatenate(([0], starts))]
        run_lengths = np.diff(np.concatenate(([0], starts, [len(ids)])))
        pos = np.searchsorted(sorted_ids, run_ids)
        known = pos < len(sorted_ids)
        known[known] = sorted_ids[pos[known]] == run_ids[known]
        if not known.all():
            bad = np.unique(run_ids[~known])[:5].tolist()
            msg = f"spikes name units that are not in units: {bad}"
            raise SchemaViolation(msg, table="spikes", column="unit_id")
        np.add.at(counts, order[pos], run_lengths)
        yield batch
    if not np.array_equal(counts, expected):
        bad = np.flatnonzero(counts != expected)[:5]
        detail = ", ".join(
            f"unit {unit_ids[i]}: {counts[i]} spikes, spike_count {expected[i]}" for i in bad
        )
        msg = f"spike counts disagree with units.spike_count ({detail})"
        raise SchemaViolation(msg, table="units", column="spike_count")


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """The schema with dictionary-encoded columns (stream session ids) as their value type."""
    fields = [
        f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def row_counts(bundle: SessionBundle) -> Mapping[str, int]:
    """Rows per session-scoped table, for the sessions row's n_<table> columns."""
    return {name: bundle.num_rows(name) for name in SESSION_SCOPED}


def rows_table(name: str, rows: list[dict]) -> pa.Table:
    """Validate metadata rows with the table's pydantic model and build an Arrow table."""
    spec = TABLES[name]
    model = spec.row_model
    validated = [model.model_validate(r).model_dump() for r in rows]
    columns = {}
    for col in spec.columns:
        columns[col.name] = pa.array([r.get(col.name) for r in validated], type=col.type)
    extras = [k for r in validated for k in r if not spec.has_column(k)]
    for key in dict.fromkeys(extras):
        columns[key] = pa.array([r.get(key) for r in validated])
    return pa.table(columns)


__all__ = [
    "BatchSource",
    "SessionBundle",
    "StreamSource",
    "TableData",
    "row_counts",
    "rows_table",
]
