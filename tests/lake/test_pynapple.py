"""Lake.to_pynapple gives what pynapple.load_file gives for the session's NWB file: the same
spike trains bit for bit, the same unit metadata columns and values, the same interval sets with
their columns; on the real files, on synthetic sessions, and on files the lake exported.

The reference is pynapple itself reading the NWB files (source or export); the lake is the
shared one of tests/queries/lakes.py (two tiny synthetic sessions and the three real files).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pynapple as nap
import pytest

from lake.analysis import SpikeTrains
from lake.pynapple import PynappleSession, _one_span, _ts, units_tsgroup
from schemas import TABLES, LakeError
from tests.queries.lakes import shared_lake

#: load_file's key for a series -> the lake table to_pynapple hands out in its place.
ALIASES = {"speed": "running_speed", "volume": "rewards"}
HUMAN, JANELIA_9, ALM = "TWH103_CBID4", "anm00239123_2017-06-27_09-35-49", "anm369963_2017-02-28_2"
#: Whether the lake keeps every time series of a session (the timeseries tables); then
#: to_pynapple hands them out under their series names, as load_file does.
HAS_SERIES = {"timeseries", "timeseries_info"} <= set(TABLES)
_SERIES_ONLY = set() if HAS_SERIES else {"events", "experiment_ids"}
#: What load_file finds in each real file that the lake does not keep: the image frames of an
#: OpticalSeries (pynapple cannot build it either) and, before the lake keeps every series,
#: series other than licks, rewards and running speed.
NOT_IN_LAKE = {
    HUMAN: {"StimulusPresentation_encoding"} | _SERIES_ONLY,
    JANELIA_9: set(),
    ALM: set(),
}
#: Keys of the lake's own tables that load_file may not have (licks of every source as one Ts).
OWN = {"licks", "rewards", "running_speed"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


def _quiet(make):
    """`make()` with the warnings pynapple and pynwb give about these files recorded, not raised."""
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        return make()


def _load(path: Path) -> dict:
    """Every object load_file builds (it builds lazily: each key is asked for once here)."""
    data = _quiet(lambda: nap.load_file(str(path)))
    return {key: _quiet(lambda key=key: data[key]) for key in list(data)}


def _values(series) -> list:
    """Metadata values comparable across readers: text from bytes, arrays as lists, NaN as None."""
    out = []
    for v in np.asarray(series, dtype=object):
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, float | np.floating) and np.isnan(v):
            v = None
        elif isinstance(v, np.generic):
            v = v.item()
        out.append(v)
    return out


def assert_same_units(ours: nap.TsGroup, ref: nap.TsGroup) -> None:
    assert list(ours) == list(ref)
    for key in ref:
        assert ours[key].t.dtype == np.float64
        assert np.array_equal(ours[key].t, ref[key].t), key  # bit for bit
    assert np.array_equal(ours.time_support.values, ref.time_support.values)
    missing = set(ref.metadata_columns) - set(ours.metadata_columns)
    assert not missing
    for column in ref.metadata_columns:
        assert _values(ours.metadata[column]) == _values(ref.metadata[column]), column


def assert_same_intervals(ours: nap.IntervalSet, ref: nap.IntervalSet, key: str) -> None:
    assert isinstance(ours, nap.IntervalSet), key
    assert np.array_equal(ours.values, ref.values), key
    assert ours.metadata_columns == ref.metadata_columns, key
    for column in ref.metadata_columns:
        assert _values(ours.metadata[column]) == _values(ref.metadata[column]), (key, column)


def _built_by_pynapple(table) -> nap.IntervalSet:
    """What load_file would give for an NWB TimeIntervals it fails to build: pynapple's
    IntervalSet of the table's own data frame, rows numbered from 0."""
    frame = table.to_dataframe().rename(columns={"start_time": "start", "stop_time": "end"})
    return _quiet(lambda: nap.IntervalSet(frame.reset_index(drop=True)))


def assert_same_as_load_file(ours: PynappleSession, ref: dict, not_in_lake: set[str]) -> set:
    """Every object load_file builds is in `ours` and equal; returns the keys it could not build."""
    unbuilt = set()
    for key, obj in ref.items():
        mine = ours.get(key, ours.get(ALIASES.get(key, key)))
        if not isinstance(obj, nap.TsGroup | nap.IntervalSet | nap.Ts | nap.Tsd | nap.TsdFrame):
            unbuilt.add(key)  # load_file could not build it and hands back the NWB object
        if key in not_in_lake:
            assert mine is None, key
        elif isinstance(obj, nap.TsGroup):
            assert_same_units(mine, obj)
        elif isinstance(obj, nap.IntervalSet):
            assert_same_intervals(mine, obj, key)
        elif isinstance(obj, nap.TsdFrame):  # e.g. a position's x, y
            assert isinstance(mine, nap.TsdFrame), key
            assert list(mine.columns) == list(obj.columns), key
            assert np.array_equal(mine.t, obj.t), key
            assert np.array_equal(mine.values, np.asarray(obj.values), equal_nan=True), key
        elif isinstance(obj, nap.Ts | nap.Tsd):
            assert mine is not None, key
            order = np.argsort(obj.t, kind="stable")  # load_file sorts unsorted series too
            assert np.array_equal(mine.t, obj.t[order]), key
            if isinstance(mine, nap.Tsd):  # licks are Ts: the lake keeps their times only
                assert np.array_equal(mine.d, np.asarray(obj.d)[order], equal_nan=True), key
        elif type(obj).__name__ == "TimeIntervals":  # the lake's table, with its columns
            assert_same_intervals(mine, _built_by_pynapple(obj), key)
        else:  # e.g. an OpticalSeries of image frames: no lake table holds it
            assert mine is None, key
    return unbuilt


# ----------------------------------------------------------------------------- the real files
@pytest.mark.parametrize("session_id", [HUMAN, JANELIA_9, ALM])
def test_real_files_give_what_load_file_gives(shared, session_id):
    ref = _load(shared.files[session_id])
    ours = _quiet(lambda: shared.lake.to_pynapple(session_id))
    unbuilt = assert_same_as_load_file(ours, ref, NOT_IN_LAKE[session_id])
    # where load_file fails, to_pynapple still builds the table with its columns
    assert (
        unbuilt
        == {
            HUMAN: {"StimulusPresentation_encoding"},  # OpticalSeries, not a table of the lake
            JANELIA_9: {"trials"},  # ids from 1: pynapple cannot attach the metadata
            ALM: set(),
        }[session_id]
    )
    assert set(ours) - set(ref) == ({"licks"} if session_id == ALM else set())  # every lick


def test_real_files_keep_their_shapes(shared):
    human = _quiet(lambda: shared.lake.to_pynapple(HUMAN))
    assert len(human["units"]) == 35
    assert sum(len(human["units"][k]) for k in human["units"]) == 214_278
    assert _values(human["units"].metadata["location"]).count("hippocampus_right") == 25
    assert len(human["encoding_table"]) == 90  # the other two join overlapping rows (pynapple)
    assert len(human["recognition_table"]) == len(human["timediscrimination_table"]) == 177
    janelia = _quiet(lambda: shared.lake.to_pynapple(JANELIA_9))
    assert (
        len(janelia["trials"]) == 412 and "photo_stim_power" in janelia["trials"].metadata_columns
    )
    alm = _quiet(lambda: shared.lake.to_pynapple(ALM))
    assert (len(alm["lick_left_times"]), len(alm["lick_right_times"]), len(alm["licks"])) == (
        782,
        1016,
        1798,
    )
    assert len(alm["trials"]) == 0  # every stop_time is NaN: pynapple drops those rows
    total = sum(alm["units"][k].t.sum() for k in alm["units"])
    assert total == 1830408.7248250002  # the realdata README's sum of all spike times


def test_units_carry_the_lake_columns_and_the_area(shared):
    data = _quiet(lambda: shared.lake.to_pynapple(shared.synthetic[0]))
    meta = data["units"].metadata
    wanted = ("structure_acronym", "structure_id", "beryl_acronym", "cosmos_acronym", "probe")
    wanted += ("quality", "snr", "isi_violations", "genotype", "session_id")
    for column in wanted:
        assert column in meta.columns, column
    annotated = shared.lake.sql(
        f"SELECT unit_id, structure_acronym, beryl_acronym, snr FROM units_annotated "
        f"WHERE session_id = '{shared.synthetic[0]}' ORDER BY unit_id"
    )
    assert meta.index.tolist() == annotated["unit_id"].to_list()
    assert _values(meta["structure_acronym"]) == annotated["structure_acronym"].to_list()
    assert _values(meta["beryl_acronym"]) == annotated["beryl_acronym"].to_list()
    assert _values(meta["snr"]) == [None if np.isnan(v) else v for v in annotated["snr"]]


# ------------------------------------------------------------------------- synthetic sessions
@pytest.mark.parametrize("which", [0, 1])
def test_synthetic_sessions_give_what_load_file_gives(shared, which):
    sid = shared.synthetic[which]
    ref = _load(shared.files[sid])
    ours = _quiet(lambda: shared.lake.to_pynapple(sid))
    # autorewarded: without its series, the lake keeps rewards.auto_rewarded as a column only
    unbuilt = assert_same_as_load_file(ours, ref, set() if HAS_SERIES else {"autorewarded"})
    assert unbuilt == {"trials"}  # load_file takes a ragged lick_times column for spikes
    assert set(ours) - set(ref) == {"rewards", "running_speed"}


# ---------------------------------------------------------------------------- exported files
def test_exported_files_give_what_to_pynapple_gives(shared, tmp_path):
    for sid in sorted(shared.files):
        path = shared.lake.export_nwb(sid, tmp_path / f"{sid}.nwb")
        ref = _load(path)
        ours = _quiet(lambda sid=sid: shared.lake.to_pynapple(sid))
        unbuilt = assert_same_as_load_file(ours, ref, set())
        assert unbuilt <= {"trials", "StimulusPresentation_encoding"}, (sid, unbuilt)
        assert_same_units(ours["units"], ref["units"])
        assert set(ours) - set(ref) <= OWN | set(ALIASES), sid


# ------------------------------------------------------------------------------ cross-session
def test_units_of_several_sessions_share_one_group_each_on_its_own_clock(shared):
    lk = shared.lake
    chosen = lk.sql(
        "SELECT session_id, unit_id FROM units WHERE session_id IN "
        f"('{shared.synthetic[0]}', '{shared.synthetic[1]}') AND quality = 'good'"
    )
    group = _quiet(lambda: units_tsgroup(lk, chosen))
    assert sorted(group.keys()) == sorted(chosen["unit_id"].to_list())
    spans = lk.analysis.session_spans()
    for sid in shared.synthetic:
        single = _quiet(lambda sid=sid: lk.to_pynapple(sid))["units"]
        first, last, _ = spans.filter(pl.col("session_id") == sid).row(0)[1:4]
        mine = chosen.filter(pl.col("session_id") == sid)["unit_id"].to_list()
        for unit in mine:
            assert np.array_equal(group[unit].t, single[unit].t)  # times as they are
            assert group[unit].time_support.values.tolist() == [[first, last]]
            assert group.metadata.loc[unit, "rate"] == len(single[unit]) / (last - first)
            assert group.metadata.loc[unit, "session_id"] == sid
    chosen_spans = spans.filter(pl.col("session_id").is_in(list(shared.synthetic)))
    assert group.time_support.values.tolist() == [
        [chosen_spans["first_spike_time"].min(), chosen_spans["last_spike_time"].max()]
    ]
    by_session = group.getby_category("session_id")
    assert set(by_session) == set(shared.synthetic)


def test_a_group_refuses_unit_ids_that_several_sessions_use(shared):
    # the human file numbers its units 0..34 and the Janelia 000009 file 1..4
    both = r"\(TWH103_CBID4, anm00239123_2017-06-27_09-35-49\)"
    with pytest.raises(LakeError, match=rf"^4 unit ids occur in several sessions .*: 1 {both}, 2 "):
        units_tsgroup(shared.lake, None)


# ------------------------------------------------------------------------------------ imports
def test_import_lake_does_not_import_pynapple(shared):
    code = (
        "import sys, lake, lake.regions; lk = lake.open(sys.argv[1]); "
        "lk.sql('SELECT count(*) FROM units_annotated'); before = 'pynapple' in sys.modules; "
        "lk.to_pynapple(sys.argv[2]); print(before, 'pynapple' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, shared.lake.uri, shared.synthetic[0]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["False", "True"]


# ------------------------------------------------------------------- the group's time support
def _trains(*units: list[float]) -> SpikeTrains:
    times = np.concatenate([np.asarray(u, dtype=np.float64) for u in units])
    ends = np.cumsum([len(u) for u in units]).astype(np.int64)
    return SpikeTrains("s", np.arange(len(units), dtype=np.int64) + 1, times, ends)


@pytest.mark.parametrize(
    ("units", "span"),
    [
        (([1.0, 5.0], [2.0, 9.0], []), (1.0, 9.0)),  # overlapping spans, an empty unit
        (([1.0, 5.0], [4.0]), (1.0, 5.0)),  # a single spike inside
        (([1.0, 5.0], [6.0, 9.0]), None),  # a gap
        (([1.0, 5.0], [5.0, 9.0]), None),  # spans that only touch
        (([1.0, 5.0], [7.0]), None),  # a single spike outside: pynapple drops it
        (([3.0], [3.0, 3.0]), None),  # no span at all
    ],
)
def test_the_group_is_built_on_one_span_only_where_pynapple_would_find_it(units, span):
    trains = _trains(*units)
    found = _one_span(trains)
    assert (None if found is None else tuple(found.values[0])) == span
    if span is None and units[0] == [3.0]:
        with pytest.raises(RuntimeError, match="Union of time supports is empty"):
            _quiet(lambda: nap.TsGroup(_ts(trains)))  # pynapple: no group without a span
        return
    plain = _quiet(lambda: nap.TsGroup(_ts(trains)))  # pynapple's own union and restriction
    if found is not None:
        fast = nap.TsGroup(_ts(trains, found), time_support=found, bypass_check=True)
        assert np.array_equal(fast.time_support.values, plain.time_support.values)
        assert np.array_equal(fast.metadata["rate"].values, plain.metadata["rate"].values)
        for key in plain:
            assert np.array_equal(fast[key].t, plain[key].t)
            assert np.array_equal(fast[key].time_support.values, plain[key].time_support.values)
