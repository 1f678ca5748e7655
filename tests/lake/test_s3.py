"""A lake on S3 (moto's S3 server in a separate process, as delta-rs needs): commit and read."""

from __future__ import annotations

import polars as pl
import pytest

import lake
from lake.storage import Store, commit_bundle
from tests.lake.builders import make_bundle

#: Starts moto's S3 server and writes through it: about 10 s.
pytestmark = pytest.mark.slow


@pytest.fixture
def s3_options(s3):
    return s3.options


def test_a_lake_on_s3_commits_replaces_and_reads(s3_options):
    uri = "s3://nplake-test/lake-basic"
    store = Store.at(uri, s3_options)
    first, second = make_bundle("s1", seed=1), make_bundle("s2", seed=2)
    commit_bundle(store, first, source_hash="h1", pipeline_version="t")
    commit_bundle(store, second, source_hash="h2", pipeline_version="t")
    lk = lake.open(uri, storage_options=s3_options)
    counts = dict(lk.sql("SELECT session_id, count(*) FROM spikes GROUP BY 1").rows())
    assert counts == {"s1": first.num_rows("spikes"), "s2": second.num_rows("spikes")}
    areas = lk.sql("SELECT structure_acronym FROM units_annotated WHERE session_id = 's1'")
    assert sorted(areas.to_series().to_list()) == ["CA1", "DG", "LP", "VISl", "VISp"]
    version = lk.version
    replacement = make_bundle("s1", seed=3, n_units=3)
    commit_bundle(store, replacement, source_hash="h3", pipeline_version="t")
    scanned = lk.scan("spikes").filter(pl.col("session_id") == "s1").collect()
    assert scanned["time"].to_list() == replacement.table("spikes").column("time").to_pylist()
    assert lk.at(version).sql("SELECT count(*) FROM units WHERE session_id = 's1'").item() == 5
