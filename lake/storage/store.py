"""Store: where a lake lives (a folder or an S3 prefix) and the one way in to its files.

Layout under the root:

```
_nplake/log/        the lake log: <version>.json entries (commit points), checkpoints
_nplake/leases/     running writers' leases (uncommitted files are theirs)
_nplake/releases/   named versions
<table>/            one Delta table per entity: _delta_log/ and Parquet files
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa

from lake.storage.errors import describe_os_error, is_storage_error
from lake.storage.files import Files, LocalFiles, S3Files
from lake.storage.log import LakeLog
from lake.storage.manifest import Manifest
from lake.storage.s3 import S3Settings
from lake.storage.snapshot import Snapshot, take_snapshot
from schemas import TABLES, LakeError, UnknownTable


@dataclass(frozen=True)
class Store:
    """A lake's location: its root URI and storage options (secrets never shown)."""

    root: str
    storage_options: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def at(uri: str | os.PathLike, storage_options: Mapping[str, str] | None = None) -> Store:
        """A store for `uri`: a local folder (made absolute) or an `s3://` URI."""
        text = str(uri)
        if "://" in text and not text.startswith("file://"):
            scheme = urlparse(text).scheme
            if scheme not in {"s3", "s3a"}:
                msg = f"unsupported lake URI scheme {scheme!r} (use a folder or s3://bucket/path)"
                raise LakeError(msg)
            bucket = urlparse(text).netloc
            if len(bucket) < 3:
                msg = f"{text}: an S3 lake needs a bucket name (s3://bucket/path)"
                raise LakeError(msg)
            return Store("s3://" + text.split("://", 1)[1].rstrip("/"), dict(storage_options or {}))
        local = Path(text.removeprefix("file://")).expanduser().resolve()
        return Store(str(local), dict(storage_options or {}) or None)

    def __reduce__(self):
        """Pickle as (root, options): caches hold live clients that stay behind."""
        return (Store, (self.root, dict(self.storage_options or {}) or None))

    @property
    def is_local(self) -> bool:
        """Whether the lake is a local folder."""
        return "://" not in self.root

    @cached_property
    def s3(self) -> S3Settings | None:
        """Resolved S3 settings (None for a local lake)."""
        return None if self.is_local else S3Settings.resolve(self.storage_options)

    @cached_property
    def files(self) -> Files:
        """Byte-level access to the lake's files."""
        if self.is_local:
            return LocalFiles(self.root)
        assert self.s3 is not None
        return S3Files(self.root, self.s3)

    @cached_property
    def log(self) -> LakeLog:
        """The lake log."""
        return LakeLog(self.files)

    def table_uri(self, name: str) -> str:
        """URI of table `name`."""
        if name not in TABLES:
            msg = f"unknown table {name!r}; tables: {', '.join(TABLES)}"
            raise UnknownTable(msg)
        return f"{self.root}/{name}"

    def options(self) -> dict[str, str] | None:
        """Storage options for delta-rs and polars (None for local folders)."""
        return None if self.s3 is None else self.s3.delta_options()

    def exists(self) -> bool:
        """Whether this location holds an nplake lake."""
        return self.log.exists()

    def open_input(self, uri: str) -> pa.NativeFile:
        """Open one of the lake's files (a URI from `Snapshot.files`) for random-access reads."""
        return self.files.open_input(uri)

    def finish_commit(self, manifest: Manifest) -> str | None:
        """After a commit: write its checkpoint and publish the Delta tables.

        The commit stands either way; a failure here is reported (one line) and repaired by
        the next commit or `nplake maintenance`.
        """
        from lake.storage.publish import publish  # deltalake loads only when writing

        try:
            self.log.write_checkpoint(manifest)
            publish(self.log, manifest, self.table_uri, self.options())
        except Exception as exc:
            doing = f"publishing lake version {manifest.version} to the Delta tables"
            text = describe_os_error(exc, doing) if is_storage_error(exc) else f"{exc}"
            return (
                f"version {manifest.version} is committed, but {text}; plain Delta readers "
                "see the previous version until `nplake maintenance` (or the next ingest) "
                "publishes it"
            )
        return None

    def publish(self) -> int:
        """Publish every committed version the Delta tables lack; the Delta commits made."""
        from lake.storage.publish import publish

        manifest = self.log.manifest()
        if self.log.checkpoint(manifest.version) is None:  # its writer died before writing it
            self.log.write_checkpoint(manifest)
        return publish(self.log, manifest, self.table_uri, self.options())

    def snapshot(self, version: int | None = None) -> Snapshot:
        """The lake at `version` (default: the newest)."""
        return take_snapshot(self.log, version)
