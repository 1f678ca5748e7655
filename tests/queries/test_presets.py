"""Quality presets: NaN and missing metrics never pass; SQL and polars agree; the SQL is current."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import lake
from lake.presets import PRESETS, preset_expr, quality_columns, render_sql
from lake.storage import Store, commit_bundle
from tests.lake.builders import make_bundle
from tests.queries.lakes import shared_lake

NAN = float("nan")
# Boundary values, NaN and NULL for every metric the presets read (5 units in make_bundle).
METRICS = {
    "amplitude_cutoff": [0.1, 0.1000001, NAN, 0.0, None],
    "presence_ratio": [0.95, 0.99, 0.99, NAN, 0.99],
    "isi_violations": [0.5, 0.2, 0.2, 0.2, NAN],
    "snr": [1.0000001, 1.0, NAN, 5.0, 5.0],
    "slidingRP_viol": [1.0, 1.0, 0.0, NAN, 1.0],
    "noise_cutoff": [4.9, 5.0, 1.0, 1.0, None],
    "amp_median": [51e-6, 60e-6, 50e-6, NAN, 70e-6],
}


def _python_passes(name: str, row: dict) -> bool:
    """A plain-Python reading of the preset: missing (None or NaN) fails."""
    ok = True
    for c in PRESETS[name].criteria:
        x = row.get(c.metric)
        if isinstance(c.threshold, str):
            ok &= x == c.threshold
            continue
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return False
        ok &= {
            "<": x < c.threshold,
            "<=": x <= c.threshold,
            ">": x > c.threshold,
            ">=": x >= c.threshold,
            "==": x == c.threshold,
        }[c.op]
    return bool(ok)


@pytest.fixture(scope="module")
def metric_lake(tmp_path_factory):
    store = Store.at(tmp_path_factory.mktemp("presets") / "lake")
    extra = {k: pa.array(v, pa.float64()) for k, v in METRICS.items()}
    extra["firing_rate"] = pa.array([0.5, 0.1, 3.0, NAN, 2.0], pa.float64())
    bundle = make_bundle("p1", extra_units=extra)
    commit_bundle(store, bundle, source_hash="h", pipeline_version="t")
    return lake.open(store.root)


def test_the_sql_file_is_rendered_from_lake_presets():
    from lake.presets import SQL_PATH

    assert SQL_PATH.read_text() == render_sql(), "run lake.presets.write_sql()"


def test_sql_polars_and_plain_python_agree_on_boundaries_nan_and_null(metric_lake):
    sql = metric_lake.sql("SELECT * FROM units_quality ORDER BY unit_id")
    units = metric_lake.scan("units").sort("unit_id").collect()
    polars = units.select("unit_id", *quality_columns())
    assert sql.select(polars.columns).equals(polars)
    for name in PRESETS:
        expected = [_python_passes(name, row) for row in units.iter_rows(named=True)]
        assert sql[name].to_list() == expected, name
    # boundaries: <= 0.1 passes at 0.1 exactly, > 1 fails at 1.0 exactly, == 1 etc.
    assert sql["visual_behavior"].to_list()[:2] == [True, False]


def test_a_nan_metric_never_passes_a_threshold(metric_lake):
    # The trap: NaN sorts above every number, so a bare `snr > 1` is true for NaN.
    assert metric_lake.sql("SELECT count(*) FROM units WHERE snr > 1 AND isnan(snr)").item() == 1
    q = metric_lake.sql("SELECT * FROM units_quality JOIN units USING (session_id, unit_id)")
    for name, preset in PRESETS.items():
        for metric in preset.metrics:
            if metric == "quality":
                continue
            bad = q.filter(pl.col(metric).is_nan() | pl.col(metric).is_null())
            assert not bad[name].any(), (name, metric)
    frame = pl.DataFrame({"snr": [NAN], "isi_violations": [0.0], "firing_rate": [9.0]})
    assert frame.select(preset_expr("visual_behavior"))["visual_behavior"].to_list() == [False]
    assert frame.filter(pl.col("snr") > 1).height == 1  # what the preset protects against


def test_units_with_preset_returns_the_passing_units(metric_lake):
    for name in PRESETS:
        got = metric_lake.sql(f"SELECT unit_id FROM units_with_preset('{name}') ORDER BY 1")
        expected = metric_lake.sql(f"SELECT unit_id FROM units_quality WHERE {name} ORDER BY 1")
        assert got.equals(expected)
    with pytest.raises(Exception, match="unknown quality preset"):
        metric_lake.sql("SELECT * FROM units_with_preset('nope')")


def test_ibl_label_is_the_fraction_of_criteria_passed(metric_lake):
    label = metric_lake.sql("SELECT ibl_label FROM units_quality ORDER BY unit_id")["ibl_label"]
    assert label.to_list() == [1.0, 2 / 3, 1 / 3, 1 / 3, 2 / 3]


def test_synthetic_good_unit_with_nan_metrics_fails_the_presets(tmp_path_factory):
    shared = shared_lake(tmp_path_factory)
    lk = shared.lake
    nan_units = lk.sql(
        "SELECT u.session_id, u.unit_id, q.* EXCLUDE (session_id, unit_id) FROM units AS u "
        "JOIN units_quality AS q USING (session_id, unit_id) "
        "WHERE u.quality = 'good' AND u.spike_count > 0 AND isnan(u.isi_violations)"
    )
    assert nan_units.height >= len(shared.synthetic)  # one per synthetic session at least
    assert not nan_units["allen_visual_coding"].any()
    assert not nan_units["visual_behavior"].any()
    counts = lk.sql("SELECT count(*) FILTER (WHERE allen_visual_coding) FROM units_quality")
    assert counts.item() > 0  # the preset does pass good units


def test_units_of_sources_without_metrics_fail_every_preset(tmp_path_factory):
    shared = shared_lake(tmp_path_factory)
    ids = ", ".join(f"'{s}'" for s in shared.real)
    rows = shared.lake.sql(f"SELECT * FROM units_quality WHERE session_id IN ({ids})")
    assert rows.height > 0
    assert not rows.select(list(PRESETS)).to_numpy().any()
    assert np.all(rows["ibl_label"].to_numpy() == 0.0)
