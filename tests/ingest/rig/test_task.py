"""TaskControl HDF5 decoding against synthetic files with known truth (task_fakes.py)."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow as pa
import pytest

from ingest.rig.task import (
    MANUAL_REWARD_SOURCE,
    SYNC_LICK_SOURCE,
    TASK_LICK_SOURCE,
    TASK_REWARD_SOURCE,
    decode_task,
    dedup_licks,
)
from schemas import DecodeError, SessionBundle
from schemas.bundle import rows_table
from tests.ingest.rig.task_fakes import COUNTS_PER_REV, WHEEL_RADIUS_CM, write_task_file


@pytest.fixture
def fake(tmp_path):
    return write_task_file(tmp_path / "DynamicRouting1_123456_20240301_120000.hdf5")


def _col(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


def test_trials_on_the_task_files_own_clock(fake):
    out = decode_task(fake.path)
    t = fake.own_times
    np.testing.assert_array_equal(
        out.frame_times, np.concatenate([[0], np.cumsum(fake.frame_intervals)])
    )
    trials = out.trials
    assert trials.num_rows == fake.n_trials == 10
    assert _col(trials, "trial_index") == list(range(10))
    np.testing.assert_array_equal(trials["start_time"].to_numpy(), t[fake.start_frames])
    np.testing.assert_array_equal(trials["stop_time"].to_numpy(), t[fake.end_frames])
    np.testing.assert_array_equal(trials["stim_start_time"].to_numpy(), t[fake.stim_start_frames])
    assert _col(trials, "start_frame") == fake.start_frames.tolist()
    assert _col(trials, "stimulus") == fake.stimulus
    assert _col(trials, "block") == fake.block.tolist()
    assert _col(trials, "rewarded_stimulus") == [
        fake.block_stim_rewarded[b - 1] for b in fake.block
    ]
    assert _col(trials, "response") == fake.response.tolist()
    assert _col(trials, "rewarded") == fake.rewarded.tolist()
    assert _col(trials, "auto_rewarded") == fake.auto_rewarded.tolist()
    assert _col(trials, "quiescent_frames") == [90] * 10
    responded = ~np.isnan(fake.response_frames)
    expected_rt = np.full(10, np.nan)
    expected_rt[responded] = t[fake.response_frames[responded].astype(int)]
    np.testing.assert_array_equal(trials["response_time"].to_numpy(), expected_rt)
    assert _col(trials, "response_frame") == [
        int(f) if ok else None for f, ok in zip(fake.response_frames, responded, strict=True)
    ]
    start, stop = fake.response_window
    np.testing.assert_array_equal(
        trials["response_window_start_time"].to_numpy(), t[fake.stim_start_frames + start]
    )
    np.testing.assert_array_equal(
        trials["response_window_stop_time"].to_numpy(), t[fake.stim_start_frames + stop]
    )


def test_opto_onsets_count_from_the_stimulus_start(fake):
    trials = decode_task(fake.path).trials
    t = fake.own_times
    onset = trials["opto_onset_time"].to_numpy()
    has = ~np.isnan(fake.opto_onset_frames)
    assert np.flatnonzero(~np.isnan(onset)).tolist() == [3, 7]
    frames = (fake.stim_start_frames[has] + fake.opto_onset_frames[has]).astype(int)
    np.testing.assert_array_equal(onset[has], t[frames])
    np.testing.assert_array_equal(trials["opto_stop_time"].to_numpy()[has], t[frames] + 1.0)
    assert np.isnan(trials["opto_stop_time"].to_numpy()[~has]).all()


def test_other_trial_datasets_are_kept_as_extra_columns(fake):
    out = decode_task(fake.path)
    trials = out.trials
    assert _col(trials, "trialRepeat") == fake.extras["trialRepeat"][:10].tolist()
    np.testing.assert_array_equal(
        trials["trialVisStimContrast"].to_numpy(), fake.extras["trialVisStimContrast"][:10]
    )
    assert _col(trials, "trialGalvoVoltage") == fake.extras["trialGalvoVoltage"][:10].tolist()
    np.testing.assert_array_equal(trials["trialOptoOnsetFrame"].to_numpy(), fake.opto_onset_frames)
    assert "trialsPerBlock" not in trials.column_names
    assert any("trialsPerBlock" in n for n in out.notes)
    assert any("unfinished" in n for n in out.notes)


def test_times_come_from_sync_frame_times_when_given(fake):
    out = decode_task(fake.path, frame_times=fake.sync_times)
    s = fake.sync_times
    np.testing.assert_array_equal(out.trials["start_time"].to_numpy(), s[fake.start_frames])
    np.testing.assert_array_equal(out.licks["time"].to_numpy(), s[fake.true_lick_frames])
    np.testing.assert_array_equal(out.running_speed["time"].to_numpy(), s[1:])
    np.testing.assert_array_equal(out.frame_times, s)
    assert not any("own clock" in n for n in out.notes)
    # speed with the sync intervals: the mean over the 25 cm/s stretch stays 25 cm/s
    t, v = out.running_speed["time"].to_numpy(), out.running_speed["speed"].to_numpy()
    stretch = (t > s[0] + 35) & (t < s[0] + 65)
    assert v[stretch].mean() == pytest.approx(25.0, rel=1e-3)


def test_frame_count_mismatch_with_sync_names_file_and_field(fake):
    with pytest.raises(DecodeError) as info:
        decode_task(fake.path, frame_times=fake.sync_times[:-3])
    err = info.value
    assert err.file == str(fake.path)
    assert err.field == "frameIntervals"
    assert "7201 frames" in str(err) and "7198 vsync" in str(err)


def test_licks_are_deduplicated_within_50_ms(fake):
    out = decode_task(fake.path)
    assert len(fake.lick_frames) == 17
    np.testing.assert_array_equal(
        out.licks["time"].to_numpy(), fake.own_times[fake.true_lick_frames]
    )
    assert set(_col(out.licks, "source")) == {TASK_LICK_SOURCE}
    assert any("6 of 17 lickFrames" in n for n in out.notes)


def test_dedup_keeps_the_first_of_each_run():
    t = np.array([0.0, 0.03, 0.06, 0.09, 0.5, 0.54, 0.6, 1.0])
    # 0.0 starts a run chained through 0.09 (each step 30 ms); 0.54 continues 0.5's run;
    # 0.6 is 60 ms after 0.54: a new lick
    assert dedup_licks(t).tolist() == [True, False, False, False, True, False, True, True]
    assert dedup_licks(np.zeros(0)).tolist() == []


def test_sync_lick_line_is_preferred(fake):
    sync_licks = np.array([1.5, 0.5, 2.25])
    out = decode_task(fake.path, frame_times=fake.sync_times, lick_times_from_sync=sync_licks)
    assert _col(out.licks, "time") == [0.5, 1.5, 2.25]
    assert set(_col(out.licks, "source")) == {SYNC_LICK_SOURCE}
    assert any("3 licks from the sync lick_sensor" in n for n in out.notes)


def test_rewards_flag_auto_and_manual(fake):
    rewards = decode_task(fake.path).rewards
    t = fake.own_times
    manual = np.sort(fake.manual_reward_frames)
    all_frames = np.sort(
        np.concatenate([fake.reward_frames, manual[~np.isin(manual, fake.reward_frames)]])
    )
    np.testing.assert_array_equal(rewards["time"].to_numpy(), t[all_frames])
    assert rewards.num_rows == 6
    is_manual = np.isin(all_frames, manual)
    assert _col(rewards, "source") == [
        MANUAL_REWARD_SOURCE if m else TASK_REWARD_SOURCE for m in is_manual
    ]
    # trials 0 and 5 were auto-rewarded; trial 4 and 9 earned theirs; manual ones are null
    assert _col(rewards, "auto_rewarded") == [True, False, True, None, False, None]
    assert rewards["volume"].null_count == 6


def test_running_speed_follows_the_known_profile(fake):
    out = decode_task(fake.path)
    t = out.running_speed["time"].to_numpy()
    v = out.running_speed["speed"].to_numpy()
    assert len(t) == len(fake.own_times) - 1
    np.testing.assert_array_equal(t, fake.own_times[1:])
    steps = np.array([30.0, 70.0])
    away = np.abs(t[:, None] - steps[None, :]).min(axis=1) > 2.0
    np.testing.assert_allclose(v[away], fake.speed_at(t[away]), rtol=0, atol=1e-6)
    assert any("3 failed encoder reads" in n for n in out.notes)


def test_running_speed_unfiltered_matches_the_formula(fake):
    # the raw formula of FORMATS 2.4, from counts filled by hand: diff(count)/cpr * 2 pi r / dt
    counts = fake.counts.copy()
    bad = np.isnan(counts)
    counts[bad] = np.interp(fake.own_times[bad], fake.own_times[~bad], counts[~bad])
    raw = np.diff(counts) / COUNTS_PER_REV * 2 * np.pi * WHEEL_RADIUS_CM / fake.frame_intervals
    inner = slice(200, 1700)  # within the 0 cm/s stretch, including the dropped frame
    v = decode_task(fake.path).running_speed["speed"].to_numpy()
    np.testing.assert_allclose(v[inner], raw[inner], atol=1e-6)
    np.testing.assert_allclose(raw[2200:3900], 25.0, rtol=1e-9)


@pytest.mark.parametrize("name", ["frameIntervals", "trialStartFrame"])
def test_missing_required_dataset_is_a_decode_error(tmp_path, name):
    truth = write_task_file(tmp_path / "task.hdf5", omit=(name,))
    with pytest.raises(DecodeError) as info:
        decode_task(truth.path)
    assert info.value.field == name
    assert info.value.file == str(truth.path)


def test_missing_optional_datasets_give_empty_tables_and_notes(tmp_path):
    omit = ("lickFrames", "rewardFrames", "manualRewardFrames", "rotaryEncoderCount", "trialBlock")
    truth = write_task_file(tmp_path / "task.hdf5", omit=omit)
    out = decode_task(truth.path)
    assert out.trials.num_rows == 10
    assert "block" not in out.trials.column_names
    assert "rewarded_stimulus" not in out.trials.column_names
    assert out.licks.num_rows == out.rewards.num_rows == out.running_speed.num_rows == 0
    notes = " ".join(out.notes)
    assert "no lickFrames" in notes and "no rewardFrames" in notes
    assert "no digital rotary encoder" in notes


def test_missing_trial_end_frames_end_trials_at_the_next_start(tmp_path):
    truth = write_task_file(tmp_path / "task.hdf5", omit=("trialEndFrame",))
    out = decode_task(truth.path)
    # without trialEndFrame every trialStartFrame entry is a trial (11 here)
    assert out.trials.num_rows == 11
    starts = out.trials["start_frame"].to_numpy()
    np.testing.assert_array_equal(out.trials["stop_frame"].to_numpy()[:-1], starts[1:])
    assert out.trials["stop_frame"].to_numpy()[-1] == len(truth.own_times) - 1


def test_text_stored_as_variable_length_strings(tmp_path):
    truth = write_task_file(tmp_path / "task.hdf5", text_as_bytes=False)
    out = decode_task(truth.path)
    assert _col(out.trials, "stimulus") == truth.stimulus
    assert out.metadata["rig"] == "NP3"


def test_frame_index_beyond_the_last_frame_is_a_decode_error(tmp_path):
    truth = write_task_file(tmp_path / "task.hdf5")
    with h5py.File(truth.path, "r+") as h5:
        del h5["lickFrames"]
        h5["lickFrames"] = np.array([10, 99999])
    with pytest.raises(DecodeError) as info:
        decode_task(truth.path)
    assert info.value.field == "lickFrames"
    assert "99999" in str(info.value)


def test_a_non_hdf5_file_is_a_decode_error(tmp_path):
    path = tmp_path / "task.hdf5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(DecodeError):
        decode_task(path)


def test_decoded_tables_validate_as_a_bundle(fake):
    out = decode_task(fake.path, frame_times=fake.sync_times)
    bundle = SessionBundle(
        "fake-session",
        {
            "sessions": rows_table("sessions", [{"session_id": "fake-session"}]),
            "trials": out.trials,
            "licks": out.licks,
            "rewards": out.rewards,
            "running_speed": out.running_speed,
        },
    ).validate()
    assert bundle.num_rows("trials") == 10
    assert bundle.table("trials").schema.field("trialGalvoVoltage").type == pa.list_(pa.float64())
    assert bundle.num_rows("running_speed") == 7200


def test_decoding_twice_gives_equal_tables(fake):
    a, b = decode_task(fake.path), decode_task(fake.path)
    for name in ("trials", "licks", "rewards", "running_speed"):
        assert _ipc(getattr(a, name)) == _ipc(getattr(b, name))  # NaN-safe, bit for bit


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_sync_licks_without_sync_frame_times_is_refused(fake):
    with pytest.raises(ValueError, match="frame_times"):
        decode_task(fake.path, lick_times_from_sync=np.array([1.0]))


def test_consumed_trial_dataset_of_another_length_is_noted(tmp_path):
    truth = write_task_file(tmp_path / "task.hdf5")
    with h5py.File(truth.path, "r+") as h5:
        del h5["trialStim"]
        h5["trialStim"] = np.array([b"vis1"] * 3)
    out = decode_task(truth.path)
    assert "stimulus" not in out.trials.column_names
    assert any("['trialStim'] are not one entry per trial" in n for n in out.notes)
