"""The lake's bytes: one small interface over a local folder or an S3 prefix.

Everything nplake writes goes through `Files`: Parquet data files (streamed), the lake log's
entries (`put_if_absent`, the one primitive the commit protocol needs), leases, releases. Paths
are relative to the lake root and use '/'. A local put-if-absent writes a hidden temporary file
and links it into place (the link fails if the name exists), so readers never see half a file;
on S3 it is a conditional PUT (`If-None-Match: *`), which AWS and moto honour.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.fs as pafs

from lake.storage.s3 import S3Settings


@dataclass(frozen=True)
class FileInfo:
    """One listed file: its path relative to the lake root, size in bytes, mtime (ms)."""

    path: str
    size: int
    mtime_ms: int


class Files(Protocol):
    """Byte-level access to one lake root."""

    root: str

    def uri(self, rel: str) -> str:
        """The absolute path or URI of `rel`."""
        ...

    def read_bytes(self, rel: str) -> bytes | None:
        """The content of `rel`, or None when it does not exist."""
        ...

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """Create `rel` with `data` atomically; False (and nothing written) if it exists."""
        ...

    def put(self, rel: str, data: bytes) -> None:
        """Create or replace `rel` with `data` atomically (readers see old or new bytes)."""
        ...

    def exists(self, rel: str) -> bool:
        """Whether `rel` exists."""
        ...

    def delete(self, rels: list[str]) -> None:
        """Delete files (missing ones are fine)."""
        ...

    def list(self, prefix: str) -> list[FileInfo]:
        """Every file under the folder `prefix` (recursively)."""
        ...

    def open_input(self, rel_or_uri: str) -> pa.NativeFile:
        """A random-access reader of a file."""
        ...

    def open_output(self, rel: str) -> pa.NativeFile:
        """A writer of a new file (parent folders are created)."""
        ...

    def size(self, rel: str) -> int:
        """Size of `rel` in bytes."""
        ...


class LocalFiles:
    """A lake in a local folder."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._fs = pafs.LocalFileSystem()

    def uri(self, rel: str) -> str:
        """The absolute path of `rel`."""
        return f"{self.root}/{rel}" if rel else self.root

    def read_bytes(self, rel: str) -> bytes | None:
        """The content of `rel`, or None when it does not exist."""
        try:
            with open(self.uri(rel), "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """Write a hidden temporary file, then hard-link it to `rel` (fails if `rel` exists)."""
        target = Path(self.uri(rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            _write_synced(tmp, data)
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, rel: str, data: bytes) -> None:
        """Write a hidden temporary file and rename it over `rel`."""
        target = Path(self.uri(rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            _write_synced(tmp, data)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, rel: str) -> bool:
        """Whether `rel` exists."""
        return os.path.exists(self.uri(rel))

    def delete(self, rels: list[str]) -> None:
        """Delete files, then the partition folders they leave empty."""
        folders = set()
        for rel in rels:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.uri(rel))
            folders.add(os.path.dirname(self.uri(rel)))
        for folder in sorted(folders, reverse=True):
            if os.path.basename(folder).startswith("session_id="):
                with contextlib.suppress(OSError):  # not empty, or gone
                    os.rmdir(folder)

    def list(self, prefix: str) -> list[FileInfo]:
        """Every file under `prefix`, relative to the root."""
        base = self.uri(prefix)
        out = []
        for folder, _, names in os.walk(base):
            for name in names:
                full = os.path.join(folder, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                out.append(FileInfo(rel, st.st_size, int(st.st_mtime * 1000)))
        return out

    def open_input(self, rel_or_uri: str) -> pa.NativeFile:
        """A random-access reader of a file."""
        path = rel_or_uri if rel_or_uri.startswith("/") else self.uri(rel_or_uri)
        return self._fs.open_input_file(path)

    def open_output(self, rel: str) -> pa.NativeFile:
        """A writer of a new file (parent folders are created)."""
        path = self.uri(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return self._fs.open_output_stream(path)

    def size(self, rel: str) -> int:
        """Size of `rel` in bytes."""
        return os.path.getsize(self.uri(rel))

    def remove_tree(self, rel: str) -> None:
        """Remove a folder and everything in it (local only; used for scratch folders)."""
        shutil.rmtree(self.uri(rel), ignore_errors=True)


class S3Files:
    """A lake under an `s3://bucket/prefix` URI (s3fs for metadata, pyarrow for data files)."""

    def __init__(self, root: str, settings: S3Settings) -> None:
        self.root = root
        self._settings = settings
        self._key_root = root.split("://", 1)[1]
        self._s3fs = None
        self._arrow = None

    @property
    def fsspec(self):
        """The s3fs filesystem (created on first use)."""
        if self._s3fs is None:
            self._s3fs = self._settings.s3fs()
        return self._s3fs

    @property
    def arrow(self) -> pafs.FileSystem:
        """The pyarrow S3 filesystem used for Parquet data files."""
        if self._arrow is None:
            self._arrow = self._settings.arrow_fs()
        return self._arrow

    def uri(self, rel: str) -> str:
        """The s3:// URI of `rel`."""
        return f"{self.root}/{rel}" if rel else self.root

    def _key(self, rel: str) -> str:
        return f"{self._key_root}/{rel}"

    def _key_of(self, rel_or_uri: str) -> str:
        if "://" in rel_or_uri:
            return rel_or_uri.split("://", 1)[1]
        return self._key(rel_or_uri)

    def read_bytes(self, rel: str) -> bytes | None:
        """The content of `rel`, or None when it does not exist."""
        try:
            return self.fsspec.cat_file(self._key(rel))
        except FileNotFoundError:
            return None

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """A conditional PUT (`If-None-Match: *`)."""
        try:
            self.fsspec.pipe_file(self._key(rel), data, mode="create")
        except FileExistsError:
            return False
        return True

    def put(self, rel: str, data: bytes) -> None:
        """A plain PUT (atomic on S3: readers see the old or the new object)."""
        self.fsspec.pipe_file(self._key(rel), data)

    def exists(self, rel: str) -> bool:
        """Whether `rel` exists (a HEAD request)."""
        info = self.arrow.get_file_info(self._key(rel))
        return info.type == pafs.FileType.File

    def delete(self, rels: list[str]) -> None:
        """Delete objects in batches."""
        keys = [self._key(r) for r in rels]
        for start in range(0, len(keys), 1000):
            with contextlib.suppress(FileNotFoundError):
                self.fsspec.rm(keys[start : start + 1000])

    def list(self, prefix: str) -> list[FileInfo]:
        """Every object under `prefix`."""
        selector = pafs.FileSelector(self._key(prefix), recursive=True, allow_not_found=True)
        out = []
        for info in self.arrow.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(self._key_root) + 1 :]
            mtime = int(info.mtime.timestamp() * 1000) if info.mtime is not None else 0
            out.append(FileInfo(rel, info.size or 0, mtime))
        return out

    def open_input(self, rel_or_uri: str) -> pa.NativeFile:
        """A random-access reader of an object."""
        return self.arrow.open_input_file(self._key_of(rel_or_uri))

    def open_output(self, rel: str) -> pa.NativeFile:
        """A writer of a new object."""
        return self.arrow.open_output_stream(self._key(rel))

    def size(self, rel: str) -> int:
        """Size of `rel` in bytes."""
        return self.arrow.get_file_info(self._key(rel)).size


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
