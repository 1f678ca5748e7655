"""The value rules (schemas/checks.py): what is refused, what is kept with a note, and where."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from schemas import SchemaViolation, SessionBundle, StreamSource, rows_table
from schemas.checks import MAX_TIME_S, WHOLE_SPIKES_MIN

SOURCE = "/data/s1.nwb"


def bundle(
    spike_times=(0.5, 1.25, 2.0),
    *,
    stream: bool = True,
    batch_rows: int = 2,
    **tables: pa.Table,
) -> SessionBundle:
    """One unit (id 7) with `spike_times`, plus `tables`; spikes as a stream of small batches."""
    times = np.asarray(spike_times, dtype=np.float64)
    spikes = pa.table({"unit_id": np.full(len(times), 7, np.int64), "time": times})
    data = spikes
    if stream:
        data = StreamSource(
            spikes.schema,
            spikes.num_rows,
            lambda: iter(spikes.to_batches(max_chunksize=batch_rows)),
        )
    return SessionBundle(
        "s1",
        {
            "sessions": rows_table("sessions", [{"session_id": "s1", "notes": "from the file"}]),
            "units": pa.table({"unit_id": [7], "spike_count": [len(times)]}),
            "spikes": data,
            **tables,
        },
    )


def refusal(b: SessionBundle) -> SchemaViolation:
    with pytest.raises(SchemaViolation) as info:
        b.validate(source=SOURCE).table("spikes")  # reading the stream runs its checks
    assert "\n" not in str(info.value)
    assert (info.value.file, info.value.session_id) == (SOURCE, "s1")
    return info.value


def notes_after_reading(b: SessionBundle) -> tuple[list[str], str]:
    """The bundle's notes and its sessions.notes once the spikes stream was read."""
    checked = b.validate(source=SOURCE)
    checked.table("spikes")
    return checked.notes, checked.table("sessions")["notes"][0].as_py()


def licks(*times: float) -> pa.Table:
    return pa.table({"time": list(times), "source": ["spout"] * len(times)})


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_a_non_finite_spike_time_is_refused_naming_file_table_column_value_and_unit(bad):
    error = refusal(bundle([0.5, 1.0, 1.5, bad]))
    what = {np.inf: "infinite", -np.inf: "infinite"}.get(bad, "NaN")
    assert str(error) == (
        f"{SOURCE}: spikes.time: 1 value is {what}, e.g. {bad} (unit_id=7): times must be "
        "finite seconds on the session clock; fix the source"
    )
    assert (error.table, error.column) == ("spikes", "time")


@pytest.mark.parametrize("bad", [1e300, -1e300, 1.7e9, -200_000.0])
def test_a_time_beyond_two_days_is_refused_as_not_seconds(bad):
    error = refusal(bundle([0.5, 1.0, 1.5, bad]) if bad > 0 else bundle([bad, 0.5, 1.0]))
    assert str(error) == (
        f"{SOURCE}: spikes.time: {bad:g} s (unit_id=7) is more than 172800 s (2 days) from the "
        "session start: not seconds on the session clock (milliseconds, sample indices or Unix "
        "time?); convert the source's times to seconds from the session start"
    )


def test_two_days_is_still_a_time():
    notes, _ = notes_after_reading(bundle([0.0, 0.0, 0.5, 1.0, 1.0, MAX_TIME_S]))
    assert notes == [
        f"spikes.time: values as late as {MAX_TIME_S:g} s, more than 3600 s outside the session's "
        "span (0 to 1 s, where the bulk of its times lie); kept as stored"
    ]


def test_whole_number_spike_times_are_refused_as_milliseconds_or_samples():
    times = np.arange(WHOLE_SPIKES_MIN, dtype=np.float64) * 37.0  # ms: 0 .. 3663 "s"
    error = refusal(bundle(times, batch_rows=40))
    assert str(error) == (
        f"{SOURCE}: spikes.time: all 100 values are whole numbers (e.g. 0): sample indices or "
        "milliseconds, not seconds; convert the source's times to seconds"
    )


def test_fewer_whole_spike_times_or_one_fraction_are_kept():
    times = np.arange(WHOLE_SPIKES_MIN, dtype=np.float64)
    assert notes_after_reading(bundle(times[:-1]))[0] == []
    times[-1] += 0.5
    assert notes_after_reading(bundle(times, batch_rows=40))[0] == []


def test_a_non_finite_lick_is_refused_at_validate_naming_its_source():
    with pytest.raises(SchemaViolation) as info:
        bundle(licks=licks(1.0, -np.inf)).validate(source=SOURCE)
    assert str(info.value) == (
        f"{SOURCE}: licks.time: 1 value is infinite, e.g. -inf (source='spout'): times must be "
        "finite seconds on the session clock; fix the source"
    )


def test_nan_running_speed_times_are_refused_with_their_row():
    running = pa.table({"time": [0.0, 0.1, np.nan, np.nan], "speed": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(SchemaViolation) as info:
        bundle(running_speed=running).validate(source=SOURCE)
    assert str(info.value) == (
        f"{SOURCE}: running_speed.time: 2 values are NaN, e.g. nan (row 2): times must be "
        "finite seconds on the session clock; fix the source"
    )


def test_times_before_zero_are_noted_in_the_bundle_and_the_sessions_row():
    notes, stored = notes_after_reading(bundle([-2.5, -0.25, 1.0], licks=licks(-4.0, 2.0)))
    assert notes == [
        "licks.time: 1 value before 0 s (down to -4 s); kept as stored",
        "spikes.time: 2 values before 0 s (down to -2.5 s); kept as stored",
    ]
    assert stored == "; ".join(["from the file", *notes])


def test_a_spike_within_a_millisecond_before_zero_is_not_noted():
    # aligning a probe clock places a spike at t = 0 within a probe sample of it
    assert notes_after_reading(bundle([-0.0009, 0.5, 1.0]))[0] == []


def test_stream_notes_come_once_the_stream_is_read_and_only_once():
    checked = bundle([-1.0, 0.5, 1.0]).validate(source=SOURCE)
    assert checked.notes == []
    for _ in range(2):
        checked.table("spikes")
    note = "spikes.time: 1 value before 0 s (down to -1 s); kept as stored"
    assert checked.notes == [note]
    assert checked.table("sessions")["notes"].to_pylist() == [f"from the file; {note}"]


def test_an_in_memory_spikes_table_is_checked_at_validate():
    checked = bundle([-1.0, 0.5, 1.0], stream=False).validate(source=SOURCE)
    assert checked.notes == ["spikes.time: 1 value before 0 s (down to -1 s); kept as stored"]
    with pytest.raises(SchemaViolation, match=r"spikes\.time: 1 value is infinite"):
        bundle([0.5, np.inf], stream=False).validate(source=SOURCE)


def test_trials_that_end_before_they_start_are_noted_and_kept():
    trials = pa.table(
        {
            "trial_index": [0, 1, 2, 3],
            "start_time": [0.0, 10.0, 20.0, 30.0],
            "stop_time": [9.0, 9.5, np.nan, 29.0],  # NaN: unknown stop, not before its start
        }
    )
    checked = bundle(trials=trials).validate(source=SOURCE)
    assert checked.notes == [
        "trials: 2 rows end before they start (e.g. trial_index=1: start_time 10 s, stop_time "
        "9.5 s); kept as stored"
    ]
    assert checked.table("trials")["stop_time"].to_pylist()[:2] == [9.0, 9.5]


def test_an_interval_row_without_a_start_is_noted_with_its_table_and_row():
    intervals = pa.table(
        {
            "name": ["epochs", "epochs"],
            "row": [0, 1],
            "start_time": [0.0, np.nan],
            "stop_time": [1.0, 2.0],
        }
    )
    checked = bundle(intervals=intervals).validate()
    assert checked.notes == [
        "intervals.start_time: 1 NaN (e.g. name='epochs', row=1); kept as stored (such a row "
        "holds no events in the views)"
    ]


def test_an_inf_stop_time_is_refused_although_nan_is_kept():
    trials = pa.table({"trial_index": [0], "start_time": [1.0], "stop_time": [np.inf]})
    with pytest.raises(SchemaViolation, match=r"^/data/s1\.nwb: trials\.stop_time: 1 value is"):
        bundle(trials=trials).validate(source=SOURCE)


def test_a_time_far_outside_the_session_is_noted():
    # 5,000 spikes: the bulk leaves out the 5 lowest and the 5 highest, here 0 s and 3000 s
    spikes = np.r_[np.zeros(6), np.linspace(0.0, 3000.0, 4988), np.full(6, 3000.0)]
    notes, _ = notes_after_reading(bundle(spikes, batch_rows=999, licks=licks(5.0, 50_000.0)))
    assert notes == [
        "licks.time: values as late as 50000 s, more than 3600 s outside the session's span "
        "(0 to 3000 s, where the bulk of its times lie); kept as stored"
    ]


def test_a_long_recording_beyond_the_task_is_not_far_outside():
    # three hours of spikes, a task in the first half hour: one span, nothing to note
    spikes = np.linspace(0.0, 10_800.0, 5000)
    trials = pa.table(
        {"trial_index": [0, 1, 2], "start_time": [0.0, 600.0, 1200.0], "stop_time": [5.0] * 3}
    )
    trials = trials.set_column(2, "stop_time", pa.array([500.0, 1100.0, 1800.0]))
    assert notes_after_reading(bundle(spikes, batch_rows=999, trials=trials))[0] == []


def test_a_refusal_while_streaming_names_the_batch_row_not_only_the_first_batch():
    times = [0.1, 0.2, 0.3, 0.4, 1e12]
    error = refusal(bundle(times, batch_rows=2))
    assert "1e+12 s (unit_id=7)" in str(error)


def test_sync_edges_and_probe_clock_times_are_checked_for_finiteness_only_where_they_belong():
    audit = pa.table(
        {
            "probe": ["probeA", "probeA"],
            "barcode": [1, 2],
            "probe_time": [500_000.0, 500_030.0],  # a probe clock may run long before recording
            "sync_time": [np.nan, 30.0],  # unmatched barcode: NaN by design
            "used_in_fit": [False, True],
        }
    )
    assert bundle(clock_alignment=audit).validate().notes == []
    audit = audit.set_column(2, "probe_time", pa.array([np.inf, 1.0]))
    with pytest.raises(SchemaViolation, match=r"clock_alignment\.probe_time: 1 value is infinite"):
        bundle(clock_alignment=audit).validate()


def test_a_time_series_sample_beyond_two_days_is_noted_not_refused():
    # the DANDI 000207 file's events series starts with a marker at -1.5429e9 s
    samples = pa.table(
        {
            "series": ["events"] * 3,
            "component": ["data"] * 3,
            "sample": [0, 1, 2],
            "time": [-1.5429e9, 10.0, np.nan],
            "value": [1.0, 2.0, 3.0],
        }
    )
    checked = bundle(timeseries=samples).validate(source=SOURCE)
    assert checked.notes == [
        "timeseries.time: 1 NaN (e.g. series='events', component='data', sample=2); kept as "
        "stored (such a row holds no events in the views)",
        "timeseries.time: 1 value more than 172800 s from the session start (e.g. -1.5429e+09 s "
        "at series='events', component='data', sample=0); kept as stored",
    ]
    samples = samples.set_column(3, "time", pa.array([0.0, np.inf, 1.0]))
    with pytest.raises(SchemaViolation, match=r"timeseries\.time: 1 value is infinite"):
        bundle(timeseries=samples).validate(source=SOURCE)


def test_stimulus_presentations_are_interval_rows():
    presentations = pa.table(
        {
            "name": ["flashes", "flashes"],
            "row": [0, 1],
            "start_time": [1.0, 2.0],
            "stop_time": [1.25, 1.5],
        }
    )
    checked = bundle(stimulus_presentations=presentations).validate(source=SOURCE)
    assert checked.notes == [
        "stimulus_presentations: 1 row ends before it starts (e.g. name='flashes', row=1: "
        "start_time 2 s, stop_time 1.5 s); kept as stored"
    ]
