"""Expand user paths into sources (a path plus the decoder that reads it) and fingerprint them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.base import DecodeOptions, Decoder
from ingest.remote import RemotePath, is_remote, list_sources, remote_path, stat
from ingest.remote import fingerprint as remote_fingerprint
from schemas import DecodeError

_CHUNK = 8 << 20


@dataclass(frozen=True)
class Source:
    """One session's source: a file, a folder or a remote object, and the decoder reading it."""

    path: Path | RemotePath
    decoder: Decoder


@dataclass(frozen=True)
class Unreadable:
    """A user path that yields no source, and why."""

    path: Path | RemotePath
    reason: str


def source_path(text: str) -> Path | RemotePath:
    """A source's path from its text: a `RemotePath` for s3:// and http(s):// URIs."""
    return RemotePath(text) if is_remote(text) else Path(text)


def find_decoder(path: Path, decoders: Sequence[Decoder] | None = None) -> Decoder | None:
    """The first registered decoder that sniffs `path`, or None."""
    if decoders is None:
        from ingest.registry import DECODERS

        decoders = DECODERS
    for decoder in decoders:
        if decoder.sniff(path):
            return decoder
    return None


def discover(
    paths: Iterable[str | os.PathLike], decoders: Sequence[Decoder] | None = None
) -> tuple[list[Source], list[Unreadable]]:
    """Sources under `paths`: files a decoder reads, and session folders (searched recursively).

    A folder that a decoder recognises (a raw rig session) is one source; any other folder is
    searched for session files and session folders, skipping hidden ones (names starting
    with '.'); a hidden file named on its own is read. Paths that yield nothing are returned as
    `Unreadable` with the reason, so a batch can report them and go on.
    """
    sources: list[Source] = []
    problems: list[Unreadable] = []
    seen: set[Path] = set()
    for raw in paths:
        if is_remote(raw):
            found = _expand_remote(str(raw), decoders)
        else:
            found = _expand(Path(raw).expanduser(), decoders)
        if isinstance(found, Unreadable):
            problems.append(found)
            continue
        for source in found:
            key = source.path.resolve()
            if key not in seen:
                seen.add(key)
                sources.append(source)
    return sources, problems


def _expand(path: Path, decoders: Sequence[Decoder] | None) -> list[Source] | Unreadable:
    if not path.exists():
        return Unreadable(path, "no such file or folder")
    decoder = find_decoder(path, decoders)
    if decoder is not None:
        return [Source(path, decoder)]
    if path.is_file():
        return Unreadable(
            path, "not a session source nplake reads (an .nwb file or a raw rig session folder)"
        )
    found: list[Source] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        here = Path(root)
        keep = []
        for name in dirs:
            sub = here / name
            if name.startswith("."):
                continue
            sub_decoder = find_decoder(sub, decoders)
            if sub_decoder is not None:
                found.append(Source(sub, sub_decoder))
            else:
                keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            if name.startswith("."):  # hidden: e.g. an export's temporary .<name>.partial.nwb
                continue
            file_decoder = find_decoder(here / name, decoders)
            if file_decoder is not None:
                found.append(Source(here / name, file_decoder))
    if not found:
        return Unreadable(path, "no session files or session folders found in this folder")
    return found


def _expand_remote(uri: str, decoders: Sequence[Decoder] | None) -> list[Source] | Unreadable:
    """One remote NWB file (an HTTP URL, an s3:// key ending .nwb), or the .nwb under a prefix."""
    try:
        path = remote_path(uri)
    except DecodeError as exc:
        return Unreadable(RemotePath(exc.file or uri), exc.reason)
    decoder = _remote_decoder(decoders)
    if path.scheme == "http" or (path.suffix.lower() == ".nwb" and not uri.endswith("/")):
        try:
            stat(path, refresh=True)
        except DecodeError as exc:
            return Unreadable(path, exc.reason)
        return [Source(path, decoder)]
    found, reason = list_sources(path)
    if reason is not None:
        return Unreadable(path, reason)
    return [Source(p, decoder) for p in found]


def _remote_decoder(decoders: Sequence[Decoder] | None) -> Decoder:
    """The decoder of remote objects: NWB (the one format read through a file object)."""
    if decoders is None:
        from ingest.registry import DECODERS

        decoders = DECODERS
    return next(d for d in decoders if d.name == "nwb")


def fingerprint(source: Source, options: DecodeOptions) -> str:
    """SHA-256 over the names and bytes of every file the decoder reads for this source.

    Names are relative to the folder holding the source, so they include a session folder's
    own name: decoders take the session id and subject from it when no file says otherwise.
    A remote source's fingerprint is the store's metadata of the object (`ingest.remote`).
    """
    if isinstance(source.path, RemotePath):
        return remote_fingerprint(source.path)
    digest = hashlib.sha256()
    for rel, file in _inputs(source, options):
        digest.update(str(rel).encode())
        digest.update(b"\0")
        with open(file, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def quick_fingerprint(source: Source, options: DecodeOptions) -> str:
    """SHA-256 over the names, sizes and modification times of the files the decoder reads.

    Reads no file content: when it matches the one a session was made from, the source is
    unchanged without hashing its bytes (what makes checking thousands of sources fast). A
    copied or touched file gets a new quick fingerprint; its content hash then decides. A remote
    source's quick fingerprint is its fingerprint (one HEAD request).
    """
    if isinstance(source.path, RemotePath):
        return remote_fingerprint(source.path)
    digest = hashlib.sha256()
    for rel, file in _inputs(source, options):
        st = os.stat(file)
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _inputs(source: Source, options: DecodeOptions) -> list[tuple[Path, Path]]:
    """The files the decoder reads, sorted, with their names relative to the source's folder."""
    base = source.path.parent
    out = []
    for file in sorted(source.decoder.inputs(source.path, options)):
        try:
            out.append((file.relative_to(base), file))
        except ValueError:
            out.append((file, file))
    return out
