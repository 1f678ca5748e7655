"""HDF5 access shared by decoders: open with errors that name the file, decode text values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from ingest._heaps import hanging_heap
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

    A remote object (`ingest.remote`) is read in place through a file object. An error h5py
    raises while the file is read is a DecodeError naming the file, local or remote.
    """
    opened = open_remote_h5(path) if isinstance(path, RemotePath) else _open_local(Path(path))
    with opened as fh:
        try:
            yield fh
        except UnicodeDecodeError as exc:  # h5py decodes object names as UTF-8
            msg = f"a name in the file is not UTF-8 text (damaged file?): {exc.reason}"
            raise DecodeError(msg, file=path) from None
        except (TypeError, ValueError, RuntimeError, OSError, KeyError, MemoryError) as exc:
            if not raised_by_h5py(exc):
                raise
            msg = f"the HDF5 library cannot read it (damaged file?): {type(exc).__name__}: {exc}"
            raise DecodeError(msg, file=path) from None


@contextmanager
def _open_local(path: Path) -> Iterator[h5py.File]:
    if not path.exists():
        msg = "no such file"
        raise DecodeError(msg, file=path)
    if not path.is_file():
        msg = "not a file"
        raise DecodeError(msg, file=path)
    if not is_hdf5(path):
        msg = "not an HDF5 file (no HDF5 signature)"
        raise DecodeError(msg, file=path)
    _check_heaps(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        msg = f"cannot open as HDF5 (truncated or damaged?): {exc}"
        raise DecodeError(msg, file=path) from None
    try:
        yield fh
    finally:
        fh.close()


def raised_by_h5py(exc: BaseException) -> bool:
    """Whether `exc` was raised inside h5py: the file's bytes, not our code, are at fault.

    h5py raises TypeError for a text type with an unknown encoding, ValueError or RuntimeError
    for damaged heaps and B-trees, KeyError for unreadable links, MemoryError for a damaged
    dataspace claiming petabytes (it allocates the array first). Where a decoder has no more
    precise message, such an error still becomes one line naming the file; any exception raised
    in nplake's own code keeps its traceback.
    """
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "h5py" in Path(tb.tb_frame.f_code.co_filename).parts


#: Files whose global heaps were checked: (path, size, mtime) -> None.
_HEAPS_CHECKED: dict[tuple[str, int, int], None] = {}


def _check_heaps(path: Path) -> None:
    """Refuse a file with a global heap collection that would hang the HDF5 library.

    Checked once per file version (a spikes stream reopens its file on every pass).
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _HEAPS_CHECKED:
        return
    at = hanging_heap(path)
    if at is not None:
        msg = (
            f"damaged HDF5 global heap (the text store) at byte {at}: an object of size 0 would "
            "make the HDF5 library loop forever; the file cannot be read: restore it from a copy"
        )
        raise DecodeError(msg, file=path, field="HDF5 global heap")
    _HEAPS_CHECKED[key] = None


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
    """Text of dataset `name` in `group`, or None when absent; a DecodeError when not text."""
    if name not in group:
        return None
    obj = group[name]
    if not isinstance(obj, h5py.Dataset):
        return None
    if not holds_text_or_numbers(obj):
        sequences = h5py.check_vlen_dtype(obj.dtype) is not None
        msg = f"holds {'variable-length sequences' if sequences else obj.dtype}; text is expected"
        raise DecodeError(msg, file=obj.file.filename, field=obj.name)
    return as_text(obj[()])


def holds_text_or_numbers(ds: h5py.Dataset) -> bool:
    """Whether a dataset holds text, numbers or references: what decoders read as values.

    Anything else (variable-length sequences, compounds) is not read at all: a text dataset
    whose type a damaged byte turned into a sequence crashes the HDF5 library when read.
    """
    dtype = ds.dtype
    if h5py.check_string_dtype(dtype) is not None or h5py.check_dtype(ref=dtype) is not None:
        return True
    return dtype.names is None and dtype.kind in "SUbiuf"


def read_numbers(obj: object, field: str, *, kinds: str = "biuf") -> np.ndarray:
    """A numeric dataset's values; a DecodeError naming the file and `field` otherwise.

    For values a decoder does arithmetic on (times, indices): a group, text or a compound
    where numbers belong is a damaged or foreign file, said in one line, not a ValueError.
    """
    if not isinstance(obj, h5py.Dataset):
        kind = "missing" if obj is None else f"a {type(obj).__name__.lower()}, not a dataset"
        msg = f"is {kind}; numbers are expected"
        raise DecodeError(msg, field=field)
    if obj.dtype.kind not in kinds:
        msg = f"holds {obj.dtype} values; numbers are expected"
        raise DecodeError(msg, file=obj.file.filename, field=field)
    return np.asarray(obj[()])
