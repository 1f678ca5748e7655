"""A lake on S3 (moto) through every command and the API, with remote sources and Dask workers.

One scenario, step by step, against a local lake fed the same sources in the same order: each
answer of the S3 lake must be the local lake's. Credentials never reach the lake's objects, a
command's output (also of failing runs) or the Dask logs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import polars as pl
import pytest

import lake
from ingest import remote
from tests.lake.distributed.compare import PROVENANCE, rows
from tests.lake.distributed.conftest import local_cluster
from tests.s3 import BUCKET, SECRET

pytestmark = pytest.mark.slow  # moto, a Dask cluster and about twenty CLI runs: about a minute

OUTPUTS: list[str] = []  # every command's stdout and stderr, checked for the secret at the end


def nplake(env: dict, *args: str, code: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from lake.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    OUTPUTS.extend([done.stdout, done.stderr])
    assert done.returncode == code, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


@pytest.fixture(scope="module")
def world(s3, rig_batch, tmp_path_factory):
    """The AWS environment (moto), a cluster whose workers have it, the sources on S3."""
    root = tmp_path_factory.mktemp("s3-lake")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in s3.env.items():
            mp.setenv(name, value)
        remote.reset()
        prefix = s3.uri("sources").split("/", 3)[3]
        client = s3.client()
        uris = []
        for path in rig_batch[2:]:
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/{path.name}", Body=path.read_bytes())
            uris.append(f"s3://{BUCKET}/{prefix}/{path.name}")
        changed = root / rig_batch[2].name
        shutil.copy(rig_batch[2], changed)
        with h5py.File(changed, "a") as fh:
            del fh["session_description"]
            fh["session_description"] = "changed"
        with local_cluster() as cluster:
            yield {
                "env": s3.env,
                "options": s3.options,
                "uri": s3.uri("lake"),
                "rig": [str(p) for p in rig_batch[:2]],
                "synth": [str(p) for p in rig_batch[2:]],
                "remote": uris,
                "changed": changed,
                "key": f"{prefix}/{rig_batch[2].name}",
                "cluster": cluster,
                "root": root,
            }
        remote.reset()


def test_an_s3_lake_through_every_command_and_the_api(world, s3):
    from distributed import Client

    env, uri, root = world["env"], world["uri"], world["root"]
    local = lake.open(root / "local")
    # 1. ingest (CLI, local rig folders) -- the local lake gets the same sources, in order
    nplake(env, "ingest", *world["rig"], "--lake", uri)
    assert local.ingest(world["rig"]).ok
    # 2. distributed ingest (API) of NWB files read in place from S3 by the Dask workers
    lk = lake.open(uri, storage_options=world["options"])
    with Client(world["cluster"]) as client:
        report = lk.ingest(world["remote"], client=client)
        logs = [*client.get_worker_logs().values(), client.get_scheduler_logs()]
    assert report.ok and len(report.landed) == 2, str(report)
    assert local.ingest(world["synth"]).ok
    assert rows(lk, PROVENANCE) == rows(local, PROVENANCE)
    OUTPUTS.extend(str(line) for log in logs for line in log)
    # 3. reading commands
    question = "SELECT session_id, count(*) AS n, sum(time) AS t FROM spikes GROUP BY 1 ORDER BY 1"
    answer = nplake(env, "sql", question, "--lake", uri, "-f", "csv")
    assert answer == nplake({}, "sql", question, "--lake", str(local.uri), "-f", "csv")
    sessions = nplake(env, "sessions", "--lake", uri)
    assert all(sid in sessions for sid in local.sessions()["session_id"])
    assert "spikes" in nplake(env, "tables", "--lake", uri)
    assert "quality" in nplake(env, "describe", "units", "--lake", uri)
    assert "ingest" in nplake(env, "history", "--lake", uri)
    # 4. a release, then a replaced session, time travel and diff
    assert nplake(env, "release", "create", "r1", "--lake", uri).startswith("release r1 = ")
    assert "r1" in nplake(env, "release", "list", "--lake", uri)
    s3.client().put_object(Bucket=BUCKET, Key=world["key"], Body=world["changed"].read_bytes())
    scheduler = world["cluster"].scheduler_address
    again = nplake(env, "ingest", world["remote"][0], "--lake", uri, "--scheduler", scheduler)
    assert again.startswith("1 landed, 0 unchanged, 0 failed")
    assert "(replaced;" in again
    assert local.ingest([world["changed"]]).landed[0].replaced
    assert rows(lk, PROVENANCE) == rows(local, PROVENANCE)
    described = "SELECT session_description FROM sessions ORDER BY session_id"
    old = nplake(env, "sql", described, "--lake", uri, "--at", "r1", "-f", "csv")
    assert "changed" not in old and "changed" in nplake(env, "sql", described, "--lake", uri)
    assert "replaced" in nplake(env, "diff", "r1", str(lk.version), "--lake", uri)
    # 5. export from the release, the API's time travel and polars scans
    sid = "1200000011"
    nplake(env, "export", sid, "--out", str(root / "export"), "--lake", uri, "--at", "r1")
    exported = lake.open(root / "exported")
    assert exported.ingest([root / "export"]).ok
    at_r1 = lk.at("r1")
    units = "SELECT unit_id, quality FROM units WHERE session_id = '1200000011' ORDER BY 1"
    assert exported.sql(units).rows() == at_r1.sql(units).rows()
    scanned = lk.scan("spikes").filter(pl.col("session_id") == sid).sort("unit_id", "time")
    expected = local.scan("spikes").filter(pl.col("session_id") == sid).sort("unit_id", "time")
    assert scanned.collect().equals(expected.collect())
    # 6. housekeeping: every answer stays; the release keeps its files through vacuum
    before = lk.version
    for command in (["optimize"], ["gc"], ["vacuum", "--retention-hours", "0"], ["maintenance"]):
        nplake(env, *command, "--lake", uri)
    assert "nothing to repair" in nplake(env, "repair", "--lake", uri)
    assert lk.version >= before
    assert rows(lk, PROVENANCE) == rows(local, PROVENANCE)
    assert nplake(env, "sql", described, "--lake", uri, "--at", "r1", "-f", "csv") == old
    nplake(env, "plot", "areas", "--out", str(root / "plots"), "--lake", uri)
    assert len(list((root / "plots").glob("*.png"))) == 1
    # 7. failing runs say why in one line, with no secret
    bad_sql = nplake(env, "sql", "SELECT * FROM nope", "--lake", uri, code=2)
    missing = f"s3://{BUCKET}/nowhere/missing.nwb"
    failed = nplake(env, "ingest", missing, "--lake", uri, code=1)
    assert f"FAILED    {missing}: no such object (or no permission to read it)" in failed
    nowhere = f"s3://no-such-bucket-{os.getpid()}/lake"
    no_bucket = nplake(env, "ingest", world["rig"][0], "--lake", nowhere, code=2)
    assert OUTPUTS[-1].splitlines()[-1] == (
        f"error: {nowhere}: the bucket 'no-such-bucket-{os.getpid()}' does not exist at "
        f"{s3.endpoint}: create it, or check the URI"
    )
    unreachable = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    nplake(unreachable, "sql", "SELECT 1", "--lake", uri, code=2)
    assert OUTPUTS[-1].strip() == (
        f"error: {uri}: cannot reach the S3 endpoint (http://127.0.0.1:9): check "
        "AWS_ENDPOINT_URL and the network"
    )
    assert no_bucket == ""
    assert bad_sql == ""
    # credentials never reach the lake's objects, a command's output or the Dask logs
    with Client(world["cluster"]) as client:
        logs = [*client.get_worker_logs().values(), client.get_scheduler_logs()]
    OUTPUTS.extend(str(line) for log in logs for line in log)
    for text in OUTPUTS:
        assert SECRET not in text
    client = s3.client()
    prefix = uri.split("/", 3)[3]
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    assert len(listed) > 50
    for item in listed:
        body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        assert SECRET.encode() not in body, item["Key"]
