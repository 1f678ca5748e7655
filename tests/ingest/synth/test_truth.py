"""A synthetic NWB session decodes to its ground truth: every truth column, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest import decode
from ingest.synth import SizeSpec, SyntheticSession, generate_session, truth_tables, write_nwb
from ingest.synth.tracking import EYE_SERIES, OPTO_SITE, make_tracking
from schemas import SessionBundle
from tests.helpers import arrays_equal

SID = "1071234567"
#: Three probes, more units than a tiny session, a few hundred trials' worth of edge cases.
SMALL = SizeSpec(
    n_probes=3,
    units_per_probe=12,
    channels_per_probe=48,
    duration_s=90.0,
    mean_rate_hz=9.0,
    n_trials=30,
)


@pytest.fixture(scope="module", params=["tiny", "spec"])
def session(request) -> SyntheticSession:
    size = "tiny" if request.param == "tiny" else SMALL
    return generate_session(SID, seed=11, size=size)


@pytest.fixture(scope="module", params=[None, "gzip"])
def decoded(session, request, tmp_path_factory) -> SessionBundle:
    path = tmp_path_factory.mktemp("truth") / "session.nwb"
    return decode(write_nwb(session, path, compression=request.param))


def _plain(values: pa.ChunkedArray) -> pa.Array:
    values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    return values


def test_every_truth_table_is_decoded(session, decoded):
    assert set(truth_tables(session)) <= set(decoded.tables)


@pytest.mark.parametrize(
    "table",
    [
        "sessions",
        "probes",
        "channels",
        "units",
        "spikes",
        "waveforms",
        "trials",
        "licks",
        "rewards",
        "running_speed",
        "intervals",
        "stimulus_presentations",
    ],
)
def test_decoded_table_equals_truth_on_every_truth_column(session, decoded, table):
    truth = truth_tables(session)[table]
    got = decoded.table(table)
    assert got.num_rows == truth.num_rows
    missing = [c for c in truth.column_names if c not in got.column_names]
    assert not missing, f"{table}: decoded table lacks truth columns {missing}"
    for column in truth.column_names:
        want, have = _plain(truth.column(column)), _plain(got.column(column))
        assert want.type == have.type, (table, column, want.type, have.type)
        assert arrays_equal(want, have), f"{table}.{column} differs from the truth"


def test_spike_times_are_bit_identical(session, decoded):
    truth = truth_tables(session)["spikes"]
    got = decoded.table("spikes")
    assert got.column("time").to_numpy().tobytes() == truth.column("time").to_numpy().tobytes()


def test_file_without_the_nplake_module_decodes_the_standard_parts(session, tmp_path: Path):
    import h5py

    path = write_nwb(session, tmp_path / "plain.nwb")
    with h5py.File(path, "a") as fh:
        del fh["processing/nplake"]
    bundle = decode(path)
    probes = bundle.table("probes")
    assert probes.column("sampling_rate").null_count == probes.num_rows
    assert bundle.table("sessions").column("rig")[0].as_py() is None
    # manufacturer and model come from the standard DeviceModel, with or without the module
    assert set(probes.column("manufacturer").to_pylist()) == {"imec"}
    assert set(probes.column("model").to_pylist()) == {"Neuropixels 1.0"}


def _samples(timeseries: pa.Table, series: str, component: str) -> tuple[np.ndarray, np.ndarray]:
    mask = pc.and_(
        pc.equal(timeseries.column("series"), series),
        pc.equal(timeseries.column("component"), component),
    )
    rows = timeseries.filter(mask)
    assert rows.column("sample").to_pylist() == list(range(rows.num_rows))
    return rows.column("time").to_numpy(), rows.column("value").to_numpy(zero_copy_only=False)


def test_tracking_series_decode_to_the_generated_arrays(session, decoded):
    t = make_tracking(session)
    ts = decoded.table("timeseries")
    n = len(t.position)
    for k, component in enumerate(("x", "y")):
        time, value = _samples(ts, "position", component)
        assert value.tobytes() == t.position[:, k].tobytes()
        assert time.tobytes() == (t.position_start + np.arange(n) / 30.0).tobytes()
        for name in EYE_SERIES:
            time, value = _samples(ts, name, component)
            assert value.tobytes() == t.eye[name][:, k].tobytes()
            assert time.tobytes() == t.eye_times.tobytes()
    _, area = _samples(ts, "pupil_area", "data")
    np.testing.assert_array_equal(area, t.pupil_area)  # NaN during blinks
    _, blink = _samples(ts, "likely_blink", "data")
    assert blink.tolist() == t.likely_blink.astype(float).tolist()
    info = {r["series"]: r for r in decoded.table("timeseries_info").to_pylist()}
    position = info["position"]
    assert (position["neurodata_type"], position["container"], position["unit"]) == (
        "SpatialSeries",
        "Position",
        "cm",
    )
    assert (position["rate"], position["starting_time"], position["n_samples"]) == (
        30.0,
        t.position_start,
        n,
    )
    assert position["components"] == ["x", "y"] and position["data_shape"] == [n, 2]
    assert info["pupil_tracking"]["container"] == "EyeTracking"
    assert info["likely_blink"]["data_dtype"] == "bool"
    assert info["licks"]["lake_table"] == "licks"
    assert info["speed"]["lake_table"] == "running_speed"
    sites = json.loads(decoded.table("sessions").column("optogenetic_sites")[0].as_py())
    assert sites == [OPTO_SITE]
