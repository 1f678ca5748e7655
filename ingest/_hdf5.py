"""HDF5 access shared by decoders: open with errors that name the file, decode text values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from ingest.remote import RemotePath
from ingest.remote import open_h5 as open_remote_h5
from schemas import DecodeError

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: Path) -> bool:
    """Whether `path` starts with the HDF5 signature (at offset 0; userblocks are not probed)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == _HDF5_MAGIC
    except OSError:
        return False


@contextmanager
def open_h5(path: Path | RemotePath) -> Iterator[h5py.File]:
    """Open an HDF5 file read-only; a missing, non-HDF5 or truncated file is a DecodeError.

    A remote object (`ingest.remote`) is read in place through a file object.
    """
    if isinstance(path, RemotePath):
        with open_remote_h5(path) as fh:
            yield fh
        return
    path = Path(path)
    if not path.exists():
        msg = "no such file"
        raise DecodeError(msg, file=path)
    if not path.is_file():
        msg = "not a file"
        raise DecodeError(msg, file=path)
    if not is_hdf5(path):
        msg = "not an HDF5 file (no HDF5 signature)"
        raise DecodeError(msg, file=path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        msg = f"cannot open as HDF5 (truncated or damaged?): {exc}"
        raise DecodeError(msg, file=path) from None
    try:
        yield fh
    finally:
        fh.close()


def as_text(value: object) -> str | None:
    """A scalar HDF5 value as text: bytes decoded as UTF-8 (latin-1 fallback), arrays joined."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.shape == ():
            return as_text(value[()])
        parts = [as_text(v) for v in value.ravel()]
        return "; ".join(p for p in parts if p is not None)
    if isinstance(value, bytes | np.bytes_):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).decode("latin-1")
    return str(value)


def text_array(values: np.ndarray) -> list[str | None]:
    """A 1-d HDF5 string dataset's values as Python strings."""
    return [as_text(v) for v in np.asarray(values, dtype=object).ravel()]


def read_text(group: h5py.Group, name: str) -> str | None:
    """Text of dataset `name` in `group`, or None when absent."""
    if name not in group:
        return None
    obj = group[name]
    if not isinstance(obj, h5py.Dataset):
        return None
    return as_text(obj[()])
