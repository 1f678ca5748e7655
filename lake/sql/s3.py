"""DuckDB's way into an S3 lake: s3fs registered on the connection, told what the snapshot knows.

DuckDB's httpfs extension cannot be installed here (`INSTALL httpfs` needs the network; the
PyPI wheels of httpfs are built for DuckDB 1.4.4 and 1.5.5, and DuckDB 2.0 refuses to load
them), so DuckDB reads an S3 lake through an fsspec filesystem registered on its connection.
Given plain s3fs, DuckDB makes about four metadata requests per file and query before it reads
a byte (a glob, two `info`, `modified`: 200 requests for a count over 20 spikes files), and
s3fs reads ahead 50 MB.

The snapshot already knows every file's size and modification time (the lake log records
them; lake files never change), so `SnapshotFileSystem` answers DuckDB's metadata questions from
it and sends only the reads: a file of at most `WHOLE_BYTES` in one request, a larger one as
the exact ranges DuckDB asks for (Parquet readers ask for whole column chunks). Paths the
snapshot does not name go to s3fs (the sandbox's `allowed_paths` refuses them anyway).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping

from fsspec import AbstractFileSystem
from fsspec.spec import AbstractBufferedFile

#: Files up to this size are read in one request (footer, row groups and all) and kept.
WHOLE_BYTES = 8 << 20
#: The most bytes of small files one connection keeps.
CACHE_BYTES = 256 << 20


class SnapshotFileSystem(AbstractFileSystem):
    """s3fs for DuckDB, with sizes and times from the snapshot (`known`: key -> (bytes, ms))."""

    protocol = ("s3", "s3a")
    cachable = False

    def __init__(self, s3, known: Mapping[str, tuple[int, int]]) -> None:
        super().__init__()
        self._s3 = s3
        self._known = dict(known)
        self._lock = threading.Lock()
        self._whole: dict[str, bytes] = {}  # small files read so far (DuckDB reopens them)
        self._held = 0

    def _stat(self, path: str) -> tuple[str, tuple[int, int] | None]:
        key = self._strip_protocol(path)
        return key, self._known.get(key)

    def info(self, path: str, **kwargs) -> dict:
        """Size and time of a snapshot file without a request (s3fs's answer otherwise)."""
        key, hit = self._stat(path)
        if hit is None:
            return self._s3.info(path, **kwargs)
        return {"name": key, "size": hit[0], "type": "file", "mtime": hit[1] / 1000}

    def size(self, path: str) -> int:
        """Size in bytes."""
        return self.info(path)["size"]

    def modified(self, path: str) -> dt.datetime:
        """Last modification time (UTC)."""
        hit = self._stat(path)[1]
        if hit is None:
            return self._s3.modified(path)
        return dt.datetime.fromtimestamp(hit[1] / 1000, tz=dt.timezone.utc)

    def exists(self, path: str, **kwargs) -> bool:
        """Whether the file exists (snapshot files do)."""
        return self._stat(path)[1] is not None or self._s3.exists(path, **kwargs)

    def glob(self, path: str, **kwargs):
        """A snapshot file globs to itself; anything else is s3fs's."""
        key, hit = self._stat(path)
        return [key] if hit is not None else self._s3.glob(path, **kwargs)

    def ls(self, path: str, detail: bool = True, **kwargs):
        """s3fs's listing."""
        return self._s3.ls(path, detail=detail, **kwargs)

    def _open(self, path: str, mode: str = "rb", block_size=None, **kwargs):
        key, hit = self._stat(path)
        if hit is None or mode != "rb":
            return self._s3.open(key, mode)
        size = hit[0]
        if size > WHOLE_BYTES:
            return _LakeFile(self, key, size, cache_type="none", block_size=1 << 20)
        with self._lock:
            data = self._whole.get(key)
        if data is None:  # one request for all of it; DuckDB opens a file once per view
            data = self._s3.cat_file(key)
            with self._lock:
                if self._held + len(data) <= CACHE_BYTES:
                    self._whole[key] = data
                    self._held += len(data)
        return _LakeFile(self, key, size, cache_type="all", cache_options={"data": data})


class _LakeFile(AbstractBufferedFile):
    """A lake file read by ranged GETs (s3fs's own file asks for the object's ETag first)."""

    def __init__(self, fs: SnapshotFileSystem, key: str, size: int, **kwargs) -> None:
        super().__init__(fs, key, "rb", size=size, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs._s3.cat_file(self.path, start=start, end=end)


def snapshot_filesystem(s3, root: str, manifest_files) -> SnapshotFileSystem:
    """The filesystem for a snapshot's files: `manifest_files` is its manifest's file table."""
    base = root.split("://", 1)[1]
    tables = manifest_files.column("table").to_pylist()
    paths = manifest_files.column("path").to_pylist()
    sizes = manifest_files.column("size").to_pylist()
    times = manifest_files.column("modification_time").to_pylist()
    known = {
        f"{base}/{t}/{p}": (int(s), int(m or 0))
        for t, p, s, m in zip(tables, paths, sizes, times, strict=True)
    }
    return SnapshotFileSystem(s3, known)
