"""DuckDB's way into an S3 lake: s3fs registered on the connection, told what the snapshot knows.

DuckDB's httpfs extension cannot be installed here (`INSTALL httpfs` needs the network; the
PyPI wheels of httpfs are built for DuckDB 1.4.4 and 1.5.5, and DuckDB 2.0 refuses to load
them), so DuckDB reads an S3 lake through an fsspec filesystem registered on its connection.
Given plain s3fs, DuckDB makes about four metadata requests per file and query before it reads
a byte (a glob, two `info`, `modified`: 200 requests for a count over 20 spikes files), and
s3fs reads ahead 50 MB.

The snapshot already knows every file's size and modification time (the lake log records
them; lake files never change), so `SnapshotFileSystem` answers DuckDB's metadata questions from
it and sends only the reads: a file of at most `WHOLE_BYTES` in one request, kept for the
connection (DuckDB opens a small file again for every view naming it), a larger one as the
exact ranges DuckDB asks for (Parquet readers ask for whole column chunks) through pyarrow's
S3 file. DuckDB's threads share one handle per file and read with a seek, then a read, so each
thread keeps its own position. Paths the snapshot does not name go to s3fs (the sandbox's
`allowed_paths` refuses them anyway). docs/benchmarks.md, "The lake and its sources on S3",
measures this against plain s3fs, tuned s3fs and pyarrow's filesystem through fsspec.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections.abc import Mapping

from fsspec import AbstractFileSystem

#: Files up to this size are read in one request (footer, row groups and all) and kept.
WHOLE_BYTES = 8 << 20
#: The most bytes of small files one connection keeps.
CACHE_BYTES = 256 << 20


class SnapshotFileSystem(AbstractFileSystem):
    """s3fs for DuckDB, with sizes and times from the snapshot (`known`: key -> (bytes, ms))."""

    protocol = ("s3", "s3a")
    cachable = False

    def __init__(self, s3, known: Mapping[str, tuple[int, int]], arrow=None) -> None:
        super().__init__()
        self._s3 = s3
        self._arrow = arrow
        self._handles: dict = {}
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
            return _LakeFile(key, size, self._ranges(key))
        with self._lock:
            data = self._whole.get(key)
        if data is None:  # one request for all of it; DuckDB opens a file once per view
            data = self._s3.cat_file(key)
            with self._lock:
                if self._held + len(data) <= CACHE_BYTES:
                    self._whole[key] = data
                    self._held += len(data)
        return _LakeFile(key, size, lambda start, end: data[start:end])

    def _ranges(self, key: str):
        """Ranged reads of a large file: pyarrow's S3 file when given, else s3fs's GETs.

        pyarrow reads in C++ without the GIL; one handle per file and connection (opening it
        is one HEAD request), whose `read_at` any thread may call.
        """
        if self._arrow is None:
            return lambda start, end: self._s3.cat_file(key, start=start, end=end)
        with self._lock:
            handle = self._handles.get(key)
            if handle is None:
                handle = self._handles[key] = self._arrow.open_input_file(key)
        return lambda start, end: handle.read_at(end - start, start)


class _LakeFile(io.RawIOBase):
    """A read-only lake file whose position is each thread's own.

    DuckDB's threads share one handle per file and read with a `seek` then a `read`, two calls
    to Python: with one shared position, another thread's `seek` between them made a read
    return the wrong bytes (seen with pyarrow's S3 file behind fsspec: "Invalid data").
    """

    def __init__(self, key: str, size: int, fetch) -> None:
        super().__init__()
        self.path = key
        self.size = size
        self._fetch = fetch
        self._where = threading.local()

    def readable(self) -> bool:
        """Always."""
        return True

    def seekable(self) -> bool:
        """Always."""
        return True

    def tell(self) -> int:
        """The calling thread's position."""
        return getattr(self._where, "pos", 0)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the calling thread's position."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: self.size}[whence]
        self._where.pos = max(0, base + offset)
        return self._where.pos

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes from this thread's position (all the rest when negative)."""
        start = self.tell()
        end = self.size if size is None or size < 0 else min(self.size, start + size)
        if start >= end:
            return b""
        data = self._fetch(start, end)
        self._where.pos = start + len(data)
        return data

    def readinto(self, buffer) -> int:
        """Fill `buffer` from this thread's position."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def snapshot_filesystem(s3, root: str, manifest_files, arrow=None) -> SnapshotFileSystem:
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
    return SnapshotFileSystem(s3, known, arrow)
