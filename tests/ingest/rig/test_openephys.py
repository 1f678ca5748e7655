"""Open Ephys TTL events: the real 0.4 folder, synthetic >= 0.6 recordings, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.rig.openephys import edges_from_states, read_ttl_events
from schemas import DecodeError
from tests.ingest.rig.fakes import write_openephys_recording

SORTED = "sorting/725254892_388523_20180726_probeA_sorted"
STREAM = "Neuropix-PXI-100.ProbeA-AP"


def test_real_open_ephys_04_folder(realdata):
    ttl = read_ttl_events(realdata / SORTED)
    assert ttl.layout == "0.4"
    assert ttl.stream == "Neuropix-3a-100.0"
    assert ttl.folder.name == "TTL_1"
    assert ttl.sample_rate == 30000.0  # from probe_info.json's AP band
    assert (ttl.start_sample, ttl.start_source) == (0, "none")
    assert len(ttl.samples) == 5_361
    assert ttl.samples[:2].tolist() == [0, 358848]
    assert sorted(set(ttl.states.tolist())) == [-2, -1, 0, 1, 2]
    rising, falling = ttl.edges(line=1)
    assert (len(rising), len(falling)) == (2_676, 2_676)
    assert rising[0] == 358848 / 30000
    rising2, falling2 = ttl.edges(line=2)
    assert (len(rising2), len(falling2)) == (4, 4)
    # pointing at the TTL folder itself works too
    assert read_ttl_events(ttl.folder, sample_rate=30000.0).samples.tolist() == ttl.samples.tolist()


def test_open_ephys_06_start_from_continuous_sample_numbers(tmp_path):
    rec = write_openephys_recording(
        tmp_path / "Record Node 101" / "experiment1" / "recording1",
        samples=[1000, 1600, 2000, 2300],
        states=[1, -1, 1, -1],
        start_sample=990,
        continuous_start=1000,
    )
    ttl = read_ttl_events(tmp_path / "Record Node 101")
    assert ttl.layout == ">=0.6"
    assert ttl.stream == STREAM
    assert (ttl.start_sample, ttl.start_source) == (1000, "continuous")
    assert ttl.samples.tolist() == [0, 600, 1000, 1300]
    assert ttl.sample_rate == 30000.0  # from sync_messages.txt
    rising, falling = ttl.edges()
    assert rising.tolist() == [0.0, 1000 / 30000]
    assert falling.tolist() == [600 / 30000, 1300 / 30000]
    assert read_ttl_events(rec).samples.tolist() == ttl.samples.tolist()


def test_open_ephys_06_start_from_sync_messages(tmp_path):
    write_openephys_recording(
        tmp_path / "rec", samples=[7384608 + 30, 7384608 + 60], states=[1, -1],
        start_sample=7384608, rate=30000.0,
    )  # fmt: skip
    ttl = read_ttl_events(tmp_path / "rec")
    assert (ttl.start_sample, ttl.start_source) == (7384608, "sync_messages.txt")
    assert ttl.samples.tolist() == [30, 60]


def test_open_ephys_04_binary_sync_messages(tmp_path):
    ttl_dir = tmp_path / "rec" / "events" / "Neuropix-PXI-100.0" / "TTL_1"
    ttl_dir.mkdir(parents=True)
    np.save(ttl_dir / "event_timestamps.npy", np.array([[3458112], [3458412]], dtype=np.int64))
    np.save(ttl_dir / "channel_states.npy", np.array([[1], [-1]], dtype=np.int16))  # (N, 1)
    (tmp_path / "rec" / "sync_messages.txt").write_text(
        "Software time: 123@10000000Hz\n"
        "Processor: Neuropix-PXI Id: 100 subProcessor: 0 start time: 3458012@30000Hz\n"
        "Processor: Neuropix-PXI Id: 100 subProcessor: 1 start time: 288167@2500Hz\n"
    )
    ttl = read_ttl_events(tmp_path / "rec")
    assert ttl.layout == "0.4"
    assert (ttl.start_sample, ttl.sample_rate) == (3458012, 30000.0)
    assert ttl.samples.tolist() == [100, 400]


def test_several_streams_need_a_choice(tmp_path):
    rec = tmp_path / "rec"
    write_openephys_recording(rec, samples=[1, 2], states=[1, -1])
    other = rec / "events" / "Neuropix-PXI-100.ProbeB-AP" / "TTL"
    other.mkdir(parents=True)
    for name in ("sample_numbers.npy", "states.npy"):
        np.save(other / name, np.array([5, 6]))
    with pytest.raises(DecodeError, match="several TTL event folders"):
        read_ttl_events(rec, sample_rate=30000.0)
    ttl = read_ttl_events(rec, stream="ProbeB", sample_rate=30000.0)
    assert ttl.stream == "Neuropix-PXI-100.ProbeB-AP"


def test_mismatched_lengths_name_the_file(tmp_path):
    rec = write_openephys_recording(tmp_path / "rec", samples=[1, 2, 3], states=[1, -1, 1])
    np.save(rec / "events" / STREAM / "TTL" / "states.npy", np.array([1, -1], dtype=np.int16))
    with pytest.raises(DecodeError, match=r"3 samples in sample_numbers\.npy but 2 states") as err:
        read_ttl_events(rec)
    assert err.value.file.endswith("TTL/states.npy")
    assert err.value.field == "length"


def test_no_events_and_no_rate(tmp_path):
    with pytest.raises(DecodeError, match="no Open Ephys TTL event folder"):
        read_ttl_events(tmp_path)
    rec = write_openephys_recording(
        tmp_path / "rec", samples=[1, 2], states=[1, -1], sync_messages=False
    )
    with pytest.raises(DecodeError, match="no sample rate") as err:
        read_ttl_events(rec)
    assert err.value.field == "sample_rate"
    assert read_ttl_events(rec, sample_rate=2500.0).edges()[0].tolist() == [1 / 2500]


def test_edges_from_states_checks_lengths():
    assert edges_from_states(np.array([[3], [6]]), np.array([[2], [-2]]), 2, 3.0) == (
        pytest.approx([1.0]),
        pytest.approx([2.0]),
    )
    with pytest.raises(ValueError, match="2 event samples but 1 states"):
        edges_from_states(np.array([1, 2]), np.array([1]), 1, 1.0)
