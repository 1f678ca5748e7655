"""SQL attacks: no statement may change a file, a table, a view or a setting, on any lake.

Every statement below is tried through `Lake.sql` (and so `nplake sql`) against a lake holding
sessions; none may succeed, and afterwards the lake's files, its answers and the connection's
state are exactly as before.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import pytest

import lake
from lake.sql import SqlLimits
from lake.storage import Store, commit_bundles
from tests.lake.builders import make_bundle

COUNT_VISP = "SELECT count(*) FROM units_annotated WHERE structure_acronym = 'VISp'"


def _attacks(root: str, spikes_file: str, outside: Path, link: str) -> list[str]:
    """Statements that would write, change state, or read outside the snapshot's files."""
    log = f"{root}/sessions/_delta_log/{99:020d}.json"
    return [
        f"COPY (SELECT 1 AS x) TO '{root}/x.parquet'",
        f"COPY (SELECT * FROM spikes LIMIT 1) TO '{spikes_file}' (FORMAT parquet)",
        f"""COPY (SELECT '{{"remove":{{"path":"x"}}}}' AS j) TO '{log}' """
        "(FORMAT csv, HEADER false)",
        f"COPY (SELECT 1) TO '{outside.parent / 'stolen.csv'}'",
        "CREATE TABLE t AS SELECT 1",
        "CREATE TEMP TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "CREATE OR REPLACE TEMP VIEW units AS SELECT 1 AS x",
        "CREATE OR REPLACE VIEW spikes AS SELECT 1 AS x",
        "CREATE MACRO m(x) AS x + 1",
        "CREATE SEQUENCE s",
        "DELETE FROM sessions",
        "UPDATE units_annotated SET structure_acronym = 'VISp'",
        "INSERT INTO sessions (session_id) VALUES ('evil')",
        "DROP VIEW spikes",
        "DROP TABLE units_annotated",
        "ALTER TABLE sessions RENAME TO s2",
        "TRUNCATE sessions",
        f"ATTACH '{outside.parent / 'x.duckdb'}' AS x",
        "ATTACH ':memory:' AS m",
        "DETACH memory",
        "USE system",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA enable_profiling",
        "PRAGMA threads=1",
        "SET memory_limit = '100TB'",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "RESET memory_limit",
        "SET VARIABLE nplake_files_spikes = ['/etc/passwd']",  # the views' file lists
        "RESET VARIABLE nplake_files_units",
        "CALL pragma_version()",
        "CHECKPOINT",
        "VACUUM",
        f"EXPORT DATABASE '{outside.parent / 'dump'}'",
        "BEGIN TRANSACTION",
        "SELECT 1; DROP VIEW spikes",
        "SELECT 1; COPY (SELECT 1) TO 'x.csv'",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'",
        "EXPLAIN CREATE TABLE t AS SELECT 1",
        "PIVOT (SELECT 1 AS a, 2 AS b) ON a USING sum(b)",
        f"SELECT * FROM read_csv('{outside}')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM glob('/*')",
        f"SELECT * FROM glob('{root}/*')",
        f"SELECT * FROM read_parquet('{root}/*/*.parquet')",
        f"SELECT * FROM read_text('{root}/_nplake/log/{0:020d}.json')",
        f"SELECT * FROM read_text('{link}')",
        f"SELECT * FROM read_csv('{link}')",
        "SELECT getenv('HOME')",
        "SELECT * FROM query('COPY (SELECT 1) TO ''y.csv''')",
        "SELECT * FROM duckdb_secrets()",
        "SELECT current_setting('temp_directory')",
    ]


def _fingerprint(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def attacked(tmp_path):
    store = Store.at(tmp_path / "lake")
    commit_bundles(store, [make_bundle("s1", seed=1), make_bundle("s2", seed=2)])
    outside = tmp_path / "outside.csv"
    outside.write_text("secret\n42\n")
    link = Path(store.table_uri("units")) / "innocent.csv"
    link.symlink_to("/etc/passwd")
    return lake.open(store.root), outside, str(link)


def test_no_sql_statement_can_write_or_read_outside_its_snapshot(attacked, tmp_path):
    lk, outside, link = attacked
    spikes_file = lk.snapshot().files("spikes", "s1")[0]
    root = Path(lk.uri)
    before_files = _fingerprint(root)
    before = lk.sql(COUNT_VISP).item()
    succeeded = []
    for statement in _attacks(lk.uri, spikes_file, outside, link):
        try:
            lk.sql(statement)
        except (lake.ReadOnlySql, duckdb.Error):
            continue
        succeeded.append(statement)
    assert succeeded[:-1] == []  # the last one reads a setting: allowed, and harmless
    assert succeeded[-1:] == ["SELECT current_setting('temp_directory')"]
    assert _fingerprint(root) == before_files
    assert not (tmp_path / "stolen.csv").exists() and not (tmp_path / "x.duckdb").exists()
    assert not Path("x.csv").exists() and not Path("y.csv").exists()
    assert lk.sql(COUNT_VISP).item() == before
    assert lake.open(lk.uri).sql(COUNT_VISP).item() == before
    assert lk.sql("SELECT count(*) FROM sessions").item() == 2


def test_refusals_name_the_statement_and_the_way_out(attacked):
    lk, _, _ = attacked
    with pytest.raises(lake.ReadOnlySql, match=r"a COPY statement cannot run here.*--out FILE"):
        lk.sql("COPY (SELECT 1) TO 'x.csv'")
    with pytest.raises(lake.ReadOnlySql, match="a CREATE statement"):
        lk.sql("SELECT 1; CREATE VIEW v AS SELECT 1")


def test_queries_that_read_still_work(attacked):
    lk, _, _ = attacked
    assert lk.sql("WITH x AS (SELECT 1 AS a) SELECT a FROM x").item() == 1
    assert lk.sql("DESCRIBE spikes").height == 4
    assert lk.sql("SUMMARIZE units").height > 0
    assert lk.sql("SHOW TABLES").height > 10
    assert lk.sql("EXPLAIN SELECT count(*) FROM spikes").height > 0
    assert lk.sql("FROM units SELECT count(*)").item() == 10
    assert lk.sql("SELECT 1 AS a; SELECT 2 AS b").item() == 2


def test_the_spill_folder_is_private_and_unreadable_from_sql(attacked):
    lk, _, _ = attacked
    folder = lk.sql("SELECT current_setting('temp_directory')").item()
    assert Path(folder).is_dir() and os.stat(folder).st_mode & 0o077 == 0
    assert (
        folder != lk.connection().execute("SELECT current_setting('temp_directory')").fetchone()[0]
    )
    (Path(folder) / "link").symlink_to("/etc/passwd")  # planted by someone who can write there
    for reader in ("read_text", "read_csv", "read_blob"):
        with pytest.raises(duckdb.Error, match="Permission"):
            lk.sql(f"SELECT * FROM {reader}('{folder}/link')")


def test_a_runaway_query_stops_at_the_memory_limit_with_a_message(tmp_path):
    store = Store.at(tmp_path / "lake")
    commit_bundles(store, [make_bundle("s1", seed=1, n_units=40)])
    small = lake.Lake(store, limits=SqlLimits(memory="64MB", temp="32MB"))
    # a self-join that must hold every pair to sort them: ~ 10^8 rows, far over the limits
    runaway = (
        "SELECT a.time - b.time AS d, a.unit_id, b.unit_id FROM spikes a, spikes b "
        "ORDER BY d, a.unit_id, b.unit_id"
    )
    with pytest.raises(lake.QueryTooLarge, match=r"more than 64MB of memory and 32MB"):
        small.sql(runaway)
    assert small.sql("SELECT count(*) FROM units").item() == 40  # the lake answers again


def test_your_own_connection_is_yours_and_changes_nothing_else(attacked):
    lk, outside, _ = attacked
    con = lk.connection()
    con.execute("CREATE TEMP VIEW mine AS SELECT * FROM units WHERE unit_id = 100")
    assert con.execute("SELECT count(*) FROM mine").fetchone() == (2,)
    with pytest.raises(duckdb.Error):
        con.execute(f"SELECT * FROM read_csv('{outside}')")
    with pytest.raises(duckdb.Error):
        con.execute("SET enable_external_access = true")
    with pytest.raises(duckdb.Error):
        lk.sql("SELECT * FROM mine")  # another connection: it never saw `mine`


@pytest.mark.slow  # a moto S3 server
def test_an_s3_lake_is_sandboxed_too(s3, tmp_path):
    uri = s3.uri("sandbox")
    store = Store.at(uri, s3.options)
    commit_bundles(store, [make_bundle("s1", seed=1)])
    lk = lake.open(uri, storage_options=s3.options)
    outside = tmp_path / "outside.csv"
    outside.write_text("secret\n42\n")
    statements = [
        f"COPY (SELECT 1) TO '{tmp_path / 'local.csv'}'",
        f"COPY (SELECT 1) TO '{uri}/x.parquet'",
        f"SELECT * FROM read_csv('{outside}')",
        f"SELECT * FROM read_text('{uri}/_nplake/log/{0:020d}.json')",
        f"SELECT * FROM glob('{uri}/*')",
        "SET memory_limit = '100TB'",
        "CREATE TABLE t AS SELECT 1",
    ]
    succeeded = []
    for statement in statements:
        try:
            lk.sql(statement)
        except (lake.ReadOnlySql, duckdb.Error):
            continue
        succeeded.append(statement)
    assert succeeded == []
    assert not (tmp_path / "local.csv").exists()
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket="nplake-test")["Contents"]]
    assert not any(k.endswith("/x.parquet") for k in keys)
    assert lk.sql("SELECT count(*) FROM units").item() == 5
