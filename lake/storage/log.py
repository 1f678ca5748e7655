"""The lake log: one JSON entry per lake version, written put-if-absent; Parquet checkpoints.

`_nplake/log/<version>.json` is the commit point of every change to the lake: the writer that
creates version N+1 first wins, any other must rebase on it. `<version>.checkpoint.parquet`
holds the whole manifest at a version, so a reader opens the lake from a fixed number of
objects: the `_last_checkpoint` hint, one checkpoint, and the few entries after it.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.storage.files import Files
from lake.storage.manifest import FILE_SCHEMA, LogEntry, Manifest
from schemas import LakeError

LOG = "_nplake/log"
HINT = f"{LOG}/_last_checkpoint"
#: Checkpoints kept forever at versions that are multiples of this (the others may be pruned),
#: so reading any past version replays at most this many entries.
CHECKPOINT_STRIDE = 100
#: Manifests a LakeLog keeps in memory (the newest versions it read or wrote).
KEPT_MANIFESTS = 4


def entry_rel(version: int) -> str:
    """Where the entry of `version` lives."""
    return f"{LOG}/{version:020d}.json"


def checkpoint_rel(version: int) -> str:
    """Where the checkpoint of `version` lives."""
    return f"{LOG}/{version:020d}.checkpoint.parquet"


class LakeLog:
    """Read and append the lake log of one lake."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self._kept: dict[int, Manifest] = {}

    def exists(self) -> bool:
        """Whether the lake has a log (its version 0 exists)."""
        return self.files.exists(entry_rel(0))

    def latest(self) -> int | None:
        """The newest version, or None when there is no lake."""
        start = self._hint()
        if start < 0 and not self.files.exists(entry_rel(0)):
            return None
        version = max(start, 0)
        while self.files.exists(entry_rel(version + 1)):
            version += 1
        return version

    def entry(self, version: int) -> LogEntry:
        """The entry of `version`."""
        data = self.files.read_bytes(entry_rel(version))
        if data is None:
            msg = f"{self.files.root}: the lake has no version {version}"
            raise LakeError(msg)
        return LogEntry.from_bytes(data)

    def append(self, entry: LogEntry) -> bool:
        """Write `entry` as its version unless that version exists (then False: rebase)."""
        return self.files.put_if_absent(entry_rel(entry.version), entry.to_bytes())

    def manifest(self, version: int | None = None) -> Manifest:
        """The manifest at `version` (default: the newest): a checkpoint plus later entries."""
        latest = self.latest()
        if latest is None:
            msg = f"no nplake lake at {self.files.root}"
            raise LakeError(msg)
        target = latest if version is None else version
        if not 0 <= target <= latest:
            msg = f"lake {self.files.root} has versions 0 to {latest}; there is no version {target}"
            raise LakeError(msg)
        kept = self._kept.get(target)
        if kept is not None:
            return kept
        manifest = self._nearest_checkpoint(target)
        for v in range(manifest.version + 1, target + 1):
            manifest = manifest.apply(self.entry(v))
        self.keep(manifest)
        return manifest

    def keep(self, manifest: Manifest) -> None:
        """Remember the manifest of a version (a written version never changes).

        The commits of one ingest and the snapshots of one Lake then read each checkpoint once.
        """
        self._kept[manifest.version] = manifest
        while len(self._kept) > KEPT_MANIFESTS:
            del self._kept[min(self._kept)]

    def write_checkpoint(self, manifest: Manifest) -> None:
        """Store `manifest` as the checkpoint of its version and point the hint at it."""
        metadata = {
            "nplake.version": str(manifest.version),
            "nplake.timestamp_ms": str(manifest.timestamp_ms),
            "nplake.schemas": json.dumps(manifest.schemas),
            "nplake.current": json.dumps(manifest.current),
            "nplake.touched": json.dumps(manifest.touched),
            "nplake.vacuumed_before_ms": str(manifest.vacuumed_before_ms),
        }
        table = pa.concat_tables([manifest.files, manifest.tombstones])
        table = table.replace_schema_metadata(metadata)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        self.files.put(checkpoint_rel(manifest.version), sink.getvalue())
        self.keep(manifest)
        if manifest.version > self._hint():
            hint = {"version": manifest.version}
            self.files.put(HINT, json.dumps(hint).encode())

    def checkpoint(self, version: int) -> Manifest | None:
        """The checkpoint of `version`, if one was written (and not pruned)."""
        data = self.files.read_bytes(checkpoint_rel(version))
        if data is None:
            return None
        table = pq.ParquetFile(pa.BufferReader(data)).read()
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        table = table.replace_schema_metadata(None).cast(FILE_SCHEMA)
        removed = pc.is_valid(table.column("removed_version"))
        return Manifest(
            version=int(meta["nplake.version"]),
            timestamp_ms=int(meta["nplake.timestamp_ms"]),
            files=table.filter(pc.invert(removed)),
            schemas=json.loads(meta["nplake.schemas"]),
            current=json.loads(meta["nplake.current"]),
            touched=json.loads(meta.get("nplake.touched", "{}")),
            tombstones=table.filter(removed),
            vacuumed_before_ms=int(meta.get("nplake.vacuumed_before_ms", "0")),
        )

    def _hint(self) -> int:
        return read_version_hint(self.files, HINT)

    def _nearest_checkpoint(self, target: int) -> Manifest:
        """A checkpoint at or before `target` (the empty manifest if none is left)."""
        candidates = [target]
        hint = self._hint()
        if 0 <= hint < target:
            candidates.append(hint)
        stride = target - target % CHECKPOINT_STRIDE
        candidates += list(range(stride, -1, -CHECKPOINT_STRIDE))
        for version in dict.fromkeys(candidates):
            found = self.checkpoint(version)
            if found is not None:
                return found
        return Manifest.empty()


def read_version_hint(files: Files, rel: str) -> int:
    """The version a hint file `{"version": N}` names (-1 when missing or unreadable)."""
    data = files.read_bytes(rel)
    if data is None:
        return -1
    try:
        return int(json.loads(data)["version"])
    except (ValueError, KeyError, TypeError):
        return -1
