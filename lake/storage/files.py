"""The lake's bytes: one small interface over a local folder or an S3 prefix.

Everything nplake writes goes through `Files`: Parquet data files (streamed), the lake log's
entries (`put_if_absent`, the one primitive the commit protocol needs), leases, releases. Paths
are relative to the lake root and use '/'. A local put-if-absent writes a hidden temporary file
and links it into place (the link fails if the name exists), so readers never see half a file;
on S3 it is a conditional PUT (`If-None-Match: *`), which AWS and moto honour.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.fs as pafs

from lake.storage.s3 import S3Settings, scrub
from schemas import LakeError


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


def _s3_problem(exc: BaseException, root: str, settings: S3Settings) -> str | None:
    """One line for what a user can fix on S3 (endpoint, bucket, credentials), else None."""
    name, text = type(exc).__name__, " ".join(str(exc).split())
    bucket = root.split("://", 1)[1].split("/", 1)[0]
    where = settings.endpoint or "AWS"
    if name in {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError"} or (
        "connect" in text.lower() and ("endpoint" in text.lower() or "curl" in text.lower())
    ):
        return f"cannot reach the S3 endpoint ({where}): check AWS_ENDPOINT_URL and the network"
    if name == "NoCredentialsError":
        return (
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
            "AWS_PROFILE), or pass them as storage options"
        )
    if "NoSuchBucket" in text or "bucket does not exist" in text or "NO_SUCH_BUCKET" in text:
        return f"the bucket {bucket!r} does not exist at {where}: create it, or check the URI"
    if isinstance(exc, PermissionError) or "AccessDenied" in text or "ACCESS_DENIED" in text:
        return f"access denied ({scrub(text, settings)[:200]}): check the AWS credentials"
    return None


def _one_line(method: Callable) -> Callable:
    """Raise what a user can fix on S3 as a LakeError naming the lake (secrets scrubbed)."""

    @functools.wraps(method)
    def wrapper(self: S3Files, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            problem = _s3_problem(exc, self.root, self._settings)
            if problem is None:
                raise
            msg = f"{self.root}: {problem}"
            raise LakeError(msg) from None

    return wrapper


class S3Files:
    """A lake under an `s3://bucket/prefix` URI (s3fs for metadata, pyarrow for data files).

    An unreachable endpoint, a missing bucket, missing or refused credentials are one-line
    LakeErrors naming the lake (never a secret); anything else propagates as it is.
    """

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

    @_one_line
    def read_bytes(self, rel: str) -> bytes | None:
        """The content of `rel`, or None when it does not exist."""
        try:
            return self.fsspec.cat_file(self._key(rel))
        except FileNotFoundError:
            return None

    @_one_line
    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """A conditional PUT (`If-None-Match: *`)."""
        try:
            self.fsspec.pipe_file(self._key(rel), data, mode="create")
        except FileExistsError:
            return False
        return True

    @_one_line
    def put(self, rel: str, data: bytes) -> None:
        """A plain PUT (atomic on S3: readers see the old or the new object)."""
        self.fsspec.pipe_file(self._key(rel), data)

    @_one_line
    def exists(self, rel: str) -> bool:
        """Whether `rel` exists (a HEAD request)."""
        info = self.arrow.get_file_info(self._key(rel))
        return info.type == pafs.FileType.File

    @_one_line
    def delete(self, rels: list[str]) -> None:
        """Delete objects in batches."""
        keys = [self._key(r) for r in rels]
        for start in range(0, len(keys), 1000):
            with contextlib.suppress(FileNotFoundError):
                self.fsspec.rm(keys[start : start + 1000])

    @_one_line
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

    @_one_line
    def open_input(self, rel_or_uri: str) -> pa.NativeFile:
        """A random-access reader of an object."""
        return self.arrow.open_input_file(self._key_of(rel_or_uri))

    @_one_line
    def open_output(self, rel: str) -> pa.NativeFile:
        """A writer of a new object."""
        return self.arrow.open_output_stream(self._key(rel))

    @_one_line
    def size(self, rel: str) -> int:
        """Size of `rel` in bytes."""
        return self.arrow.get_file_info(self._key(rel)).size


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
