"""DuckDB's filesystem for an S3 lake (lake/sql/s3.py), with a fake store counting requests."""

from __future__ import annotations

import datetime as dt
import threading

import pyarrow as pa
import pytest

from lake.sql.s3 import WHOLE_BYTES, snapshot_filesystem

BIG = bytes(range(256)) * ((WHOLE_BYTES // 256) + 1)  # just over WHOLE_BYTES
SMALL = b"0123456789" * 100


class FakeS3:
    """Objects in memory; every request is counted; metadata requests are refused."""

    def __init__(self) -> None:
        self.objects = {"bucket/lake/units/a.parquet": SMALL, "bucket/lake/spikes/b.parquet": BIG}
        self.gets: list[tuple[str, int | None, int | None]] = []

    def cat_file(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        self.gets.append((key, start, end))
        return self.objects[key][start:end]

    def info(self, path, **kwargs):
        pytest.fail(f"a metadata request for {path}")

    modified = exists = glob = info


MANIFEST = pa.table(
    {
        "table": ["units", "spikes"],
        "path": ["a.parquet", "b.parquet"],
        "size": [len(SMALL), len(BIG)],
        "modification_time": [1_700_000_000_000, 1_700_000_001_000],
    }
)


@pytest.fixture
def fs():
    store = FakeS3()
    return snapshot_filesystem(store, "s3://bucket/lake", MANIFEST), store


def test_sizes_times_and_globs_come_from_the_snapshot(fs):
    files, store = fs
    uri = "s3://bucket/lake/units/a.parquet"
    assert files.info(uri) == {
        "name": "bucket/lake/units/a.parquet",
        "size": len(SMALL),
        "type": "file",
        "mtime": 1_700_000_000.0,
    }
    assert files.size(uri) == len(SMALL)
    assert files.modified(uri) == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc)
    assert files.glob(uri) == ["bucket/lake/units/a.parquet"]
    assert files.exists(uri)
    assert store.gets == []


def test_a_small_file_is_one_request_however_often_it_is_opened(fs):
    files, store = fs
    for _ in range(3):
        with files.open("s3://bucket/lake/units/a.parquet") as fh:
            fh.seek(-10, 2)
            assert fh.read(4) == SMALL[-10:-6]
            fh.seek(0)
            assert fh.read() == SMALL
    assert store.gets == [("bucket/lake/units/a.parquet", None, None)]


def test_a_large_file_is_read_as_the_ranges_asked_for(fs):
    files, store = fs
    with files.open("s3://bucket/lake/spikes/b.parquet") as fh:
        fh.seek(len(BIG) - 8)
        assert fh.read(8) == BIG[-8:]
        fh.seek(1000)
        assert fh.read(24) == BIG[1000:1024]
    key = "bucket/lake/spikes/b.parquet"
    assert store.gets == [(key, len(BIG) - 8, len(BIG)), (key, 1000, 1024)]


def test_threads_sharing_one_handle_each_read_at_their_own_position(fs):
    """DuckDB's threads share a handle and read with seek-then-read: positions are per thread."""
    files, _ = fs
    fh = files.open("s3://bucket/lake/spikes/b.parquet")
    seeked, done = threading.Event(), threading.Event()
    got = {}

    def other() -> None:
        fh.seek(5000)
        seeked.set()
        done.wait()
        got["other"] = fh.read(10)

    thread = threading.Thread(target=other)
    thread.start()
    fh.seek(100)
    seeked.wait()  # the other thread has moved since this one sought
    got["this"] = fh.read(10)
    done.set()
    thread.join()
    assert got == {"this": BIG[100:110], "other": BIG[5000:5010]}


def test_with_pyarrow_a_large_file_is_one_handle_read_at_positions():
    """Given pyarrow's S3 filesystem, large files are read through one handle per file."""
    store = FakeS3()
    opened: list[str] = []

    class Handle:
        def __init__(self, key: str) -> None:
            self.key = key

        def read_at(self, n: int, offset: int) -> bytes:
            store.gets.append((self.key, offset, offset + n))
            return store.objects[self.key][offset : offset + n]

    class Arrow:
        def open_input_file(self, key: str) -> Handle:
            opened.append(key)
            return Handle(key)

    files = snapshot_filesystem(store, "s3://bucket/lake", MANIFEST, Arrow())
    key = "bucket/lake/spikes/b.parquet"
    for _ in range(2):
        with files.open(f"s3://{key}") as fh:
            fh.seek(10)
            assert fh.read(6) == BIG[10:16]
    assert opened == [key]
    assert store.gets == [(key, 10, 16), (key, 10, 16)]
