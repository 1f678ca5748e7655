"""Remote sources read in place: NWB files on S3 (moto's server) and over HTTP equal local ones.

The objects are uploaded public-read, so moto also serves them to anonymous HTTP range
requests at `http://127.0.0.1:<port>/<bucket>/<key>`.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import lake
from ingest import discover, remote
from ingest.synth import generate_session, write_nwb
from schemas import DecodeError
from tests.lake.distributed.compare import PROVENANCE, rows
from tests.lake.test_ingest import REAL
from tests.s3 import BUCKET


@pytest.fixture
def aws(s3, monkeypatch):
    """The AWS environment pointing at moto (what a user's shell would set), fresh clients."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    remote.reset()
    yield s3
    remote.reset()


def upload(s3, prefix: str, files) -> dict[str, int]:
    """Put `files` under `prefix` (public-read); their sizes by key."""
    client = s3.client()
    sizes = {}
    for path in files:
        key = f"{prefix}/{path.name}"
        client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes(), ACL="public-read")
        sizes[key] = path.stat().st_size
    return sizes


def prefix_of(s3, name: str) -> str:
    return s3.uri(name).split("/", 3)[3]


def test_real_files_from_s3_and_http_land_as_the_local_files_do(aws, realdata, tmp_path):
    files = sorted((realdata / "nwb").glob("*.nwb"))
    prefix = prefix_of(aws, "sources")
    sizes = upload(aws, prefix, files)
    local = lake.open(tmp_path / "local")
    assert local.ingest([realdata / "nwb"]).ok
    from_s3 = lake.open(tmp_path / "s3")
    before = remote.BYTES_READ[0]
    report = from_s3.ingest([f"s3://{BUCKET}/{prefix}/"])
    assert report.ok and len(report.landed) == 3, str(report)
    # each file is smaller than one block: read once, whole, by the three opens of a decode
    assert remote.BYTES_READ[0] - before == sum(sizes.values())
    over_http = lake.open(tmp_path / "http")
    urls = [f"{aws.endpoint}/{BUCKET}/{key}" for key in sizes]
    assert over_http.ingest(urls).ok
    expected = rows(local, PROVENANCE)
    for lk in (from_s3, over_http):
        assert rows(lk, PROVENANCE) == expected
    uris = sorted(from_s3.sql("SELECT source_uri FROM sessions")["source_uri"])
    assert uris == sorted(f"s3://{BUCKET}/{key}" for key in sizes)
    counts = dict(from_s3.sql("SELECT session_id, count(*) FROM spikes GROUP BY 1").rows())
    assert counts == {sid: spikes for sid, _, spikes, *_ in REAL.values()}


def test_reingest_is_a_no_op_from_the_store_metadata_alone(aws, realdata, tmp_path):
    path = realdata / "nwb" / "sub-anm369963_ses-20170228.nwb"
    prefix = prefix_of(aws, "noop")
    upload(aws, prefix, [path])
    uri = f"s3://{BUCKET}/{prefix}/{path.name}"
    lk = lake.open(tmp_path / "lake")
    assert [o.status for o in lk.ingest([uri]).outcomes] == ["landed"]
    before, version = remote.BYTES_READ[0], lk.version
    again = lk.ingest([uri])
    assert [o.status for o in again.outcomes] == ["unchanged"]
    assert remote.BYTES_READ[0] == before  # no byte of the object was read
    assert lk.version == version
    # new bytes under the same key: a new ETag, so the session is decoded again and replaced
    changed = tmp_path / path.name
    changed.write_bytes(path.read_bytes())
    with h5py.File(changed, "a") as fh:
        del fh["session_description"]
        fh["session_description"] = "changed"
    aws.client().put_object(Bucket=BUCKET, Key=f"{prefix}/{path.name}", Body=changed.read_bytes())
    third = lk.ingest([uri])
    assert [(o.status, o.replaced) for o in third.outcomes] == [("landed", True)]
    assert lk.sql("SELECT session_description FROM sessions").item() == "changed"


def test_an_object_replaced_after_its_fingerprint_is_not_read(aws, realdata):
    path = realdata / "nwb" / "sub-anm369963_ses-20170228.nwb"
    prefix = prefix_of(aws, "pinned")
    upload(aws, prefix, [path])
    source = remote.remote_path(f"s3://{BUCKET}/{prefix}/{path.name}")
    remote.fingerprint(source)  # pins the object's ETag
    aws.client().put_object(Bucket=BUCKET, Key=f"{prefix}/{path.name}", Body=b"other bytes")
    with pytest.raises(DecodeError) as caught:
        remote.open_file(source)
    assert str(caught.value) == (
        f"{source.uri}: the object changed while it was being ingested; ingest it again"
    )


def test_only_the_datasets_the_decoder_needs_are_read(aws, tmp_path):
    path = write_nwb(generate_session("1000000077", seed=7, size="tiny"), tmp_path / "s.nwb")
    raw = np.random.default_rng(0).integers(-500, 500, size=(1_000_000, 32), dtype=np.int16)
    with h5py.File(path, "a") as fh:  # a raw electrical series: 64 MB the lake does not copy
        group = fh.require_group("acquisition").create_group("raw")
        group.attrs["neurodata_type"] = "ElectricalSeries"
        group.attrs["namespace"] = "core"
        group.create_dataset("data", data=raw)
        group.create_dataset("starting_time", data=0.0).attrs["rate"] = 30000.0
    size = path.stat().st_size
    prefix = prefix_of(aws, "skip")
    upload(aws, prefix, [path])
    lk = lake.open(tmp_path / "lake")
    before = remote.BYTES_READ[0]
    report = lk.ingest([f"s3://{BUCKET}/{prefix}/s.nwb"])
    assert report.ok, str(report)
    read = remote.BYTES_READ[0] - before
    assert read < size - raw.nbytes + 4 * remote.BLOCK_BYTES, (read, size)
    assert lk.sql("SELECT count(*) FROM inventory WHERE path = '/acquisition/raw/data'").item() == 1


def test_remote_paths_that_cannot_be_read_fail_with_one_line(aws, tmp_path, realdata):
    rig = prefix_of(aws, "rig")
    aws.client().put_object(Bucket=BUCKET, Key=f"{rig}/session/x.sync", Body=b"sync")
    empty = prefix_of(aws, "empty")
    lk = lake.open(tmp_path / "lake")
    report = lk.ingest(
        [
            f"s3://{BUCKET}/{rig}/session/",
            f"s3://{BUCKET}/{empty}/",
            f"s3://{BUCKET}/{empty}/missing.nwb",
            f"{aws.endpoint}/{BUCKET}/{empty}/missing.nwb",
            "https://user:password@example.org/a.nwb",
            "https://example.org/a.nwb?X-Amz-Signature=abc",
        ]
    )
    refused = (
        "a URL with credentials, a query string or a fragment (a presigned URL?) is not "
        "accepted: it would be recorded in the lake; give the plain URL of a public object, "
        "or an s3:// URI with AWS credentials in the environment"
    )
    assert [o.problem for o in report.outcomes] == [
        f"s3://{BUCKET}/{rig}/session/: looks like a raw rig session folder: those are read "
        "from local files only; copy it first (aws s3 sync URI LOCAL_FOLDER) and ingest the copy",
        f"s3://{BUCKET}/{empty}/: no such object or prefix (or no permission to list it)",
        f"s3://{BUCKET}/{empty}/missing.nwb: no such object (or no permission to read it)",
        f"{aws.endpoint}/{BUCKET}/{empty}/missing.nwb: no such object (or no permission to "
        "read it)",
        f"https://example.org/a.nwb: {refused}",
        f"https://example.org/a.nwb: {refused}",
    ]
    assert "password" not in str(report) and "abc" not in str(report)
    assert not lk.store.exists()


def test_discovery_lists_the_nwb_objects_under_a_prefix(aws, realdata):
    files = sorted((realdata / "nwb").glob("*.nwb"))
    prefix = prefix_of(aws, "listing")
    upload(aws, prefix, files)
    aws.client().put_object(Bucket=BUCKET, Key=f"{prefix}/notes.txt", Body=b"x")
    aws.client().put_object(Bucket=BUCKET, Key=f"{prefix}/deeper/.hidden.nwb", Body=b"x")
    upload(aws, f"{prefix}/deeper", files[:1])
    sources, problems = discover([f"s3://{BUCKET}/{prefix}"])
    assert problems == []
    assert [str(s.path) for s in sources] == sorted(
        [f"s3://{BUCKET}/{prefix}/{f.name}" for f in files]
        + [f"s3://{BUCKET}/{prefix}/deeper/{files[0].name}"]
    )
    assert {s.decoder.name for s in sources} == {"nwb"}


def test_without_credentials_an_s3_source_says_what_to_set(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    remote.reset()
    try:
        report = lake.open(tmp_path / "lake").ingest(["s3://some-bucket/sessions/"])
    finally:
        remote.reset()
    assert [o.problem for o in report.outcomes] == [
        "s3://some-bucket/sessions/: no AWS credentials found: set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) where nplake runs, and AWS_ENDPOINT_URL for a "
        "store other than AWS"
    ]
