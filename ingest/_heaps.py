"""Find damaged HDF5 global heap collections before the HDF5 library reads them.

Variable-length strings (NWB's text datasets and attributes) live in global heap collections
("GCOL" blocks). When the HDF5 library (2.0.0, the one h5py ships) loads a collection whose
free-space object claims a size of 0, its parsing loop stops advancing and the process hangs
for good, holding the GIL: no timeout inside the process can end it. One flipped byte in a
file does that. So before a file is opened, every collection in it is parsed the way the
library parses it, and one that would not terminate is refused as a damaged file.

The file is scanned for the "GCOL" signature through a memory map (about 2 GB/s from the page
cache), skipping the storage of its large datasets (spike times, samples: no collection lives
inside a dataset's storage), which h5py lists without reading any global heap; a file whose
layout cannot be listed is scanned whole. A signature that is not a real collection (text that
happens to spell it) is parsed too, but only an exact non-terminating layout is refused, which
random bytes practically never form.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import h5py

_SIGNATURE = b"GCOL"
_VERSION = 1


#: Dataset storage at least this large is not scanned (smaller pieces are not worth listing).
SKIP_BYTES = 1 << 20


def hanging_heap(path: Path) -> int | None:
    """Byte offset of a global heap collection the HDF5 library would never finish parsing."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size < 64:
            return None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            lengths = _length_size(data)
            for start, stop in _gaps(_dataset_storage(path), size):
                at = data.find(_SIGNATURE, start, stop)
                while at != -1:
                    if _loops(data, at, lengths, size):
                        return at
                    at = data.find(_SIGNATURE, at + 1, stop)
    return None


def _dataset_storage(path: Path) -> list[tuple[int, int]]:
    """(start, stop) byte ranges holding the values of large datasets (empty: list failed)."""
    extents: list[tuple[int, int]] = []

    def chunk(info) -> None:
        extents.append((info.byte_offset, info.byte_offset + info.size))

    def visit(_name: str, obj: object) -> None:
        if not isinstance(obj, h5py.Dataset) or obj.id.get_storage_size() < SKIP_BYTES:
            return
        layout = obj.id.get_create_plist().get_layout()
        if layout == h5py.h5d.CONTIGUOUS and obj.id.get_offset() is not None:
            extents.append((obj.id.get_offset(), obj.id.get_offset() + obj.id.get_storage_size()))
        elif layout == h5py.h5d.CHUNKED:
            obj.id.chunk_iter(chunk)

    try:
        with h5py.File(path, "r") as fh:
            fh.visititems(visit)
    except Exception:  # a damaged layout: scan the whole file instead
        return []
    return extents


def _gaps(extents: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The byte ranges of a file of `size` bytes outside `extents` (which may overlap)."""
    gaps, position = [], 0
    for start, stop in sorted(extents):
        if start > position:
            gaps.append((position, min(start + len(_SIGNATURE) - 1, size)))
        position = max(position, stop)
    if position < size:
        gaps.append((position, size))
    return gaps


def _length_size(data: mmap.mmap) -> int:
    """The superblock's "size of lengths" (8 unless it says 2 or 4)."""
    version = data[8]
    lengths = data[14 if version in (0, 1) else 10]
    return lengths if lengths in (2, 4, 8) else 8


def _loops(data: mmap.mmap, at: int, lengths: int, file_size: int) -> bool:
    """Whether the library's object loop over the collection at `at` would stop advancing.

    Mirrors H5HG__cache_heap_deserialize: objects are (index u16, refs u16, reserved u32,
    size); an object with index > 0 takes its header plus its size rounded up to 8 bytes, the
    free-space object (index 0) takes exactly its size, so a size of 0 never moves on.
    """
    header = 8 + lengths
    if at + header > file_size or data[at + 4] != _VERSION:
        return False
    (collection,) = struct.unpack_from(_UINT[lengths], data, at + 8)
    end = at + collection
    if collection < header or end > file_size:
        return False  # the library refuses it with an error (no hang)
    object_header = 8 + lengths
    p = at + header
    while p < end:
        if p + object_header > end:
            return False  # a tail too small for an object header: free space, done
        (index,) = struct.unpack_from("<H", data, p)
        (size,) = struct.unpack_from(_UINT[lengths], data, p + 8)
        need = object_header + -(-size // 8) * 8 if index > 0 else size
        if need % (1 << 64) == 0 or need >= 1 << 63:  # no progress, or a pointer wrap
            return True
        p += need
    return False


_UINT = {2: "<H", 4: "<I", 8: "<Q"}
