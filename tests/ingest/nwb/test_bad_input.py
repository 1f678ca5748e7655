"""Bad NWB input fails with one-line DecodeErrors; oddities the decoder tolerates decode."""

from __future__ import annotations

import contextlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from schemas import DecodeError, NplakeError
from tests.ingest.nwb.files import (
    HUMAN,
    JANELIA,
    OGEN,
    consume,
    copy,
    decode_file,
    nwb,
    replace,
    series,
    text,
    write_allen_like,
)


def expect_error(path: Path, field: str | None, *fragments: str, **options) -> DecodeError:
    """Decode (and stream) `path`; the DecodeError must name the file, the field, the words."""
    with pytest.raises(DecodeError) as info:
        consume(decode_file(path, **options))
    error = info.value
    message = str(error)
    assert "\n" not in message
    assert error.file == str(path)
    assert path.name in message
    if field is not None:
        assert error.field == field
        assert field in message
    for fragment in fragments:
        assert fragment in message
    return error


def test_missing_path(tmp_path):
    expect_error(tmp_path / "nothing.nwb", None, "no such file")


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.nwb"
    path.write_text("hello, not HDF5")
    expect_error(path, None, "not an HDF5 file")


def test_a_units_table_with_zero_rows_is_a_session_without_units(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        for name, column in list(fh["units"].items()):
            attrs, empty = dict(column.attrs), np.empty((0, *column.shape[1:]), column.dtype)
            replace(fh, f"units/{name}", empty)
            fh[f"units/{name}"].attrs.update(attrs)
    bundle = decode_file(path)
    assert (bundle.table("units").num_rows, consume(bundle)) == (0, 0)
    assert bundle.table("sessions")["has_ephys"].to_pylist() == [False]
    assert bundle.table("channels").num_rows == 32  # the probe is still described


def test_a_missing_session_start_time_is_null_and_noted(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        del fh["session_start_time"]
    bundle = decode_file(path)
    assert bundle.table("sessions")["session_start_time"].to_pylist() == [None]
    assert bundle.notes == ["no /session_start_time (required by NWB): session_start_time is null"]


def test_unit_ids_must_be_whole_numbers(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        replace(fh, "units/id", np.array([1.0, 2.0, 3.0, 4.0]))  # whole: read as 1..4
    assert decode_file(path).table("units").column("unit_id").to_pylist() == [1, 2, 3, 4]
    with h5py.File(path, "r+") as fh:
        replace(fh, "units/id", np.array([1.5, 2.0, 3.0, 4.0]))
    expect_error(path, "units/id", "ids must be whole numbers")


def test_hdf5_that_is_not_nwb(tmp_path):
    path = tmp_path / "plain.nwb"
    with h5py.File(path, "w") as fh:
        fh["data"] = np.arange(3)
    expect_error(path, "nwb_version", "an HDF5 file but not NWB")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_truncated_file(realdata, tmp_path, fraction):
    path = copy(realdata, tmp_path, OGEN)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(size * fraction))
    expect_error(path, None, "truncated")


def test_no_units_table(realdata, tmp_path):
    path = copy(realdata, tmp_path)
    with h5py.File(path, "r+") as fh:
        del fh["units"]
    expect_error(path, "units", "no units table")


@pytest.mark.parametrize(
    ("index", "fragment"),
    [
        (np.array([1000], dtype=np.int32), "last offset 1000"),
        (np.array([5000], dtype=np.int32), "last offset 5000"),
        (np.array([10, 1679], dtype=np.int32), "2 index entries for 1 rows"),
    ],
)
def test_spike_index_disagrees_with_spike_times(realdata, tmp_path, index, fragment):
    path = copy(realdata, tmp_path)
    with h5py.File(path, "r+") as fh:
        replace(fh, "units/spike_times_index", index)
    expect_error(path, "units/spike_times_index", fragment)


def test_spike_index_with_decreasing_offsets(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        replace(fh, "units/spike_times_index", np.array([12992, 10000, 19164, 34057]))
    expect_error(path, "units/spike_times_index", "offsets decrease")


@pytest.mark.parametrize(
    ("name", "make", "fragment"),
    [
        ("units/spike_times", lambda t: np.stack([t, t], axis=1), "a 1-D dataset is expected"),
        ("units/spike_times", lambda t: t.astype("S12"), "numbers are expected"),
        ("units/spike_times_index", lambda i: i.astype(np.float64) + 0.5, "integers are expected"),
        ("units/spike_times_index", None, "is a group, not a dataset"),
    ],
)
def test_malformed_spike_datasets_are_refused_before_streaming(
    realdata, tmp_path, name, make, fragment
):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        if make is None:
            del fh[name]
            fh.create_group(name)
        else:
            replace(fh, name, make(fh[name][()]))
    with pytest.raises(DecodeError, match=fragment) as info:
        decode_file(path)  # the bundle is refused before a spike is streamed
    assert info.value.field == name and path.name in str(info.value)


def test_text_spike_amplitudes_are_refused(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        fh["units/spike_amplitudes"] = np.zeros(len(fh["units/spike_times"]), dtype="S8")
    with pytest.raises(DecodeError, match="numbers are expected") as info:
        decode_file(path)
    assert info.value.field == "units/spike_amplitudes"


@pytest.mark.parametrize("identifier", ["bad id!", "", "../x", "-lead"])
def test_identifier_that_is_not_a_session_id(realdata, tmp_path, identifier):
    path = copy(realdata, tmp_path)
    with h5py.File(path, "r+") as fh:
        replace(fh, "identifier", identifier)
    expect_error(path, "identifier", repr(identifier), "pass a session id")
    assert decode_file(path, session_id="fixed").session_id == "fixed"


def test_bad_session_id_option(realdata):
    path = nwb(realdata, JANELIA)
    expect_error(path, "session_id", "'a b'", session_id="a b")


def test_amplitudes_whose_index_differs(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        fh["units/spike_amplitudes"] = np.ones(34_057)
        fh["units/spike_amplitudes_index"] = np.array([12992, 16451, 19164, 34057])
    expect_error(path, "units/spike_amplitudes_index", "differs from spike_times_index")


def test_amplitudes_with_an_equal_index_are_used(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        fh["units/spike_amplitudes"] = np.arange(34_057, dtype=np.float32)
        fh["units/spike_amplitudes_index"] = np.array([12992, 16450, 19164, 34057], np.uint16)
    spikes = decode_file(path).table("spikes")
    assert spikes.column("amplitude").null_count == 0
    assert spikes.column("amplitude").to_numpy().sum() == np.arange(34_057).sum()


def test_damage_found_only_while_streaming_is_a_decode_error(tmp_path):
    path = write_allen_like(tmp_path / "damaged.nwb", compress=True)
    with h5py.File(path, "r") as fh:
        chunk = fh["units/spike_times"].id.get_chunk_info(1)
    with open(path, "r+b") as fh:
        fh.seek(chunk.byte_offset)
        fh.write(b"\xff" * chunk.size)
    bundle = decode_file(path)  # metadata is intact
    with pytest.raises(DecodeError) as info:
        consume(bundle)
    assert info.value.field == "units/spike_times"
    assert info.value.file == str(path)
    assert "\n" not in str(info.value)


def test_file_cut_after_decoding_fails_cleanly_when_streamed(realdata, tmp_path):
    path = copy(realdata, tmp_path, HUMAN)
    bundle = decode_file(path)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    with pytest.raises(DecodeError, match="truncated") as info:
        consume(bundle)
    assert info.value.file == str(path)


# --- tolerated oddities -----------------------------------------------------------------------


def test_minimal_file_decodes(tmp_path):
    path = tmp_path / "minimal.nwb"
    with h5py.File(path, "w") as fh:
        text(fh, "identifier", "minimal-1")
        fh.create_dataset("units/id", data=np.array([2, 1], dtype=np.int32))
        fh.create_dataset("units/spike_times", data=np.array([0.3, 0.1, 0.2]))
        fh.create_dataset("units/spike_times_index", data=np.array([1, 3], dtype=np.uint8))
    bundle = decode_file(path)
    assert set(bundle.tables) == {"sessions", "units", "spikes", "descriptions"}
    spikes = bundle.table("spikes")
    assert spikes.column("unit_id").to_pylist() == [1, 1, 2]
    assert spikes.column("time").to_pylist() == [0.1, 0.2, 0.3]
    row = bundle.table("sessions").to_pylist()[0]
    assert (row["session_start_time"], row["nwb_version"], row["has_task"]) == (None, None, False)


def write_minimal_with_behavior(path: Path, add_series) -> Path:
    with h5py.File(path, "w") as fh:
        text(fh, "identifier", "minimal-2")
        fh.create_dataset("units/id", data=np.array([1], dtype=np.int32))
        fh.create_dataset("units/spike_times", data=np.array([0.5]))
        fh.create_dataset("units/spike_times_index", data=np.array([1], dtype=np.uint8))
        add_series(fh.create_group("acquisition"))
    return path


def test_non_allen_wheel_velocity_is_running_speed_and_wheel_position_is_not(tmp_path):
    def add(acquisition):
        behavior = acquisition.create_group("behavior")
        behavior.attrs["neurodata_type"] = "BehavioralTimeSeries"
        series(behavior, "wheel_position", [0.0, 0.1], [0.0, 3.0], "radians")
        series(behavior, "running_wheel", [0.0, 0.1, 0.2], [0.01, 0.02, 0.04], "m/s")

    bundle = decode_file(write_minimal_with_behavior(tmp_path / "wheel.nwb", add))
    speed = bundle.table("running_speed")
    assert speed.column("time").to_pylist() == [0.0, 0.1, 0.2]
    assert speed.column("speed").to_pylist() == [1.0, 2.0, 4.0]  # m/s -> cm/s


def test_a_wheel_position_alone_gives_no_running_speed(tmp_path):
    def add(acquisition):
        series(acquisition, "wheel_position", [0.0, 0.1], [0.0, 3.0], "radians")

    bundle = decode_file(write_minimal_with_behavior(tmp_path / "position.nwb", add))
    assert "running_speed" not in bundle.tables


def test_units_without_spike_times(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        del fh["units/spike_times"]
        del fh["units/spike_times_index"]
    bundle = decode_file(path)
    assert "spikes" not in bundle.tables
    assert bundle.table("units").column("spike_count").to_pylist() == [0, 0, 0, 0]
    assert any("no spike_times" in note for note in bundle.notes)


def test_file_without_task_data(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        del fh["intervals"]
    row = decode_file(path).table("sessions").to_pylist()[0]
    assert (row["has_ephys"], row["has_task"]) == (True, False)


def test_unusable_electrodes_region_is_a_note(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        replace(fh, "units/electrodes_index", np.array([1, 2, 3, 9], dtype=np.int32))
    bundle = decode_file(path)
    assert bundle.table("units").column("peak_channel").null_count == 4
    assert any("region unusable" in note for note in bundle.notes)


def test_non_numeric_probe_attribute_is_kept_as_text(tmp_path):
    path = write_allen_like(tmp_path / "odd.nwb")
    with h5py.File(path, "r+") as fh:
        fh["general/extracellular_ephys/probeA"].attrs["probe_id"] = "A-1"
    bundle = decode_file(path)
    probe = bundle.table("probes").to_pylist()[0]
    assert (probe["probe_id"], probe["probe_id_source"]) == (None, "A-1")
    assert any("probe_id 'A-1' is not a number" in note for note in bundle.notes)


def test_random_byte_damage_never_escapes_as_a_traceback(realdata, tmp_path):
    """Corrupt random bytes of a real file: decoding either works or raises NplakeError."""
    data = nwb(realdata, JANELIA).read_bytes()
    rng = np.random.default_rng(20)
    path = tmp_path / JANELIA
    for _ in range(25):
        damaged = bytearray(data)
        offset, size = int(rng.integers(0, len(data) - 64)), int(rng.integers(1, 64))
        damaged[offset : offset + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(damaged))
        with contextlib.suppress(NplakeError):
            consume(decode_file(path))


def test_matnwb_index_of_object_references_is_refused_saying_what_it_holds(realdata, tmp_path):
    path = copy(realdata, tmp_path, OGEN)
    with h5py.File(path, "r+") as fh:
        target = fh["units/spike_times"]
        del fh["units/spike_times_index"]
        refs = fh.create_dataset("units/spike_times_index", (4,), dtype=h5py.ref_dtype)
        refs[...] = [target.ref] * 4
        refs.attrs["neurodata_type"] = "VectorIndex"
    with pytest.raises(DecodeError) as info:
        decode_file(path)
    assert info.value.field == "units/spike_times_index"
    assert info.value.reason == (
        "holds 4 HDF5 object references (the first points to /units/spike_times), as some "
        "MatNWB versions wrote ragged columns; NWB 2.x stores integer end offsets into the data "
        "here, and nplake reads only that layout: re-export the file with a current MatNWB or "
        "with pynwb"
    )


@pytest.mark.parametrize("version", ["NWB-1.0.6", "1.0.5"])
def test_nwb_1_is_refused_as_such(tmp_path, version):
    """NWB 1.x keeps nwb_version as a dataset; such files get a message saying what they are."""
    path = tmp_path / "old.nwb"
    with h5py.File(path, "w") as fh:
        fh["nwb_version"] = version
        fh["identifier"] = "an old file"
        fh.create_group("processing/spikes/UnitTimes")
    with pytest.raises(DecodeError, match=r"NWB 1\.x is not supported") as info:
        decode_file(path)
    assert info.value.field == "nwb_version"
    assert repr(version) in info.value.reason and "pynwb" in info.value.reason
