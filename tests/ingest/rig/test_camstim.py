"""Camstim pickle decoding: the real Allen change-detection file, small synthetic ones, security."""

from __future__ import annotations

import gzip
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from ingest.base import DecodeOptions
from ingest.rig import _wheel
from ingest.rig.camstim import LICK_SOURCE, RUNNING_RADIUS_CM, decode_camstim
from schemas import DecodeError, SessionBundle
from schemas.bundle import rows_table

N_FRAMES = 270_072  # len(intervalsms) + 1 frame flips
FIELD = "items.behavior.intervalsms"


@pytest.fixture(scope="module")
def pkl(realdata) -> Path:
    return realdata / "behavior" / "camstim_change_detection_example.pkl.gz"


@pytest.fixture(scope="module")
def raw(pkl) -> dict:
    """The behaviour dict, loaded independently of the decoder."""
    with gzip.open(pkl) as f:
        return pickle.load(f, encoding="latin1")["items"]["behavior"]


@pytest.fixture(scope="module")
def own_times(raw) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(raw["intervalsms"])]) / 1000.0


@pytest.fixture(scope="module")
def decoded(pkl):
    return decode_camstim(pkl, options=DecodeOptions(pickles=(pkl,)))


def _event_frame(trial: dict, name: str) -> int | None:
    return next((e[3] for e in trial["events"] if e[0] == name), None)


# --------------------------------------------------------------------------- the real file


def test_real_file_counts(decoded, raw):
    assert len(raw["intervalsms"]) == 270_071
    assert len(decoded.frame_times) == N_FRAMES
    assert decoded.trials.num_rows == 953
    assert decoded.licks.num_rows == 2908
    assert decoded.rewards.num_rows == 86
    assert decoded.running_speed.num_rows == N_FRAMES - 1 == 270_071


def test_real_file_times_are_on_its_own_frame_clock(decoded, own_times):
    np.testing.assert_array_equal(decoded.frame_times, own_times)
    assert own_times[-1] == pytest.approx(4505.061910329852, abs=1e-9)
    assert any("own clock" in n for n in decoded.notes)


def test_real_file_licks(decoded, raw, own_times):
    frames = np.asarray(raw["lick_sensors"][0]["lick_events"])
    times = decoded.licks["time"].to_numpy()
    np.testing.assert_array_equal(times, own_times[frames])
    assert times[0] == pytest.approx(2.9854761357419193, abs=1e-12)  # frame 179
    assert times[-1] == pytest.approx(4253.019696108066, abs=1e-9)  # frame 254961
    assert set(decoded.licks["source"].to_pylist()) == {LICK_SOURCE}


def test_real_file_trial_bounds_and_changes(decoded, raw, own_times):
    trials = decoded.trials
    starts = np.array([_event_frame(t, "trial_start") for t in raw["trial_log"]])
    ends = np.array([_event_frame(t, "trial_end") for t in raw["trial_log"]])
    np.testing.assert_array_equal(trials["start_time"].to_numpy(), own_times[starts])
    np.testing.assert_array_equal(trials["stop_time"].to_numpy(), own_times[ends])
    assert trials["start_time"][0].as_py() == pytest.approx(299.98110374761745, abs=1e-9)
    assert trials["stop_time"][952].as_py() == pytest.approx(3904.581213131547, abs=1e-9)
    changed = [_event_frame(t, "stimulus_changed") for t in raw["trial_log"]]
    has_change = np.array([f is not None for f in changed])
    assert has_change.sum() == 99
    change_time = trials["change_time"].to_numpy()
    assert np.array_equal(~np.isnan(change_time), has_change)
    frames = np.array([f for f in changed if f is not None])
    np.testing.assert_array_equal(change_time[has_change], own_times[frames])
    assert (~np.isnan(trials["sham_change_time"].to_numpy())).sum() == 16
    assert trials["change_image_name"].null_count == 953 - 99
    assert trials["change_image_name"][952].as_py() == "im085"
    assert trials["initial_image_name"][952].as_py() == "im061"
    assert trials["initial_image_name"][0].as_py() == "im065"


def test_real_file_initial_images_agree_between_set_log_and_changes(raw):
    # the set_log image at trial start equals the change's from-image on every change trial
    log = raw["stimuli"]["images"]["set_log"]
    log_frames = np.array([e[3] for e in log])
    for trial in raw["trial_log"]:
        if trial["stimulus_changes"]:
            start = _event_frame(trial, "trial_start")
            shown = log[np.searchsorted(log_frames, start, side="right") - 1][1]
            assert shown == trial["stimulus_changes"][0][0][1]


def test_real_file_outcomes_and_params(decoded):
    trials = decoded.trials
    counts = {c: pc.sum(trials[c]).as_py() for c in ("hit", "miss", "false_alarm")}
    assert counts == {"hit": 81, "miss": 18, "false_alarm": 6}
    assert pc.sum(trials["correct_reject"]).as_py() == 13
    assert pc.sum(trials["aborted"]).as_py() == 838
    assert pc.sum(trials["auto_rewarded"]).as_py() == 5
    assert pc.sum(trials["success"]).as_py() == 94  # hits + correct rejections
    assert pc.sum(trials["catch"]).as_py() == 171
    assert pc.sum(trials["auto_reward"]).as_py() == 82
    assert pc.sum(trials["trial_params_change_time"]).as_py() == 5747
    # hit + false alarm + early response: one responded lick per trial
    assert (~np.isnan(trials["response_time"].to_numpy())).sum() == 81 + 6 + 838
    assert trials["cumulative_rewards"][952].as_py() == 86


def test_real_file_lick_times_per_trial(decoded, raw, own_times):
    lick_lists = decoded.trials["lick_times"].to_pylist()
    assert sum(len(x) for x in lick_lists) == 2825  # 83 of 2908 licks fall between trials
    expected = [own_times[[lick[1] for lick in t["licks"]]].tolist() for t in raw["trial_log"]]
    assert lick_lists == expected
    starts = decoded.trials["start_time"].to_numpy()
    stops = decoded.trials["stop_time"].to_numpy()
    for licks, a, b in zip(lick_lists, starts, stops, strict=True):
        assert all(a <= t <= b for t in licks)


def test_real_file_rewards(decoded, raw, own_times):
    rewards = decoded.rewards
    logged = [(r, t["trial_params"]["auto_reward"]) for t in raw["trial_log"] for r in t["rewards"]]
    np.testing.assert_array_equal(rewards["time"].to_numpy(), own_times[[r[2] for r, _ in logged]])
    volumes = rewards["volume"].to_numpy()
    assert math.fsum(volumes) == pytest.approx(0.592, abs=1e-12)
    assert math.fsum(volumes) == pytest.approx(raw["rewards"][0]["volume_dispensed"], abs=1e-12)
    auto = np.array(rewards["auto_rewarded"].to_pylist())
    assert auto.sum() == 5
    assert set(volumes[auto]) == {0.005}
    assert set(volumes[~auto]) == {0.007}
    assert volumes.tolist() == [r[0] for r, _ in logged]
    # rewards[0]['reward_times'] (the solenoid's own log) is one frame LATER than trial_log for
    # the 81 earned rewards and the same for the 5 auto rewards; the decoder uses trial_log,
    # as the Allen SDK does
    lag = raw["rewards"][0]["reward_times"][:, 1].astype(int) - [r[2] for r, _ in logged]
    assert lag.tolist() == [0 if a else 1 for a in auto]


def test_real_file_running_speed(decoded, raw, own_times):
    assert pytest.approx(6.5 * 2.54 / 2 * 2 / 3) == RUNNING_RADIUS_CM  # 5.5033 cm
    t = decoded.running_speed["time"].to_numpy()
    v = decoded.running_speed["speed"].to_numpy()
    np.testing.assert_array_equal(t, own_times[1:])
    dx = np.asarray(raw["encoders"][0]["dx"], dtype=np.float64)
    assert len(dx) == N_FRAMES + 1  # one read more than frames: the last is dropped
    unfiltered = dx[1:N_FRAMES] / 360.0 * 2 * np.pi * 5.503333333333333 / np.diff(own_times)
    fs = 1.0 / np.median(np.diff(own_times))
    np.testing.assert_allclose(
        v, _wheel.lowpass_zero_phase(unfiltered, cutoff_hz=4.0, fs=fs), atol=1e-9
    )
    assert v.mean() == pytest.approx(unfiltered.mean(), rel=1e-4)  # the filter keeps DC
    assert int(np.argmax(v)) == 168120
    assert v.max() == pytest.approx(22.50203390533185, abs=1e-6)
    assert v[100000] == pytest.approx(0.8838046987162895, abs=1e-6)
    assert any("one read more than frames" in n for n in decoded.notes)


def test_real_file_metadata(decoded):
    assert decoded.metadata["mouse_id"] == "457841"
    assert decoded.metadata["rig_id"] == "BEH.D"
    assert decoded.metadata["start_time"] == "2019-06-20T11:18:15.777000"


def test_real_file_validates_as_a_bundle(decoded):
    bundle = SessionBundle(
        "camstim-example",
        {
            "sessions": rows_table("sessions", [{"session_id": "camstim-example"}]),
            "trials": decoded.trials,
            "licks": decoded.licks,
            "rewards": decoded.rewards,
            "running_speed": decoded.running_speed,
        },
    ).validate()
    assert bundle.num_rows("trials") == 953
    assert bundle.table("trials").column("lick_times").type.value_type.bit_width == 64


def test_sync_frame_times_are_used_and_checked(pkl, own_times):
    options = DecodeOptions(pickles=(pkl,))
    sync = 3.0 + own_times * (1 + 1e-5)
    out = decode_camstim(pkl, options=options, frame_times=sync)
    assert out.trials["start_time"][0].as_py() == sync[17984]
    np.testing.assert_array_equal(out.running_speed["time"].to_numpy(), sync[1:])
    with pytest.raises(DecodeError) as info:
        decode_camstim(pkl, options=options, frame_times=sync[:-1])
    assert info.value.field == FIELD
    assert info.value.file == str(pkl)
    assert "270072 frames" in str(info.value) and "270071 vsync" in str(info.value)


# --------------------------------------------------------------------------- security


class _Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("compress", [False, True])
def test_unnamed_pickle_is_refused_and_never_unpickled(tmp_path, compress):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.behavior.pkl"
    data = pickle.dumps(_Payload(marker), protocol=2)
    path.write_bytes(gzip.compress(data) if compress else data)
    other = tmp_path / "other.pkl"
    for options in (DecodeOptions(), DecodeOptions(pickles=(other,))):
        with pytest.raises(DecodeError) as info:
            decode_camstim(path, options=options)
        assert info.value.file == str(path)
        assert "pickles=" in str(info.value) and str(path) in str(info.value)
        assert not marker.exists()
    # control: the payload is real; once the user names the file it runs
    with pytest.raises(DecodeError, match="not a camstim behaviour pickle"):
        decode_camstim(path, options=DecodeOptions(pickles=(path,)))
    assert marker.is_dir()


def test_a_damaged_pickle_is_a_decode_error(tmp_path):
    path = tmp_path / "broken.pkl"
    path.write_bytes(gzip.compress(b"\x80\x02}q\x00(X"))
    with pytest.raises(DecodeError, match="cannot unpickle"):
        decode_camstim(path, options=DecodeOptions(pickles=(path,)))


# --------------------------------------------------------------------------- synthetic files


def _tiny(n_frames: int = 601, **behavior) -> dict:
    """A minimal camstim-like dict: 10 ms frames, two trials, licks, rewards, an encoder."""
    trial = {
        "index": 0,
        "events": [["trial_start", "", 1.0, 10], ["trial_end", "", 3.0, 200]],
        "trial_params": {"catch": False, "auto_reward": True, "change_time": 3},
        "rewards": [(0.005, 2.0, 150)],
        "licks": [(1.5, 120), (1.6, 130)],
        "stimulus_changes": [(("a", "im1"), ("b", "im2"), 1.4, 100)],
        "success": False,
    }
    second = {
        "index": 1,
        "events": [
            ["trial_start", "", 4.0, 300],
            ["early_response", "", 4.5, 350],
            ["trial_end", "", 5.0, 400],
        ],
        "trial_params": {"catch": True, "auto_reward": False, "extra": {"nested": 1}},
        "rewards": [],
        "licks": [(4.5, 350)],
        "stimulus_changes": [],
        "success": False,
    }
    content = {
        "intervalsms": np.full(n_frames - 1, 10.0),
        "trial_log": [trial, second],
        "lick_sensors": [{"lick_events": [120, 130, 350, 500]}],
        "encoders": [{"dx": np.full(n_frames, 0.36)}],
        "rewards": [{"reward_count": 2}],
        "stimuli": {"images": {"set_log": [("Image", "im0", 0.0, 0), ("Image", "im2", 1.4, 100)]}},
        "params": {"mouse_id": "m1"},
    }
    content.update(behavior)
    return {"items": {"behavior": content}}


def _write(tmp_path: Path, data: dict, name: str = "tiny.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(data, protocol=2))  # uncompressed: the gzip sniff says no
    return path


def test_plain_pickle_and_derived_columns(tmp_path):
    path = _write(tmp_path, _tiny())
    out = decode_camstim(path, options=DecodeOptions(pickles=(path,)))
    trials = out.trials
    assert trials["start_time"].to_pylist() == pytest.approx([0.1, 3.0])
    assert trials["stop_time"].to_pylist() == pytest.approx([2.0, 4.0])
    change = trials["change_time"].to_numpy()
    assert change[0] == pytest.approx(1.0) and np.isnan(change[1])  # from stimulus_changes
    assert trials["initial_image_name"].to_pylist() == ["im1", "im2"]  # 2nd from set_log
    assert trials["change_image_name"].to_pylist() == ["im2", None]
    assert trials["reward_time"].to_pylist()[0] == pytest.approx(1.5)
    assert trials["reward_volume"].to_pylist() == [0.005, 0.0]
    assert trials["aborted"].to_pylist() == [False, False]
    assert trials["response_time"].to_pylist()[1] == pytest.approx(3.5)
    assert trials["trial_params_change_time"].to_pylist() == [3, None]
    assert trials["extra"].to_pylist() == [None, "{'nested': 1}"]
    assert trials["lick_times"].to_pylist() == [pytest.approx([1.2, 1.3]), pytest.approx([3.5])]
    assert out.licks["time"].to_pylist() == pytest.approx([1.2, 1.3, 3.5, 5.0])
    assert out.rewards["auto_rewarded"].to_pylist() == [True]
    assert out.rewards["volume"].to_pylist() == [0.005]
    notes = " ".join(out.notes)
    assert "rewards[0] counts 2 rewards, trial_log 1" in notes
    assert "stored as text" in notes
    # 0.36 degrees per 10 ms frame = 0.1 rev/s at the Allen running radius
    speed = out.running_speed["speed"].to_numpy()
    np.testing.assert_allclose(speed, 0.1 * 2 * np.pi * RUNNING_RADIUS_CM, rtol=1e-9)
    assert len(speed) == 600


def test_missing_encoder_gives_an_empty_running_table(tmp_path):
    path = _write(tmp_path, _tiny(encoders=[]))
    out = decode_camstim(path, options=DecodeOptions(pickles=(path,)))
    assert out.running_speed.num_rows == 0
    assert any("no wheel encoder" in n for n in out.notes)


def test_encoder_length_mismatch_is_a_decode_error(tmp_path):
    path = _write(tmp_path, _tiny(encoders=[{"dx": np.zeros(500)}]))
    with pytest.raises(DecodeError) as info:
        decode_camstim(path, options=DecodeOptions(pickles=(path,)))
    assert info.value.field == "items.behavior.encoders[0].dx"
    assert "500 encoder reads for 601 frames" in str(info.value)


def test_missing_intervals_is_a_decode_error(tmp_path):
    data = _tiny()
    del data["items"]["behavior"]["intervalsms"]
    path = _write(tmp_path, data)
    with pytest.raises(DecodeError) as info:
        decode_camstim(path, options=DecodeOptions(pickles=(path,)))
    assert info.value.field == FIELD


def test_trial_without_start_event_is_a_decode_error(tmp_path):
    data = _tiny()
    data["items"]["behavior"]["trial_log"][1]["events"] = [["trial_end", "", 5.0, 400]]
    path = _write(tmp_path, data)
    with pytest.raises(DecodeError, match="trial 1 has no 'trial_start' event"):
        decode_camstim(path, options=DecodeOptions(pickles=(path,)))


def test_lick_frame_beyond_the_last_frame_is_a_decode_error(tmp_path):
    path = _write(tmp_path, _tiny(lick_sensors=[{"lick_events": [10, 9999]}]))
    with pytest.raises(DecodeError) as info:
        decode_camstim(path, options=DecodeOptions(pickles=(path,)))
    assert info.value.field == "items.behavior.lick_sensors[0].lick_events"


def test_malformed_trial_is_a_decode_error_naming_the_trial(tmp_path):
    data = _tiny()
    data["items"]["behavior"]["trial_log"][1]["rewards"] = [(0.005,)]
    path = _write(tmp_path, data)
    with pytest.raises(DecodeError) as info:
        decode_camstim(path, options=DecodeOptions(pickles=(path,)))
    assert info.value.field == "items.behavior.trial_log[1]"
