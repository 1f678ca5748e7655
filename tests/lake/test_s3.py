"""A lake on S3 (moto's S3 server in a separate process, as delta-rs needs): commit and read."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import polars as pl
import pytest

import lake
from lake.storage import Store, commit_bundle
from tests.lake.builders import make_bundle

#: Starts moto's S3 server and writes through it: about 10 s.
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_options():
    port = _free_port()
    # The interpreter's own moto (not whatever moto_server is first on PATH: an older one
    # answers pyarrow's CompleteMultipartUpload with an empty body).
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    options = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="x",
        aws_secret_access_key="y",
        region_name="us-east-1",
    )
    for _ in range(100):
        try:
            client.create_bucket(Bucket="nplake-test")
            break
        except Exception:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto_server did not start")
    yield options
    proc.kill()
    proc.wait()


def test_a_lake_on_s3_commits_replaces_and_reads(s3_options):
    uri = "s3://nplake-test/lake"
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
