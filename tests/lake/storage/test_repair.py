"""`nplake repair`: a Delta log whose statistics are not valid JSON is made valid again.

nplake before the lake log wrote `Infinity` into the statistics of a file with an infinite
value. JSON has no Infinity: strict readers (Spark, and delta-rs versions of the time, whose
checkpoints then failed with "Encountered unexpected 'I'") cannot read such a log. Today's
delta-rs skips the bad statistics; `repair` makes the log valid for every reader.
"""

from __future__ import annotations

import json
import math

import polars as pl
from deltalake import DeltaTable
from typer.testing import CliRunner

import lake
from lake.cli import app
from lake.storage import Store, commit_bundle
from lake.storage.parquet import file_stats
from tests.lake.builders import make_bundle


def _poison(store: Store, table: str) -> str:
    """Rewrite the table's newest add action with `Infinity`/`NaN` statistics, as old nplake did."""
    log = sorted(store.files.list(f"{table}/_delta_log"), key=lambda f: f.path)
    newest = [f for f in log if f.path.endswith(".json")][-1]
    lines = store.files.read_bytes(newest.path).decode().splitlines()
    for i, line in enumerate(lines):
        action = json.loads(line)
        if "add" in action:
            stats = json.loads(action["add"]["stats"])
            stats["maxValues"]["time"] = math.inf
            stats["minValues"]["time"] = -math.inf
            stats["maxValues"]["amplitude"] = math.nan
            action["add"]["stats"] = json.dumps(stats)  # Python writes Infinity / NaN
            lines[i] = json.dumps(action)
    store.files.put(newest.path, ("\n".join(lines) + "\n").encode())
    return newest.path


def _strict_json(log: bytes) -> bool:
    """Whether every line and every statistics string of a Delta log file is strict JSON."""

    def refuse(name: str):
        raise ValueError(name)

    try:
        for line in log.decode().splitlines():
            action = json.loads(line, parse_constant=refuse)
            if "add" in action:
                json.loads(action["add"]["stats"], parse_constant=refuse)
    except ValueError:
        return False
    return True


def test_repair_makes_a_poisoned_delta_log_readable(tmp_path):
    store = Store.at(tmp_path / "lake")
    commit_bundle(store, make_bundle("s1", seed=1))
    expected = pl.read_delta(store.table_uri("spikes")).sort("unit_id", "time")
    poisoned = _poison(store, "spikes")
    assert b"Infinity" in store.files.read_bytes(poisoned)
    assert not _strict_json(store.files.read_bytes(poisoned))
    result = CliRunner().invoke(app, ["repair", "--lake", store.root])
    assert result.exit_code == 0, result.output
    assert "repaired 1 Delta log files (spikes: 1)" in result.stdout
    assert b"Infinity" not in store.files.read_bytes(poisoned)
    assert _strict_json(store.files.read_bytes(poisoned))
    repaired = pl.read_delta(store.table_uri("spikes")).sort("unit_id", "time")
    assert repaired.equals(expected)
    DeltaTable(store.table_uri("spikes")).create_checkpoint()  # checkpoints work again
    again = CliRunner().invoke(app, ["repair", "--lake", store.root])
    assert "nothing to repair" in again.stdout
    assert lake.open(store.root).sql("SELECT count(*) FROM spikes").item() == expected.height


def test_statistics_of_non_finite_values_are_left_out_not_written_as_infinity(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"time": [0.5, math.inf], "unit_id": [1, 2]}), path)
    stats = file_stats(pq.read_metadata(path))
    text = json.dumps(stats, allow_nan=False)  # valid JSON: would raise on inf
    assert "time" not in stats["maxValues"] and stats["maxValues"]["unit_id"] == 2
    assert json.loads(text)["nullCount"]["time"] == 0
