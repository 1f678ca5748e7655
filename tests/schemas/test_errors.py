"""The error hierarchy: messages name where the problem is, on one line."""

from __future__ import annotations

from schemas import DecodeError, SchemaViolation


def test_errors_are_one_line_whatever_a_library_quotes():
    error = DecodeError('CSV parse error: 4,"LP\n5,"DG"', file="ccf_regions.csv", field="row")
    assert str(error) == 'ccf_regions.csv: row: CSV parse error: 4,"LP\\n5,"DG"'
    assert error.reason == 'CSV parse error: 4,"LP\\n5,"DG"'
    assert str(SchemaViolation("a\nb", table="units")) == "units: a\\nb"


def test_a_schema_violation_names_file_and_session_when_known():
    error = SchemaViolation("bad", table="spikes", column="time", file="x.nwb", session_id="s1")
    assert (str(error), error.session_id) == ("x.nwb: spikes.time: bad", "s1")
