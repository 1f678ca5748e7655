"""lake.analysis: the same numbers as the SQL macros, and as numpy over the source NWB files."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import polars as pl
import pytest

from lake import analysis as an_mod
from lake.analysis import Analysis, bin_offsets
from lake.presets import preset_expr
from schemas.errors import InvalidName, UnknownSession
from tests.queries.lakes import bins, nwb_events, nwb_spikes, ref_counts, shared_lake


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


def _sorted(frame: pl.DataFrame, *key: str) -> pl.DataFrame:
    return frame.sort(list(key))


@pytest.mark.parametrize("event", ["trials.change_time", "licks", "intervals.encoding_table"])
def test_window_counts_equal_the_sql_macro(shared, event):
    lk = shared.lake
    py = lk.analysis.aligned_counts(None, event, window=(-0.25, 0.5))
    sql = lk.sql(f"SELECT * FROM aligned_counts('units', '{event}', -0.25, 0.5)")
    key = ("session_id", "unit_id", "event_index")
    assert py.height > 0
    assert _sorted(py, *key).equals(_sorted(sql, *key))


def test_binned_counts_equal_the_sql_macro_and_numpy(shared):
    lk = shared.lake
    py = lk.analysis.aligned_counts(None, "trials.start_time", bins=(-1.0, 0.1, 25))
    sql = lk.sql("SELECT * FROM aligned_bins('units', 'trials.start_time', -1.0, 0.1, 25)")
    key = ("session_id", "unit_id", "event_index", "bin")
    assert _sorted(py, *key).equals(_sorted(sql, *key))
    for sid, path in shared.files.items():
        try:
            index, times = nwb_events(path, "trials.start_time")
        except KeyError:
            continue
        mine = py.filter(pl.col("session_id") == sid)
        for unit, spikes in list(sorted(nwb_spikes(path).items()))[:6]:
            counts = ref_counts(spikes, times, bins(-1.0, 0.1, 25))
            got = mine.filter(pl.col("unit_id") == unit).sort("event_index", "bin")
            assert got["n_spikes"].to_list() == counts.reshape(-1).tolist(), (sid, unit)
            assert got["event_index"].unique().sort().to_list() == sorted(index.tolist())


def test_psth_equals_the_sql_macro_bit_for_bit(shared):
    lk = shared.lake
    lk.sql("CREATE OR REPLACE TEMP VIEW all_units AS SELECT session_id, unit_id FROM units")
    py = lk.analysis.psth(None, "licks", bins=(-0.5, 0.025, 40))
    sql = lk.sql("SELECT * FROM psth('all_units', 'licks', -0.5, 0.025, 40)")
    assert py.height > 0
    assert _sorted(py, "session_id", "unit_id", "bin").equals(
        _sorted(sql, "session_id", "unit_id", "bin")
    )


def test_psth_by_area_matches_sql_to_rounding(shared):
    lk = shared.lake
    py = lk.analysis.psth_by_area(None, "licks", bins=(-0.5, 0.1, 10))
    sql = lk.sql("SELECT * FROM psth_by_area('units', 'licks', -0.5, 0.1, 10)")
    sql = sql.sort("structure_acronym", "bin", nulls_last=True)
    assert py.schema == sql.schema and py.height == sql.height
    assert py.select("structure_acronym", "bin", "n_sessions", "n_units").equals(
        sql.select("structure_acronym", "bin", "n_sessions", "n_units")
    )
    assert np.allclose(py["rate_hz"], sql["rate_hz"], rtol=1e-12, atol=0)


def test_aligned_spikes_equal_the_sql_macro(shared):
    lk = shared.lake
    py = lk.analysis.aligned_spikes(None, "rewards", window=(-1.0, 1.0))
    sql = lk.sql("SELECT * FROM aligned_spikes('units', 'rewards', -1.0, 1.0)")
    key = ("session_id", "unit_id", "event_index", "time")
    assert py.height > 0
    assert _sorted(py, *key).equals(_sorted(sql, *key))


def test_events_and_unit_selections_are_the_rows_of_the_views(shared):
    lk = shared.lake
    names = lk.sql("SELECT DISTINCT event FROM events ORDER BY 1")["event"].to_list()
    assert len(names) > 10
    for name in names:
        if "." in name and not name.split(".", 1)[1].isidentifier():
            continue  # interval tables whose names are not plain identifiers
        view = lk.sql(
            f"SELECT session_id, event_index, time FROM events WHERE event = '{name}' "
            "ORDER BY session_id, event_index"
        )
        assert lk.analysis.events(name).equals(view), name
    scanned = lk.scan("units").filter(preset_expr("visual_behavior"))
    expected = scanned.select("session_id", "unit_id").sort("session_id", "unit_id").collect()
    assert lk.analysis.units("visual_behavior").equals(expected)
    with pytest.raises(ValueError, match="no such column"):
        lk.analysis.events("trials.nothing_time")


def test_presets_frames_and_custom_events_select_what_they_say(shared):
    lk = shared.lake
    sid = shared.synthetic[0]
    units = lk.sql(
        f"SELECT session_id, unit_id FROM units_quality WHERE allen_visual_coding "
        f"AND session_id = '{sid}'"
    )
    by_name = lk.analysis.aligned_counts("allen_visual_coding", "licks", window=(0.0, 0.1))
    by_frame = lk.analysis.aligned_counts(units, "licks", window=(0.0, 0.1))
    assert (
        by_name.filter(pl.col("session_id") == sid)
        .sort("unit_id", "event_index")
        .equals(by_frame.sort("unit_id", "event_index"))
    )
    spikes = nwb_spikes(shared.files[sid])
    unit = max(spikes, key=lambda u: len(spikes[u]))
    at_spikes = pl.DataFrame({"session_id": [sid] * 5, "time": spikes[unit][10:15]})
    one = pl.DataFrame({"session_id": [sid], "unit_id": [unit]})
    got = lk.analysis.aligned_counts(one, at_spikes, window=(0.0, 1e-3))
    assert got["event_index"].to_list() == [0, 1, 2, 3, 4]
    expected = ref_counts(spikes[unit], spikes[unit][10:15], np.array([0.0, 1e-3]))[:, 0]
    assert got["n_spikes"].to_list() == expected.tolist()


def test_spikes_stored_in_any_order_give_the_same_counts(shared, monkeypatch):
    lk = shared.lake
    before = lk.analysis.aligned_counts(None, "licks", window=(-0.2, 0.2))
    spans = lk.analysis.session_spans()
    real_read = Analysis._read_group

    def shuffled(pf, group):
        owner, times = real_read(pf, group)
        order = np.random.default_rng(group).permutation(len(owner))
        return owner[order], times[order]

    # files that do not declare their order (e.g. written by another engine) decode unit_id
    monkeypatch.setattr(Analysis, "_layout", lambda self, files, counts: None)
    monkeypatch.setattr(Analysis, "_read_group", staticmethod(shuffled))
    after = lk.analysis.aligned_counts(None, "licks", window=(-0.2, 0.2))
    assert after.height > 0
    assert after.equals(before)
    assert lk.analysis.session_spans().equals(spans)


def _hard_case(seed: int = 3):
    """Spikes of units 0..6 on a 1 ms grid (ties, spikes on edges), unsorted events."""
    rng = np.random.default_rng(seed)
    grid = np.round(rng.uniform(-5, 50, 4000), 3)  # many ties and values on the 1 ms grid
    owner = np.sort(rng.integers(0, 7, grid.size))
    times = np.concatenate([np.sort(grid[owner == u]) for u in range(7)])
    events = np.concatenate([rng.choice(times, 30), rng.uniform(-20, 70, 30), [-50.0, 90.0]])
    return owner, times, events


def _accumulate(owner, times, events, offsets, cuts):
    """Run the kernels over row groups [cuts[i], cuts[i+1]) the way Analysis._chunks does."""
    kernels = an_mod._kernels()
    ev = an_mod._Events.of(events, np.arange(len(events)), offsets)
    units = np.arange(9)  # units 7 and 8 have no spikes
    counts = np.zeros((9, len(events), len(offsets) - 1), dtype=np.int64)
    totals = np.zeros((9, len(offsets) - 1), dtype=np.int64)
    for a, b in itertools.pairwise(cuts):
        ulo = np.searchsorted(owner[a:b], units, "left")
        uhi = np.searchsorted(owner[a:b], units, "right")
        rows = np.flatnonzero(uhi > ulo)  # only the units present are handed to the kernels
        chunk = np.ascontiguousarray(times[a:b])
        kernels.count_into(chunk, ulo[rows], uhi[rows], rows, ev.edges, ev.order, counts)
        kernels.totals_into(chunk, ulo[rows], uhi[rows], rows, ev.edges, offsets, totals)
    return ev, counts, totals


@pytest.mark.parametrize("cuts", [[0, 4000], [0, 1, 577, 578, 1999, 3333, 4000]])
def test_kernels_equal_numpy_searchsorted_on_hard_cases(cuts):
    owner, times, events = _hard_case()
    for offsets in (bin_offsets(-0.2, 0.001, 400), np.array([-0.25, 0.5])):  # bins, window
        ev, counts, totals = _accumulate(owner, times, events, offsets, cuts)
        for u in range(9):
            expected = ref_counts(times[owner == u], events, offsets)  # events in given order
            assert np.array_equal(counts[u], expected), u
            assert np.array_equal(totals[u], expected.sum(axis=0)), u
    kernels = an_mod._kernels()
    ulo = np.searchsorted(owner, np.arange(7), "left")
    uhi = np.searchsorted(owner, np.arange(7), "right")
    pos = kernels.edge_positions(times, ulo, uhi, ev.edges)
    for u in range(7):
        expected = ref_counts(times[ulo[u] : uhi[u]], events, offsets)[ev.order]
        assert np.array_equal(np.diff(pos[u], axis=1), expected)
    assert kernels.is_sorted(owner, times)
    assert not kernels.is_sorted(owner[::-1].copy(), times[::-1].copy())


def test_unit_rates_and_rates_by_area_equal_the_views(shared):
    lk = shared.lake
    assert (
        lk.analysis.unit_rates()
        .sort("session_id", "unit_id")
        .equals(lk.sql("SELECT * FROM unit_rates").sort("session_id", "unit_id"))
    )
    py = lk.analysis.rates_by_area("visual_behavior")
    lk.sql("CREATE OR REPLACE TEMP VIEW vb AS SELECT * FROM units_quality WHERE visual_behavior")
    sql = lk.sql("SELECT * FROM rates_by_area('vb')").sort(
        "session_id", "structure_acronym", nulls_last=True
    )
    exact = ["session_id", "structure_acronym", "n_units", "n_spikes"]
    assert py.schema == sql.schema
    assert py.select(exact).equals(sql.select(exact))
    for col in ("mean_rate_hz", "mean_firing_rate"):
        assert np.allclose(py[col], sql[col], rtol=1e-12, atol=0, equal_nan=True)


def test_spike_times_are_the_files_spike_times(shared):
    for sid in (shared.synthetic[0], *shared.real):
        expected = nwb_spikes(shared.files[sid])
        got = shared.lake.analysis.spike_times(sid)
        assert got.keys() == expected.keys()
        for unit, times in expected.items():
            assert np.array_equal(got[unit], times), (sid, unit)
    some = shared.lake.analysis.spike_times(shared.synthetic[0], [min(expected), 12345])
    assert len(some[12345]) == 0


def test_bad_arguments_are_refused_with_a_reason(shared):
    an = shared.lake.analysis
    with pytest.raises(ValueError, match="exactly one of window"):
        an.aligned_counts(None, "licks")
    with pytest.raises(ValueError, match="start < stop"):
        an.aligned_counts(None, "licks", window=(0.5, 0.5))
    with pytest.raises(ValueError, match="width >="):
        an.psth(None, "licks", bins=(0.0, 0.0, 10))
    with pytest.raises(ValueError, match="finite width >="):
        an.psth(None, "licks", bins=(0.0, float("inf"), 10))
    with pytest.raises(ValueError, match="finite start < stop"):
        an.aligned_counts(None, "licks", window=(0.0, float("nan")))
    with pytest.raises(ValueError, match=r"trials\.<column>"):
        an.events("spikes")
    with pytest.raises(InvalidName):
        an.events("trials.x; DROP TABLE units")
    with pytest.raises(InvalidName):
        an.units("no_such_preset")
    with pytest.raises(UnknownSession):
        an.spike_times("nope")


# ------------------------------------------------------------- many row groups per session
GROUP_ROWS = 997  # odd: row-group boundaries fall inside units


@pytest.fixture(scope="module")
def small_groups(tmp_path_factory):
    """Two synthetic sessions whose spikes files hold row groups of GROUP_ROWS rows."""
    import lake
    from ingest.synth import write_corpus
    from lake import storage

    root = tmp_path_factory.mktemp("small-groups")
    paths = write_corpus(root / "nwb", 2, seed=5, size="tiny")
    patch = pytest.MonkeyPatch()
    patch.setattr(storage, "SPIKE_ROW_GROUP_ROWS", GROUP_ROWS)
    try:
        lk = lake.open(root / "lake")
        assert lk.ingest(paths, jobs=1).ok  # in this process: the patched size applies
    finally:
        patch.undo()
    files = dict(lk.sessions().select("session_id", "source_uri").rows())
    return lk, files


def test_spikes_are_written_in_row_groups_that_split_units(small_groups):
    import pyarrow.parquet as pq

    lk, _ = small_groups
    split = 0
    for path in lk._current().tables["spikes"].files:
        meta = pq.read_metadata(path)
        assert meta.num_row_groups > 10
        assert max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) == GROUP_ROWS
        column = meta.schema.names.index("unit_id")
        stats = [meta.row_group(g).column(column).statistics for g in range(meta.num_row_groups)]
        split += sum(a.max == b.min for a, b in itertools.pairwise(stats))
    assert split > 5  # units whose spikes continue in the next row group


def _every_third_unit(lk) -> pl.DataFrame:
    units = lk.sql("SELECT session_id, unit_id FROM units ORDER BY 1, 2")
    return units.filter(pl.int_range(pl.len()) % 3 == 1)


@pytest.mark.parametrize("event", ["trials.start_time", "licks"])
def test_counts_over_many_row_groups_equal_numpy_and_the_sql(small_groups, event):
    lk, files = small_groups
    chosen = _every_third_unit(lk)
    lk.sql(
        "CREATE OR REPLACE TEMP VIEW third AS SELECT * FROM units WHERE unit_id IN "
        f"({', '.join(map(str, chosen['unit_id']))})"
    )
    key = ["session_id", "unit_id", "event_index", "bin"]
    got = lk.analysis.aligned_counts(chosen, event, bins=(-0.3, 0.05, 13))
    sql = lk.sql(f"SELECT * FROM aligned_bins('third', '{event}', -0.3, 0.05, 13)")
    assert got.sort(key).equals(sql.sort(key))
    window = lk.analysis.aligned_counts(chosen, event, window=(-0.25, 0.5))
    sql = lk.sql(f"SELECT * FROM aligned_counts('third', '{event}', -0.25, 0.5)")
    assert window.sort(key[:3]).equals(sql.sort(key[:3]))
    psth = lk.analysis.psth(chosen, event, bins=(-0.3, 0.05, 13))
    sql = lk.sql(f"SELECT * FROM psth('third', '{event}', -0.3, 0.05, 13)")
    assert psth.sort([*key[:2], "bin"]).equals(sql.sort([*key[:2], "bin"]))
    for sid, path in files.items():
        index, times = nwb_events(path, event)
        spikes = nwb_spikes(path)
        mine = chosen.filter(pl.col("session_id") == sid)["unit_id"].to_list()
        assert mine
        for unit in mine:
            expected = ref_counts(spikes[unit], times, bins(-0.3, 0.05, 13))
            row = got.filter((pl.col("session_id") == sid) & (pl.col("unit_id") == unit))
            row = row.sort("event_index", "bin")
            assert np.array_equal(row["n_spikes"].to_numpy(), expected[np.argsort(index)].ravel())
            in_window = ref_counts(spikes[unit], times, np.array([-0.25, 0.5]))[:, 0]
            row = window.filter((pl.col("session_id") == sid) & (pl.col("unit_id") == unit))
            assert np.array_equal(row.sort("event_index")["n_spikes"], in_window[np.argsort(index)])


def _counting_reads(monkeypatch) -> dict[str, list[int]]:
    """Record the row groups read: time only (from spike counts) or unit_id and time."""
    read: dict[str, list[int]] = {"time": [], "unit_id+time": []}
    real_times, real_group = Analysis._read_times, Analysis._read_group

    def times_only(pf, group):
        read["time"].append(group)
        return real_times(pf, group)

    def both(pf, group):
        read["unit_id+time"].append(group)
        return real_group(pf, group)

    monkeypatch.setattr(Analysis, "_read_times", staticmethod(times_only))
    monkeypatch.setattr(Analysis, "_read_group", staticmethod(both))
    return read


def test_row_groups_without_chosen_units_are_not_read(small_groups, monkeypatch):
    lk, files = small_groups
    sid = sorted(files)[0]
    one = lk.sql(
        f"SELECT session_id, unit_id FROM units WHERE session_id = '{sid}' "
        "AND spike_count > 0 ORDER BY unit_id LIMIT 1 OFFSET 3"
    )
    read = _counting_reads(monkeypatch)
    got = lk.analysis.aligned_counts(one, "licks", window=(-1.0, 1.0))
    spikes = nwb_spikes(files[sid])[one["unit_id"].item()]
    _, times = nwb_events(files[sid], "licks")
    expected = ref_counts(spikes, times, np.array([-1.0, 1.0]))[:, 0]
    assert got["n_spikes"].to_list() == expected.tolist()
    assert 1 <= len(read["time"]) <= len(spikes) // GROUP_ROWS + 2  # its own row groups only
    assert read["unit_id+time"] == []  # the files declare their order: unit_id is not decoded


@pytest.mark.parametrize("layout", ["declared", "not declared", "spike counts disagree"])
def test_unit_slices_from_spike_counts_equal_slices_from_unit_ids(
    small_groups, monkeypatch, layout
):
    lk, _ = small_groups
    chosen = _every_third_unit(lk)
    decoded = lk.analysis
    monkeypatch.setattr(Analysis, "_layout", lambda self, files, counts: None)
    expected = decoded.psth(chosen, "licks", bins=(-0.5, 0.05, 30))
    windows = decoded.aligned_counts(chosen, "trials.start_time", window=(0.0, 0.3))
    monkeypatch.undo()
    read = _counting_reads(monkeypatch)
    if layout == "not declared":  # files without sorting_columns (older lakes, other writers)
        real_of = an_mod._FileIndex.of

        def undeclared(metadata):
            return dataclasses.replace(real_of(metadata), unit_time_sorted=False)

        monkeypatch.setattr(an_mod._FileIndex, "of", staticmethod(undeclared))
        monkeypatch.setattr(an_mod, "_INDEXES", type(an_mod._INDEXES)())
    if layout == "spike counts disagree":  # e.g. a unit's spike_count off by one
        real = an_mod._ConnectionCache.unit_rows

        def shifted(self, lake):
            rows = real(self, lake)
            return {
                sid: an_mod._UnitRows(r.unit_ids, r.starts + 1, r.ends + 1)
                for sid, r in rows.items()
            }

        monkeypatch.setattr(an_mod._ConnectionCache, "unit_rows", shifted)
    assert lk.analysis.psth(chosen, "licks", bins=(-0.5, 0.05, 30)).equals(expected)
    got = lk.analysis.aligned_counts(chosen, "trials.start_time", window=(0.0, 0.3))
    assert got.equals(windows)
    decoded_groups = bool(read["unit_id+time"])
    assert decoded_groups == (layout != "declared")


def test_spike_times_over_many_row_groups_are_the_files_spike_times(small_groups):
    lk, files = small_groups
    for sid, path in files.items():
        expected = nwb_spikes(path)
        got = lk.analysis.spike_times(sid)
        assert got.keys() == expected.keys()
        assert all(np.array_equal(got[u], t) for u, t in expected.items())
        spans = lk.analysis.session_spans().filter(pl.col("session_id") == sid).row(0, named=True)
        flat = np.concatenate(list(expected.values()))
        assert (spans["first_spike_time"], spans["last_spike_time"]) == (flat.min(), flat.max())
        assert spans["n_spikes"] == flat.size
