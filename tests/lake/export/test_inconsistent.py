"""NWB export of sessions whose rows contradict each other: InconsistentSession, no file."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

import lake
from lake import InconsistentSession
from lake.storage import commit_bundle
from schemas import SessionBundle
from tests.lake.builders import make_bundle


def _tampered(sid: str, table: str, change) -> SessionBundle:
    """A bundle with one table changed after validation (rows that contradict each other)."""
    good = make_bundle(sid, seed=4)
    tables = dict(good.tables)
    tables[table] = change(good.table(table))
    return SessionBundle(sid, tables, validated=True)


def _replace(table: pa.Table, column: str, values) -> pa.Table:
    return table.set_column(table.column_names.index(column), column, [values])


def _shift_counts(units: pa.Table) -> pa.Table:
    counts = units.column("spike_count").to_numpy().copy()
    counts[0] += 1
    counts[1] -= 1  # the total still matches: only streaming the spikes can tell
    return _replace(units, "spike_count", counts)


def _one_more_spike(units: pa.Table) -> pa.Table:
    counts = units.column("spike_count").to_numpy().copy()
    counts[0] += 1
    return _replace(units, "spike_count", counts)


def _rename_unit(units: pa.Table) -> pa.Table:
    ids = units.column("unit_id").to_numpy().copy()
    ids[2] = 999
    order = np.argsort(ids)
    return _replace(units, "unit_id", ids).take(pa.array(order))


def _repeat_unit(units: pa.Table) -> pa.Table:
    ids = units.column("unit_id").to_numpy().copy()
    ids[1] = ids[0]
    return _replace(units, "unit_id", ids)


def _units_backwards(spikes: pa.Table) -> pa.Table:
    """Each unit's spikes in time order, but the units in descending order."""
    ids = spikes.column("unit_id").to_numpy()
    order = np.lexsort((np.arange(len(ids)), -ids))
    return spikes.take(pa.array(order))


def _nan_time(spikes: pa.Table) -> pa.Table:
    times = spikes.column("time").to_numpy().copy()
    times[3] = np.nan
    return _replace(spikes, "time", times)


INCONSISTENT = {
    "counts": (
        "units",
        _shift_counts,
        r"spike counts disagree with units.spike_count \(unit 100: ",
    ),
    "total": ("units", _one_more_spike, r"\d+ spikes, but units.spike_count sums to \d+"),
    "unknown unit": ("units", _rename_unit, r"spikes name units that are not in units: \[102\]"),
    "repeated unit": ("units", _repeat_unit, r"units.unit_id is not unique"),
    "unsorted": ("spikes", _units_backwards, r"spikes are not sorted by unit_id"),
    "nan time": ("spikes", _nan_time, r"some spike times are NaN"),
}


@pytest.mark.parametrize("case", list(INCONSISTENT))
def test_inconsistent_session_fails_without_leaving_a_file(tmp_path, case):
    table, change, message = INCONSISTENT[case]
    lk = lake.open(tmp_path / "lake")
    bundle = _tampered("bad", table, change)
    commit_bundle(lk.store, bundle, source_hash="x", pipeline_version="t")
    out = tmp_path / "out"
    with pytest.raises(InconsistentSession, match=f"session bad: {message}"):
        lk.export_nwb("bad", out)
    assert [p for p in out.rglob("*") if p.is_file()] == []
    assert not [t for t in threading.enumerate() if t.name.startswith("nplake-")]


def test_channels_naming_unknown_probes_are_inconsistent(tmp_path):
    good = make_bundle("bad2", seed=1)
    tables = dict(good.tables)
    tables["probes"] = pa.table({"probe": ["probeZ"]})
    lk = lake.open(tmp_path / "lake")
    bundle = SessionBundle("bad2", tables, validated=False).validate()
    commit_bundle(lk.store, bundle, source_hash="x", pipeline_version="t")
    with pytest.raises(InconsistentSession, match="channels name probes that are not in probes"):
        lk.export_nwb("bad2", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.nwb"))
