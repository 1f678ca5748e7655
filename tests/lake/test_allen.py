"""lake.allen: AllenSDK names over the lake, checked against the lake tables and the files."""

from __future__ import annotations

import csv

import numpy as np
import polars as pl
import pytest

from lake.presets import PRESETS
from schemas.errors import InvalidName, InvalidSessionId, NplakeError, UnknownSession
from tests.queries.lakes import nwb_spikes, shared_lake


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


def _allen_columns(realdata, name: str) -> list[str]:
    with open(realdata / "metadata" / f"{name}_head.csv") as f:
        return [c for c in next(csv.reader(f)) if c != "..."]


def test_session_table_uses_vbn_names_and_counts(shared, realdata):
    table = shared.lake.allen.get_ecephys_session_table()
    vbn = _allen_columns(realdata, "ecephys_sessions")
    derivable = {
        "ecephys_session_id",
        "date_of_acquisition",
        "equipment_name",
        "session_type",
        "mouse_id",
        "genotype",
        "sex",
        "age_in_days",
        "unit_count",
        "channel_count",
        "structure_acronyms",
    }
    assert derivable <= set(vbn) and derivable <= set(table.columns)
    units = shared.lake.sql("SELECT session_id, count(*) AS n FROM units GROUP BY 1")
    joined = table.join(units, left_on="ecephys_session_id", right_on="session_id")
    assert (joined["unit_count"] == joined["n"]).all() and joined.height == table.height


def test_unit_probe_and_channel_tables_use_vbn_names(shared, realdata):
    allen = shared.lake.allen
    for name, table in (
        ("units", allen.get_unit_table()),
        ("probes", allen.get_probe_table()),
        ("channels", allen.get_channel_table()),
    ):
        vbn = set(_allen_columns(realdata, name))
        missing = vbn - set(table.columns) - {"file_id", "project_code"}
        assert not missing, (name, missing)
    units = allen.get_unit_table()
    assert units.height == shared.lake.sql("SELECT count(*) FROM units").item()
    assert units.columns[:4] == [
        "unit_id",
        "ecephys_channel_id",
        "ecephys_probe_id",
        "ecephys_session_id",
    ]
    channels = allen.get_channel_table()
    assert channels["unit_count"].sum() == units.height - units["probe_channel_number"].null_count()


def test_unit_table_preset_and_pandas_index(shared):
    allen = shared.lake.allen
    good = allen.get_unit_table(preset="allen_visual_coding")
    expected = shared.lake.sql("SELECT count(*) FROM units_quality WHERE allen_visual_coding")
    assert good.height == expected.item() > 0
    frame = allen.get_unit_table(pandas=True)
    assert frame.index.name == "unit_id"
    with pytest.raises(InvalidName):
        allen.get_unit_table(preset="strict")
    assert set(PRESETS) == {"allen_visual_coding", "visual_behavior", "ibl"}


def test_spike_times_dict_equals_the_nwb_file(shared):
    sid = shared.real[0]
    expected = nwb_spikes(shared.files[sid])
    got = shared.lake.allen.get_spike_times(sid)
    assert sorted(got) == sorted(expected)
    assert all(np.array_equal(got[u], expected[u]) for u in expected)
    chosen = list(expected)[:2]
    assert list(shared.lake.allen.get_spike_times(sid, chosen)) == sorted(chosen)


def test_per_session_task_tables(shared):
    allen = shared.lake.allen
    sid = shared.synthetic[0]
    trials = allen.get_trials(sid)
    assert trials["trial_index"].to_list() == list(range(trials.height))
    assert "change_time" in trials.columns and "pole_in_time" not in trials.columns
    licks = allen.get_licks(sid)
    assert licks.columns == ["timestamps", "source"] and licks["timestamps"].is_sorted()
    rewards = allen.get_rewards(sid)
    assert rewards.columns == ["timestamps", "volume", "auto_rewarded"] and rewards.height > 0
    stim = allen.get_stimulus_presentations(sid)
    assert stim.height > 0 and {"image_name", "is_change"} <= set(stim.columns)
    assert stim["name"].str.ends_with("_presentations").all()
    units = allen.get_units(sid)
    assert (units["ecephys_session_id"] == sid).all()
    assert isinstance(trials, pl.DataFrame)


PER_SESSION = (
    "get_spike_times",
    "get_units",
    "get_trials",
    "get_licks",
    "get_rewards",
    "get_stimulus_presentations",
)


@pytest.mark.parametrize("accessor", PER_SESSION)
def test_every_per_session_accessor_refuses_unknown_and_invalid_ids(shared, accessor):
    method = getattr(shared.lake.allen, accessor)
    with pytest.raises(UnknownSession, match=r"no session 'not_in_lake' in the lake at .*sessions"):
        method("not_in_lake")
    near = shared.synthetic[0][:-1] + ("0" if shared.synthetic[0][-1] != "0" else "1")
    with pytest.raises(UnknownSession, match=f"did you mean .*{shared.synthetic[0]}"):
        method(near)
    for bad in ("../x", "", 42):
        with pytest.raises(InvalidSessionId):
            method(bad)


def test_unknown_session_is_a_lookup_error_and_an_nplake_error(shared):
    with pytest.raises(LookupError):
        shared.lake.allen.get_trials("nope")
    with pytest.raises(NplakeError):
        shared.lake.allen.get_licks("nope")
