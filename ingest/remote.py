"""Remote sources: NWB files read where they are (S3 objects, HTTP(S) URLs), never downloaded.

h5py reads a Python file object (its `fileobj` driver): `RangeReader`, whose reads are ranged
requests through a segment cache. HDF5's scattered metadata reads cost one request per
`BLOCK_BYTES` block; a dataset read chunk after chunk soon costs one request per 64 MB; only
the parts of the file the decoder reads are fetched (not image data or raw electrical series,
which it skips). The bytes fetched are counted (`BYTES_READ`) for benchmarks and tests.
fsspec's own block caches were the first try: they send one request per block however long
the read (a 913 MB session took 171 requests and 86 s against moto, where this reader takes 41
requests and 27 s); remfile reads HTTP(S) URLs only (S3 only through presigned URLs, which
are refused here), so it would be a second reader for half the sources.

**Fingerprint.** A remote source's fingerprint is what the store already knows about the object
(one HEAD request, no byte hashed): its ETag, else its version id, else its last-modified time,
with its name and size. The first read of a source records that state; every later open of
it in the same process reads exactly that object: S3 reads are conditional on the ETag
(s3fs sends `If-Match`), HTTP reads send `If-Match` when the server gave a strong ETag. An
object replaced while a session is decoded fails that session instead of mixing two files.

**Credentials.** S3 sources use the standard AWS chain of the process reading them (the
environment's `AWS_ACCESS_KEY_ID`..., `AWS_PROFILE`, an instance role) and `AWS_ENDPOINT_URL` /
`AWS_ENDPOINT_URL_S3`; HTTP sources are read anonymously. A URL carrying credentials or a
query string (a presigned URL) is refused: it would be recorded as the session's `source_uri`.

Rig session folders are not read remotely: their readers need local files (a one-line error
says to copy the folder first).
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from schemas import DecodeError

#: URI schemes read in place.
SCHEMES = ("s3", "s3a", "http", "https")
#: The least one request fetches (HDF5 metadata lies close together: a few requests read it).
BLOCK_BYTES = 2 << 20
#: The most one request fetches when reads go on where the last one ended.
MAX_SEGMENT_BYTES = 64 << 20
#: Bytes of fetched segments one object keeps (least recently used dropped first).
CACHE_BYTES = 256 << 20
#: Object names that mark a raw rig session folder (sync file, sorting output, metadata).
_RIG_NAMES = (".sync", "_sync.h5", ".sync.h5", "spike_times.npy", "session.json")

_lock = threading.Lock()
_filesystems: dict[str, object] = {}
_pins: dict[str, RemoteStat] = {}
#: Cached segments of the two object states read most recently.
_CACHES: dict[tuple[str, str], _Segments] = {}
#: Bytes fetched from remote sources by this process, and the requests that fetched them.
BYTES_READ = [0]
REQUESTS = [0]


def is_remote(path: object) -> bool:
    """Whether `path` is a URI this module reads (s3://, s3a://, http://, https://)."""
    if isinstance(path, RemotePath):
        return True
    text = str(path)
    return "://" in text and text.split("://", 1)[0].lower() in SCHEMES


@dataclass(frozen=True)
class RemotePath:
    """A remote object or prefix, with the few `Path` members the ingest pipeline uses."""

    uri: str

    def __str__(self) -> str:
        return self.uri

    @property
    def scheme(self) -> str:
        """'s3' (for s3 and s3a) or 'http' (for http and https)."""
        scheme = self.uri.split("://", 1)[0].lower()
        return "s3" if scheme.startswith("s3") else "http"

    @property
    def name(self) -> str:
        """The last component of the object's key or URL path."""
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        """The name's extension, with its dot ('' if none)."""
        name = self.name
        return name[name.rfind(".") :] if "." in name.lstrip(".") else ""

    def resolve(self) -> RemotePath:
        """Itself: a URI is already absolute."""
        return self

    def exists(self) -> bool:
        """Whether the object exists (a HEAD request)."""
        try:
            stat(self, refresh=True)
        except DecodeError:
            return False
        return True

    def is_file(self) -> bool:
        """Same as `exists`: a remote source is always an object."""
        return self.exists()

    def is_dir(self) -> bool:
        """Never: prefixes are expanded by `discover`, not read."""
        return False


@dataclass(frozen=True)
class RemoteStat:
    """What the store says about one object."""

    size: int
    etag: str | None
    version_id: str | None
    modified: str | None

    def fingerprint(self, name: str) -> str:
        """SHA-256 of the object's name, size and identity (ETag, else version, else time)."""
        identity = (
            f"etag={self.etag}"
            if self.etag
            else f"version={self.version_id}"
            if self.version_id
            else f"modified={self.modified}"
        )
        text = f"remote\0{name}\0{self.size}\0{identity}"
        return hashlib.sha256(text.encode()).hexdigest()


def remote_path(uri: str) -> RemotePath:
    """A `RemotePath` for `uri`; DecodeError if it carries credentials or a query string."""
    parts = urlsplit(uri)
    if parts.username or parts.password or parts.query or parts.fragment:
        shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
        msg = (
            "a URL with credentials, a query string or a fragment (a presigned URL?) is not "
            "accepted: it would be recorded in the lake; give the plain URL of a public object, "
            "or an s3:// URI with AWS credentials in the environment"
        )
        raise DecodeError(msg, file=shown)
    if not parts.netloc:
        msg = "no bucket or host in the URI (s3://bucket/key, https://host/file.nwb)"
        raise DecodeError(msg, file=uri)
    return RemotePath(uri)


def filesystem(path: RemotePath):
    """The fsspec filesystem for `path`'s scheme (one per process, made on first use)."""
    with _lock:
        fs = _filesystems.get(path.scheme)
        if fs is None:
            if path.scheme == "s3":
                import s3fs

                fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
            else:
                from fsspec.implementations.http import HTTPFileSystem

                fs = HTTPFileSystem(skip_instance_cache=True)
            _filesystems[path.scheme] = fs
        return fs


def reset() -> None:
    """Forget this process's filesystems, pins and cached bytes (after AWS settings change)."""
    with _lock:
        _filesystems.clear()
        _pins.clear()
        _CACHES.clear()


def _key(path: RemotePath) -> str:
    """The path as its filesystem names it (s3: bucket/key; http: the URL)."""
    return path.uri.split("://", 1)[1] if path.scheme == "s3" else path.uri


def stat(path: RemotePath, *, refresh: bool = False) -> RemoteStat:
    """The object's size and identity (cached; `refresh` asks the store again and re-pins)."""
    with _lock:
        known = _pins.get(path.uri)
    if known is not None and not refresh:
        return known
    try:
        info = filesystem(path).info(_key(path))
    except FileNotFoundError:
        msg = "no such object (or no permission to read it)"
        raise DecodeError(msg, file=path.uri) from None
    except Exception as exc:  # no credentials, no permission, no network: one line
        raise DecodeError(_unreachable(exc), file=path.uri) from None
    if info.get("type") != "file":
        msg = "not an object (a prefix? give s3://bucket/prefix/ to search it)"
        raise DecodeError(msg, file=path.uri)
    modified = info.get("LastModified") or info.get("Last-Modified")
    found = RemoteStat(
        size=int(info["size"]),
        etag=info.get("ETag"),
        version_id=info.get("VersionId") or None,
        modified=str(modified) if modified is not None else None,
    )
    with _lock:
        _pins[path.uri] = found
    return found


def fingerprint(path: RemotePath) -> str:
    """The source's fingerprint from the store's metadata (a fresh HEAD request; pins reads)."""
    return stat(path, refresh=True).fingerprint(path.name)


def _unreachable(exc: Exception) -> str:
    """Why a store could not be asked, in one line (botocore's messages name no secret)."""
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return (
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
            "AWS_PROFILE) where nplake runs, and AWS_ENDPOINT_URL for a store other than AWS"
        )
    if isinstance(exc, PermissionError):
        return f"no permission to read it ({exc}); check the AWS credentials"
    text = " ".join(str(exc).split())
    return f"cannot reach it ({name}: {text})"


def list_sources(prefix: RemotePath) -> tuple[list[RemotePath], str | None]:
    """The `.nwb` objects under an S3 prefix (recursive, sorted), or why there are none."""
    if prefix.scheme != "s3":
        return [], "an HTTP URL names one file; only s3:// prefixes can be searched"
    fs = filesystem(prefix)
    root = _key(prefix).rstrip("/")
    try:
        names = sorted(fs.find(root))
    except FileNotFoundError:
        names = []
    except Exception as exc:  # no credentials, no permission, no network: one line
        return [], _unreachable(exc)
    scheme = prefix.uri.split("://", 1)[0]
    found = [
        RemotePath(f"{scheme}://{n}")
        for n in names
        if n.lower().endswith(".nwb") and not n.rsplit("/", 1)[-1].startswith(".")
    ]
    if found:
        return found, None
    if any(n.endswith(_RIG_NAMES) for n in names):
        return [], (
            "looks like a raw rig session folder: those are read from local files only; copy "
            "it first (aws s3 sync URI LOCAL_FOLDER) and ingest the copy"
        )
    if not names:
        return [], "no such object or prefix (or no permission to list it)"
    return [], "no .nwb objects under this prefix"


def open_file(path: RemotePath) -> RangeReader:
    """A read-only, seekable file object over the object, pinned to its fingerprinted state."""
    pin = stat(path)
    fs = filesystem(path)
    try:
        if path.scheme == "s3":
            raw = fs.open(_key(path), "rb", cache_type="none")
            if pin.etag and raw.details.get("ETag") != pin.etag:
                raw.close()  # s3fs makes every read conditional on the ETag it saw at open
                raise _changed(path)
        else:
            strong = pin.etag and not pin.etag.startswith("W/")
            headers = {"If-Match": pin.etag} if strong else {}
            raw = fs.open(_key(path), "rb", cache_type="none", size=pin.size, headers=headers)
    except FileNotFoundError:
        msg = "no such object (or no permission to read it)"
        raise DecodeError(msg, file=path.uri) from None
    return RangeReader(path, pin, raw)


class RangeReader(io.RawIOBase):
    """A file object whose reads are ranged requests through a per-process segment cache.

    A read inside a cached segment costs nothing. A read that continues where a segment ends
    (a dataset read chunk after chunk, or two datasets read in turns) fetches a segment twice
    as long as that one, up to `MAX_SEGMENT_BYTES`: sequential reads soon cost one request per
    64 MB. Any other read fetches at least `BLOCK_BYTES` around it (HDF5 metadata lies close
    together). Segments are shared by every open of the same object state in the process (the
    decoder opens a file three times: metadata, spikes, time series) and the least recently
    used ones are dropped beyond `CACHE_BYTES`.
    """

    def __init__(self, path: RemotePath, pin: RemoteStat, raw) -> None:
        super().__init__()
        self.path = path
        self.size = pin.size
        self._raw = raw
        self._pos = 0
        self._cache = _segments(path, pin)

    def readable(self) -> bool:
        """Always: the file is read-only."""
        return True

    def seekable(self) -> bool:
        """Always."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to `offset` (from the start, the current position or the end)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        """Fill `buffer` from the current position; the bytes read (0 at the end)."""
        view = memoryview(buffer).cast("B")
        start, end = self._pos, min(self._pos + len(view), self.size)
        if start >= end:
            return 0
        view[: end - start] = self._cache.read(start, end, self._fetch)
        self._pos = end
        return end - start

    def _fetch(self, start: int, end: int) -> bytes:
        try:
            self._raw.seek(start)
            data = self._raw.read(end - start)
        except Exception as exc:  # s3fs: FileExpired (an OSError); aiohttp: a 412 response
            if type(exc).__name__ == "FileExpired" or getattr(exc, "status", None) == 412:
                raise _changed(self.path) from None
            raise
        BYTES_READ[0] += len(data)
        REQUESTS[0] += 1
        return data

    def close(self) -> None:
        """Close the underlying connection (the cached segments stay for the next open)."""
        if not self.closed:
            self._raw.close()
        super().close()


class _Segments:
    """Cached byte ranges of one object state: (start, bytes), least recently used first."""

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.lock = threading.Lock()

    def read(self, start: int, end: int, fetch) -> bytes:
        """Bytes [start, end): from cached segments where they have them, fetched otherwise."""
        pieces = []
        pos = start
        while pos < end:
            with self.lock:
                at, data = self._covering(pos)
                grow = 0 if data else self._ending_at(pos)
            if not data:
                if grow:  # reads go on where a segment ends: fetch twice as much ahead
                    at, length = pos, max(end - pos, min(2 * grow, MAX_SEGMENT_BYTES))
                else:
                    at = pos - pos % BLOCK_BYTES
                    length = max(end - at, BLOCK_BYTES)
                data = fetch(at, at + length)
                with self.lock:
                    self.parts.pop(at, None)  # a shorter segment there: this one replaces it
                    self.parts[at] = data
                    _evict(self.parts)
            piece = data[pos - at : end - at]
            if not piece:
                msg = f"the store returned no bytes at offset {pos} (the object is shorter?)"
                raise DecodeError(msg)
            pieces.append(piece)
            pos += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _covering(self, pos: int) -> tuple[int, bytes]:
        """The segment holding byte `pos` (marked most recently used), or (0, b'')."""
        for at, data in self.parts.items():
            if at <= pos < at + len(data):
                self.parts[at] = self.parts.pop(at)
                return at, data
        return 0, b""

    def _ending_at(self, pos: int) -> int:
        """The length of a segment ending right before `pos` (0 if none)."""
        return next((len(d) for at, d in self.parts.items() if at + len(d) == pos), 0)


def _evict(parts: dict[int, bytes]) -> None:
    """Drop the least recently used segments beyond `CACHE_BYTES`."""
    total = sum(len(d) for d in parts.values())
    for at in list(parts):
        if total <= CACHE_BYTES or len(parts) == 1:
            break
        total -= len(parts.pop(at))


def _segments(path: RemotePath, pin: RemoteStat) -> _Segments:
    key = (path.uri, pin.fingerprint(path.name))
    with _lock:
        cache = _CACHES.pop(key, None) or _Segments()
        _CACHES[key] = cache
        while len(_CACHES) > 2:
            _CACHES.pop(next(iter(_CACHES)))
        return cache


def _changed(path: RemotePath) -> DecodeError:
    msg = "the object changed while it was being ingested; ingest it again"
    return DecodeError(msg, file=path.uri)


@contextmanager
def open_h5(path: RemotePath) -> Iterator:
    """Open a remote HDF5 file read-only through h5py's file-object driver."""
    import h5py

    fh = open_file(path)
    try:
        if fh.read(8) != b"\x89HDF\r\n\x1a\n":
            msg = "not an HDF5 file (no HDF5 signature)"
            raise DecodeError(msg, file=path.uri)
        fh.seek(0)
        try:
            h5 = h5py.File(fh, "r")
        except OSError as exc:
            msg = f"cannot open as HDF5 (truncated or damaged?): {exc}"
            raise DecodeError(msg, file=path.uri) from None
        try:
            yield h5
        finally:
            h5.close()
    finally:
        fh.close()
