"""HDF5 damage the library cannot survive is refused before it is read (ingest/_hdf5.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from ingest._hdf5 import open_h5, read_numbers, read_text
from ingest._heaps import hanging_heap
from schemas import DecodeError


def text_file(path: Path) -> Path:
    with h5py.File(path, "w") as fh:
        fh.create_dataset("identifier", data="session-1", dtype=h5py.string_dtype())
        fh.create_dataset("numbers", data=np.arange(3.0))
        fh.create_dataset("sequence", shape=(), dtype=h5py.vlen_dtype(np.uint8))
        fh["sequence"][()] = np.arange(4, dtype=np.uint8)
    return path


def free_space_header(data: bytes) -> int:
    """Offset of the free-space object (index 0) of the file's one global heap collection."""
    at = data.index(b"GCOL")
    p = at + 16
    while True:
        index, _, _, size = struct.unpack_from("<HHIQ", data, p)
        if index == 0:
            return p
        p += 16 + -(-size // 8) * 8


def test_a_healthy_file_has_no_hanging_heap(tmp_path, realdata):
    assert hanging_heap(text_file(tmp_path / "ok.h5")) is None
    for path in sorted((realdata / "nwb").glob("*.nwb")):
        assert hanging_heap(path) is None, path.name


def test_a_free_space_object_of_size_zero_is_refused_before_the_library_reads_it(tmp_path):
    path = text_file(tmp_path / "damaged.h5")
    data = bytearray(path.read_bytes())
    free = free_space_header(data)
    data[free + 8 : free + 16] = bytes(8)  # size 0: the library's parsing loop never advances
    path.write_bytes(bytes(data))
    at = data.index(b"GCOL")
    assert hanging_heap(path) == at
    with pytest.raises(DecodeError) as info, open_h5(path):
        pass
    assert str(info.value) == (
        f"{path}: HDF5 global heap: damaged HDF5 global heap (the text store) at byte {at}: an "
        "object of size 0 would make the HDF5 library loop forever; the file cannot be read: "
        "restore it from a copy"
    )


def test_text_whose_type_is_not_text_is_refused_unread(tmp_path):
    path = text_file(tmp_path / "f.h5")
    with open_h5(path) as fh:
        assert read_text(fh, "identifier") == "session-1"
        assert read_text(fh, "absent") is None
        with pytest.raises(DecodeError) as info:
            read_text(fh, "sequence")
    assert (info.value.file, info.value.field) == (str(path), "/sequence")
    assert info.value.reason == "holds variable-length sequences; text is expected"


def test_numbers_where_numbers_belong(tmp_path):
    path = text_file(tmp_path / "f.h5")
    with open_h5(path) as fh:
        assert read_numbers(fh["numbers"], "numbers").tolist() == [0.0, 1.0, 2.0]
        with pytest.raises(DecodeError) as info:
            read_numbers(fh["identifier"], "identifier")
        assert info.value.reason.startswith("holds object values; numbers are expected")
        with pytest.raises(DecodeError, match="is a group, not a dataset; numbers are expected"):
            read_numbers(fh["/"], "root")


def test_what_h5py_raises_inside_a_decoder_is_one_line_and_our_own_errors_are_not(tmp_path):
    path = text_file(tmp_path / "f.h5")
    with pytest.raises(DecodeError) as info, open_h5(path) as fh:
        fh["no/such/object"]
    assert info.value.file == str(path)
    assert info.value.reason.startswith("the HDF5 library cannot read it (damaged file?): KeyError")
    with pytest.raises(ValueError, match="a bug of ours"), open_h5(path):
        raise ValueError("a bug of ours")


def test_a_dataspace_claiming_petabytes_is_one_line(tmp_path):
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as fh:
        ds = np.arange(1679.0)
        fh.create_dataset("x", data=ds, chunks=(100,), compression="gzip", maxshape=(None,))
    data = bytearray(path.read_bytes())
    dims = data.index(struct.pack("<Q", 1679))
    data[dims + 6] = 0x20  # 1679 -> 9,007,199,254,742,671 values: 64 PiB of float64
    path.write_bytes(bytes(data))
    with pytest.raises(DecodeError) as info, open_h5(path) as fh:
        fh["x"][()]
    assert info.value.reason == (
        "the HDF5 library cannot read it (damaged file?): MemoryError: Unable to allocate 64.0 "
        "PiB for an array with shape (9007199254742671,) and data type float64"
    )
