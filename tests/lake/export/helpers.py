"""What the export tests share: session ids, and the rows of one session in two lakes compared."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

import lake
from lake.export import PROVENANCE
from lake.export.session import plain_types
from schemas import TABLES
from tests.helpers import arrays_equal

#: Sessions of the export tests: the real Janelia file, a synthetic session.
JANELIA = "anm369963_2017-02-28_2"
SYNTH = "1064644573"
#: The repository (subprocesses run there, to import this checkout's packages).
REPO = Path(__file__).resolve().parents[3]


def session_rows(lk: lake.Lake, table: str, session_id: str) -> pa.Table:
    """The current rows of one session in one table, as Arrow (lake order, plain types)."""
    frame = lk.scan(table).filter(pl.col("session_id") == session_id).collect()
    return plain_types(frame.to_arrow())


def differences(a: lake.Lake, b: lake.Lake, session_id: str) -> list[str]:
    """Every difference between a session's rows in lake `a` and lake `b` (empty: identical).

    Tables must have the same rows in the same (lake) order, column by column, NaN equal to
    NaN. A column that exists in one lake only (lakes merge the columns of all their sessions)
    must be null in every row of this session. The sessions provenance columns are skipped.
    """
    problems = []
    for name in TABLES:
        left, right = session_rows(a, name, session_id), session_rows(b, name, session_id)
        if name == "sessions":
            left = left.drop_columns([c for c in PROVENANCE if c in left.column_names])
            right = right.drop_columns([c for c in PROVENANCE if c in right.column_names])
        if left.num_rows != right.num_rows:
            problems.append(f"{name}: {left.num_rows} rows, round trip {right.num_rows}")
            continue
        for column in dict.fromkeys([*left.column_names, *right.column_names]):
            problem = _column_difference(name, column, left, right)
            if problem:
                problems.append(problem)
    return problems


def _column_difference(name: str, column: str, left: pa.Table, right: pa.Table) -> str | None:
    where = f"{name}.{column}"
    if column not in right.column_names or column not in left.column_names:
        only = left if column in left.column_names else right
        side = "original" if only is left else "round trip"
        values = only.column(column)
        if values.null_count != len(values):
            return f"{where}: only in the {side} lake, with values"
        return None
    x, y = left.column(column).combine_chunks(), right.column(column).combine_chunks()
    if x.type != y.type:
        return f"{where}: type {x.type}, round trip {y.type}"
    if not arrays_equal(x, y):
        return f"{where}: {x.slice(0, 3).to_pylist()} ... vs {y.slice(0, 3).to_pylist()} ..."
    return None
