"""What a lake must still be after fuzzing: readable by every reader, good sessions untouched,
no landed row holding a value the rules refuse, landed variants faithful to their source."""

from __future__ import annotations

from pathlib import Path

import deltalake
import numpy as np
import polars as pl
import pyarrow as pa

import lake
from ingest import decode
from schemas import TABLES
from schemas.checks import MAX_TIME_S, TIME_RULES
from tests.fuzz.harness import Result
from tests.helpers import assert_tables_equal


def read_every_table(root: Path) -> dict[str, int]:
    """Rows per table, read with lk.sql, lk.scan, deltalake and polars.read_delta (all agree)."""
    lk = lake.open(root)
    rows = {}
    for name in TABLES:
        by_sql = lk.sql(f"SELECT count(*) AS n FROM {name}")["n"].item()
        by_scan = lk.scan(name).select(pl.len()).collect().item()
        counts = {"sql": by_sql, "scan": by_scan}
        if (root / name / "_delta_log").is_dir():
            counts["deltalake"] = deltalake.DeltaTable(str(root / name)).to_pyarrow_table().num_rows
            counts["polars"] = pl.read_delta(str(root / name)).height
        assert len(set(counts.values())) == 1, (name, counts)
        rows[name] = by_sql
    return rows


def session_rows(root: Path, session_ids: list[str]) -> dict[str, pa.Table]:
    """Every row of these sessions, table by table, in a total order (all plain columns)."""
    lk = lake.open(root)
    out = {}
    for name in TABLES:
        frame = lk.scan(name).filter(pl.col("session_id").is_in(session_ids)).collect()
        plain = [c for c, t in frame.schema.items() if not t.is_nested()]
        out[name] = frame.sort(plain, nulls_last=True).to_arrow()
    return out


def assert_unchanged(before: dict[str, pa.Table], after: dict[str, pa.Table]) -> None:
    """The same rows in every table; columns added since (by other sessions) are all null."""
    for name, old in before.items():
        new = after[name]
        added = [c for c in new.column_names if c not in old.column_names]
        for column in added:
            assert new.column(column).null_count == new.num_rows, (name, column)
        assert_tables_equal(old, new.select(old.column_names), name=name)


def refused_values_in_lake(root: Path) -> dict[str, int]:
    """Rows of any session holding a time the value rules refuse (must be none)."""
    lk = lake.open(root)
    bad = {}
    for rule in TIME_RULES:
        column = f"{rule.table}.{rule.column}"
        nan = "isnan(t)" if rule.nan == "refuse" else "false"
        far = f"abs(t) > {MAX_TIME_S}" if rule.bounded and rule.beyond == "refuse" else "false"
        n = lk.sql(
            f"SELECT count(*) AS n FROM (SELECT {rule.column} AS t FROM {rule.table}) "
            f"WHERE isinf(t) OR {nan} OR (isfinite(t) AND {far})"
        )["n"].item()
        if n:
            bad[column] = n
    return bad


def unfaithful(root: Path, landed: list[Result]) -> list[str]:
    """Landed variants whose rows are not what decoding their source gives (notes included)."""
    if not landed:
        return []
    lk = lake.open(root)
    counts = {
        name: dict(lk.sql(f"SELECT session_id, count(*) FROM {name} GROUP BY 1").iter_rows())
        for name in TABLES
    }
    stored = dict(lk.sql("SELECT session_id, notes FROM sessions").iter_rows())
    problems = []
    for r in landed:
        bundle = decode(r.variant.path)
        tables = {name: bundle.table(name) for name in bundle.tables}  # streams read: notes final
        sid = bundle.session_id
        what = f"[{r.variant.kind}] {r.variant.what}"
        if (sid, bundle.notes) != (r.session_id, r.notes):
            problems.append(f"{what}: decodes to {sid} {bundle.notes}, landed {r.session_id}")
            continue
        missing = [n for n in bundle.notes if n not in (stored.get(sid) or "")]
        if missing:
            problems.append(f"{what}: sessions.notes lacks {missing}")
        for name in TABLES:
            got = counts[name].get(sid, 0)
            if name != "sessions" and got != bundle.num_rows(name):
                problems.append(f"{what}: {got} rows in {name}, {bundle.num_rows(name)} decoded")
        if bundle.num_rows("spikes"):
            spikes = tables["spikes"]
            got = (
                lk.scan("spikes")
                .filter(pl.col("session_id") == sid)
                .select("unit_id", "time")
                .sort("unit_id", "time")
                .collect()
            )
            same = np.array_equal(got["unit_id"].to_numpy(), spikes["unit_id"].to_numpy()) and (
                np.array_equal(got["time"].to_numpy(), spikes["time"].to_numpy())
            )
            if not same:
                problems.append(f"{what}: spikes differ from the decoded ones")
    return problems


def column_values(lk: lake.Lake, table: str, column: str, session_id: str) -> list | None:
    """The values of one column for one session, in the table's sort order (None: no column)."""
    frame = lk.scan(table).filter(pl.col("session_id") == session_id)
    if column not in frame.collect_schema().names():
        return None
    return frame.sort(list(TABLES[table].sort_by)).collect()[column].to_list()
