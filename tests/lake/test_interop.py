"""The recipes of docs/interop.md: other engines read one lake version through the manifest."""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import lake
from lake.storage import Store, commit_bundle, commit_bundles
from tests.lake.builders import make_bundle

QUESTION = (
    "SELECT u.quality, count(*) AS spikes FROM spikes AS s JOIN units AS u "
    "USING (session_id, unit_id) GROUP BY 1 ORDER BY 1"
)


@pytest.fixture
def lk(tmp_path) -> lake.Lake:
    store = Store.at(tmp_path / "lake")
    commit_bundles(store, [make_bundle("s1", seed=1), make_bundle("s2", seed=2)])
    extra = {"snr": pa.array([1.0, 2, 3, 4])}  # a column older files lack
    commit_bundle(store, make_bundle("s1", seed=3, n_units=4, extra_units=extra))  # replaces s1
    return lake.open(store.root)


def _files(root: str, table: str) -> list[str]:
    with open(f"{root}/_nplake/log/_last_checkpoint") as fh:
        v = json.load(fh)["version"]
    manifest = pl.read_parquet(f"{root}/_nplake/log/{v:020d}.checkpoint.parquet")
    current = manifest.filter(pl.col("removed_version").is_null())
    return [f"{root}/{table}/{p}" for p in current.filter(pl.col("table") == table)["path"]]


def test_the_duckdb_recipe_answers_as_nplake(lk):
    con = duckdb.connect()
    con.execute(f"SET VARIABLE lake = '{lk.uri}'")
    con.execute(
        "SET VARIABLE v = (SELECT version FROM read_json(getvariable('lake') || "
        "'/_nplake/log/_last_checkpoint'))"
    )
    con.execute(
        "SET VARIABLE manifest = getvariable('lake') || '/_nplake/log/' || "
        "lpad(getvariable('v')::VARCHAR, 20, '0') || '.checkpoint.parquet'"
    )
    for table in ("units", "spikes"):
        con.execute(
            f"SET VARIABLE {table} = (SELECT list(getvariable('lake') || '/{table}/' || path) "
            f"FROM read_parquet(getvariable('manifest')) WHERE \"table\" = '{table}' "
            "AND removed_version IS NULL)"
        )
    got = con.execute(
        "SELECT u.quality, count(*) AS spikes "
        "FROM read_parquet(getvariable('spikes'), hive_partitioning = true, "
        "hive_types = {'session_id': VARCHAR}) AS s "
        "JOIN read_parquet(getvariable('units'), union_by_name = true) AS u "
        "USING (session_id, unit_id) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert got == lk.sql(QUESTION).rows()


def test_the_polars_and_pyarrow_recipes_answer_as_nplake(lk):
    expected = lk.sql(QUESTION).rows()
    newest = pl.read_parquet(_files(lk.uri, "units")[-1]).schema
    units = pl.scan_parquet(
        _files(lk.uri, "units"), schema=newest, missing_columns="insert", extra_columns="ignore"
    )
    spikes = pl.scan_parquet(
        _files(lk.uri, "spikes"), hive_partitioning=True, hive_schema={"session_id": pl.String}
    )
    got = (
        spikes.join(units, on=["session_id", "unit_id"])
        .group_by("quality")
        .agg(pl.len().alias("spikes"))
        .sort("quality")
        .collect()
    )
    assert [(q, int(n)) for q, n in got.rows()] == expected
    snr = units.filter(pl.col("session_id") == "s1").select(pl.col("snr").sum()).collect()
    assert snr.item() == 10.0
    arrow = ds.dataset(
        _files(lk.uri, "spikes"), format="parquet", partitioning=ds.partitioning(flavor="hive")
    ).to_table()
    assert arrow.num_rows == lk.sql("SELECT count(*) FROM spikes").item()


def test_each_delta_table_names_the_lake_version_it_publishes(lk):
    from deltalake import DeltaTable

    for table in ("units", "spikes", "sessions"):
        dt = DeltaTable(f"{lk.uri}/{table}")
        assert dt.transaction_version("nplake") == lk.version
        assert dt.history(1)[0]["nplake.version"] == lk.version
