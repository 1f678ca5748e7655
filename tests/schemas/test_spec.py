"""Table specs: invariants every table keeps, models and docs derived from them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pydantic
import pytest

from schemas import TABLES, InvalidSessionId, validate_session_id
from schemas.docs import render_tables_markdown

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(TABLES))
def test_every_table_has_a_required_string_session_id_first_and_is_partitioned_by_it(name):
    spec = TABLES[name]
    first = spec.columns[0]
    assert (first.name, first.type, first.nullable) == ("session_id", pa.string(), False)
    assert spec.partition_by == ("session_id",)
    assert spec.key[0] == "session_id"
    for column in spec.columns:
        assert column.description, f"{name}.{column.name} has no description"
        field = spec.arrow_schema.field(column.name)
        assert field.metadata[b"unit"].decode() == column.unit


def test_time_columns_are_seconds_and_positions_micrometres():
    for spec in TABLES.values():
        for column in spec.columns:
            is_time = column.name == "time" or column.name.endswith("_time")
            if is_time and column.type == pa.float64():
                assert column.unit == "s", f"{spec.name}.{column.name}"
            if column.name.startswith(("ccf_", "probe_horizontal", "probe_vertical")):
                assert column.unit == "µm", f"{spec.name}.{column.name}"


def test_fixed_names_the_world_uses():
    assert TABLES["spikes"].column_names == ("session_id", "unit_id", "time", "amplitude")
    assert TABLES["units"].column_names[:2] == ("session_id", "unit_id")


def test_row_models_validate_session_ids_and_forbid_unknown_columns_in_closed_tables():
    model = TABLES["sessions"].row_model
    assert model.model_validate({"session_id": "abc-1.2_x"}).session_id == "abc-1.2_x"
    with pytest.raises(pydantic.ValidationError):
        model.model_validate({"session_id": "bad id"})
    with pytest.raises(pydantic.ValidationError):
        model.model_validate({"session_id": "ok", "no_such_column": 1})
    probes = TABLES["probes"].row_model  # open table: extras allowed
    assert probes.model_validate({"session_id": "ok", "probe": "A", "extra": 1}).extra == 1


@pytest.mark.parametrize(
    "bad", ["", "a b", "../etc", "x'; DROP TABLE units; --", "-leading", "a" * 129, "a..b", None, 7]
)
def test_session_ids_that_could_reach_predicates_or_paths_are_refused(bad):
    with pytest.raises(InvalidSessionId):
        validate_session_id(bad)


@pytest.mark.parametrize("good", ["1064644573", "sub-4_ses-4", "anm369963_2017-02-28_2", "a" * 128])
def test_real_session_ids_pass(good):
    assert validate_session_id(good) == good


def test_docs_tables_md_is_generated_from_the_specs():
    on_disk = (REPO / "docs" / "tables.md").read_text()
    assert on_disk == render_tables_markdown(), "run: python -m schemas.docs > docs/tables.md"
