"""docs/cookbook.md is reproducible and right: every SQL / polars pair gives the same rows, on
`nplake demo`'s lake and on a lake of synthetic and real sessions, and every printed answer is
what its documented lake gives (rewrite them with `python -m tests.docs.cookbook`).

Every test that asks a lake is marked slow (together about half a minute, most of it building
the two lakes): run them with `pytest -m slow`."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.docs.cookbook import (
    COOKBOOK,
    Question,
    ask_polars,
    ask_sql,
    build_demo_lake,
    parse,
    render,
)
from tests.queries.lakes import shared_lake

SETUP, QUESTIONS = parse(COOKBOOK.read_text())


def _name(question: Question) -> str:
    return question.name


REGENERATE = "the printed answer is stale: run `python -m tests.docs.cookbook`"


@pytest.fixture(scope="module")
def demo_uri(tmp_path_factory) -> str:
    return build_demo_lake(tmp_path_factory.mktemp("cookbook"))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


def _same(sql: pl.DataFrame, polars: pl.DataFrame, what: str) -> None:
    """Same columns, rows and order; integers of any width alike, floats to rounding."""
    assert sql.columns == polars.columns, what
    assert_frame_equal(sql, polars, check_dtypes=False, rel_tol=1e-9, abs_tol=1e-12)


def test_the_cookbook_has_ten_questions_a_setup_and_the_real_session_notes():
    names = [q.name for q in QUESTIONS]
    assert [n for n in names if n.startswith("q")] == [f"q{i}" for i in range(1, 11)]
    assert len(set(names)) == len(names)
    assert {"alm-trials", "alm-pole-in", "alm-response"} <= set(names)
    assert "import lake" in SETUP and "from lake.presets import preset_expr" in SETUP
    for q in QUESTIONS:
        assert "out =" in q.python, q.name
        assert q.session is None or f"'{q.session}'" in q.sql, q.name


@pytest.mark.slow
@pytest.mark.parametrize("question", [q for q in QUESTIONS if q.lake == "demo"], ids=_name)
def test_demo_lake_answers_agree_and_are_the_printed_ones(demo_uri, question):
    sql = ask_sql(demo_uri, question)
    polars = ask_polars(demo_uri, SETUP, question)
    _same(sql, polars, question.name)
    assert sql.height > 0, question.name
    assert render(sql) == question.printed, f"{question.name}: {REGENERATE}"


@pytest.mark.slow
@pytest.mark.parametrize("question", [q for q in QUESTIONS if q.lake == "realdata"], ids=_name)
def test_real_session_answers_are_the_printed_ones(shared, question):
    sql = ask_sql(shared.lake.uri, question)
    assert sql.height > 0, question.name
    assert render(sql) == question.printed, f"{question.name}: {REGENERATE}"


@pytest.mark.slow
@pytest.mark.parametrize("question", QUESTIONS, ids=_name)
def test_sql_and_polars_agree_on_synthetic_and_real_sessions(shared, question):
    # a question about one session is asked about every session of this lake (ask=synthetic:
    # about its synthetic sessions, when the question needs what only they have)
    sessions = sorted(shared.files) if question.session else [None]
    if question.options.get("ask") == "synthetic":
        sessions = list(shared.synthetic)
    for session_id in sessions:
        sql = ask_sql(shared.lake.uri, question, session_id)
        polars = ask_polars(shared.lake.uri, SETUP, question, session_id)
        _same(sql, polars, f"{question.name} ({session_id})")


@pytest.mark.slow
def test_q6_counts_the_licks_of_trials_without_a_stop_time(shared):
    # the NaN trap of issue 5: polars' `time < stop_time` is true for a NaN stop_time
    (q6,) = [q for q in QUESTIONS if q.name == "q6"]
    answer = ask_polars(shared.lake.uri, SETUP, q6)
    alm = answer.filter(pl.col("session_id") == "anm369963_2017-02-28_2")
    assert alm["licks_per_trial"].item() == pytest.approx(1796 / 178)
    assert alm["trials_without_change"].item() == 178  # no change_time column at all
