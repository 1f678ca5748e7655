"""Conforming decoder output to the specs: casts, extras, keys, order, cross-table checks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from schemas import TABLES, SchemaViolation, SessionBundle, StreamSource, rows_table
from schemas.conform import conform_batches, conform_table, normalized_type


def test_declared_columns_are_cast_missing_optional_ones_filled_and_extras_kept():
    units = pa.table(
        {
            "unit_id": pa.array([2, 1], pa.int32()),
            "spike_count": pa.array([5, 6], pa.uint16()),
            "snr": pa.array([1.5, np.nan], pa.float32()),
            "isi violations": pa.array([0.1, 0.2]),
            "labels": pa.array([[1, 2], []], pa.list_(pa.uint8())),
        }
    )
    out = conform_table(TABLES["units"], units, "s1")
    assert out.column_names[: len(TABLES["units"].columns)] == list(TABLES["units"].column_names)
    assert out.column_names[-3:] == ["snr", "isi_violations", "labels"]
    assert out.schema.field("unit_id").type == pa.int64()
    assert out.schema.field("snr").type == pa.float64()
    assert out.schema.field("labels").type == pa.list_(pa.int64())
    assert out.schema.field("isi_violations").metadata[b"source_name"] == b"isi violations"
    assert out.column("unit_id").to_pylist() == [1, 2]  # sorted by the spec's order
    assert out.column("session_id").to_pylist() == ["s1", "s1"]
    assert out.column("quality").null_count == 2


def test_closed_tables_refuse_unknown_columns():
    spikes = pa.table({"unit_id": [1], "time": [0.5], "depth": [3.0]})
    with pytest.raises(SchemaViolation, match=r"spikes: unknown columns \['depth'\]"):
        conform_table(TABLES["spikes"], spikes, "s1")


def test_required_columns_must_be_present_and_not_null():
    with pytest.raises(SchemaViolation, match=r"units\.spike_count: required column is missing"):
        conform_table(TABLES["units"], pa.table({"unit_id": [1]}), "s1")
    with pytest.raises(SchemaViolation, match=r"spikes\.time: 1 null values in a required column"):
        conform_table(TABLES["spikes"], pa.table({"unit_id": [1], "time": [None]}), "s1")


def test_unsafe_casts_name_the_table_and_column():
    with pytest.raises(SchemaViolation, match=r"units\.unit_id: cannot store double as int64"):
        conform_table(TABLES["units"], pa.table({"unit_id": [1.5], "spike_count": [1]}), "s1")


def test_duplicate_keys_are_refused():
    units = pa.table({"unit_id": [1, 1], "spike_count": [0, 0]})
    with pytest.raises(SchemaViolation, match=r"units: 1 duplicate keys \('unit_id',\)"):
        conform_table(TABLES["units"], units, "s1")


def test_rows_of_another_session_are_refused():
    units = pa.table({"session_id": ["s2"], "unit_id": [1], "spike_count": [0]})
    with pytest.raises(SchemaViolation, match="another session id"):
        conform_table(TABLES["units"], units, "s1")


def test_extra_names_that_collide_after_sanitising_are_refused():
    trials = pa.table(
        {"trial_index": [0], "start_time": [0.0], "stop_time": [1.0], "a b": [1], "a_b": [2]}
    )
    with pytest.raises(SchemaViolation, match="collides"):
        conform_table(TABLES["trials"], trials, "s1")


@pytest.mark.parametrize(
    ("arrow", "stored"),
    [
        (pa.uint8(), pa.int64()),
        (pa.float16(), pa.float64()),
        (pa.large_string(), pa.string()),
        (pa.binary(), pa.string()),
        (pa.null(), pa.string()),
        (pa.list_(pa.float32(), 3), pa.list_(pa.float64())),
        (pa.timestamp("ns"), pa.timestamp("us", tz="UTC")),
        (pa.struct([("a", pa.int8())]), None),
    ],
)
def test_extra_types_normalise_to_a_small_set(arrow, stored):
    assert normalized_type(arrow) == stored


def test_streams_are_checked_for_order_across_batch_boundaries():
    first = pa.record_batch({"unit_id": [1, 2], "time": [0.1, 0.2]})
    second = pa.record_batch({"unit_id": [1], "time": [0.3]})
    batches = conform_batches(TABLES["spikes"], [first, second], "s1")
    assert next(batches).num_rows == 2
    with pytest.raises(SchemaViolation, match="not sorted"):
        next(batches)


def test_nan_spike_times_are_refused_in_streams():
    batch = pa.record_batch({"unit_id": [1, 1], "time": [0.1, float("nan")]})
    with pytest.raises(SchemaViolation, match="not sorted"):
        list(conform_batches(TABLES["spikes"], [batch], "s1"))


def _bundle(units: pa.Table, spikes: pa.Table, stream: bool) -> SessionBundle:
    data = (
        StreamSource(
            spikes.schema, spikes.num_rows, lambda: iter(spikes.to_batches(max_chunksize=2))
        )
        if stream
        else spikes
    )
    sessions = rows_table("sessions", [{"session_id": "s1"}])
    return SessionBundle("s1", {"sessions": sessions, "units": units, "spikes": data})


def test_spike_counts_must_match_units_spike_count():
    units = pa.table({"unit_id": [1, 2], "spike_count": [2, 1]})
    spikes = pa.table({"unit_id": [1, 2, 2], "time": [0.1, 0.2, 0.3]})
    message = r"unit 1: 1 spikes, spike_count 2"
    with pytest.raises(SchemaViolation, match=message):  # whole table: at validate()
        _bundle(units, spikes, stream=False).validate()
    streamed = _bundle(units, spikes, stream=True).validate()  # totals agree (3 == 3)
    with pytest.raises(SchemaViolation, match=message):  # stream: when read, before commit
        streamed.table("spikes")


def test_spikes_of_unknown_units_are_refused():
    units = pa.table({"unit_id": [1], "spike_count": [2]})
    spikes = pa.table({"unit_id": [1, 9], "time": [0.1, 0.2]})
    message = r"spikes name units that are not in units: \[9\]"
    with pytest.raises(SchemaViolation, match=message):
        _bundle(units, spikes, stream=False).validate()
    with pytest.raises(SchemaViolation, match=message):
        _bundle(units, spikes, stream=True).validate().table("spikes")


def test_a_bundle_needs_one_sessions_row():
    with pytest.raises(SchemaViolation, match="exactly one sessions row"):
        SessionBundle("s1", {"units": pa.table({"unit_id": [1], "spike_count": [0]})}).validate()


def test_unknown_tables_are_refused():
    with pytest.raises(SchemaViolation, match="unknown tables"):
        SessionBundle("s1", {"neurons": pa.table({"a": [1]})})


def test_the_equality_helper_treats_nan_as_equal_and_still_sees_differences():
    from tests.helpers import arrays_equal

    nan = float("nan")
    assert arrays_equal(pa.array([1.0, nan]), pa.array([1.0, nan]))
    assert arrays_equal(pa.array([[nan], None]), pa.array([[nan], None]))
    assert not arrays_equal(pa.array([1.0, nan]), pa.array([1.0, 2.0]))
    assert not arrays_equal(pa.array([1.0, None]), pa.array([1.0, nan]))
    assert not arrays_equal(pa.array([1, 2]), pa.array([1.0, 2.0]))
