"""Time series of every kind, and what is left out (inventory), on files built with h5py.

Allen eye tracking (EllipseSeries with per-sample area, width, height and angle; a second series
sharing the first's timestamps through a soft link), an LFP ElectricalSeries (not copied), a
processing table without times (no home), a text AnnotationSeries and scaled integer data.
"""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow.compute as pc
import pytest

from tests.ingest.nwb.files import decode_file, text, write_allen_like

N = 5


def _series(group: h5py.Group, name: str, kind: str, data, *, unit="pixels", **extra):
    ts = group.create_group(name)
    ts.attrs.update(neurodata_type=kind, namespace="ndx-ellipse-series", description=name)
    ts.create_dataset("data", data=data).attrs["unit"] = unit
    for key, value in extra.items():
        ts.create_dataset(key, data=value)
    return ts


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = write_allen_like(tmp_path_factory.mktemp("series") / "eye.nwb")
    times = np.arange(N) / 60.0
    with h5py.File(path, "a") as fh:
        eye = fh.create_group("acquisition/EyeTracking")
        eye.attrs.update(neurodata_type="EllipseEyeTracking", description="DLC ellipses")
        centre = np.arange(2 * N, dtype=np.float64).reshape(N, 2)
        per_sample = {k: np.arange(N) + i for i, k in enumerate(("area", "width", "height"))}
        pupil = _series(eye, "pupil_tracking", "EllipseSeries", centre, angle=-np.arange(N) / 10,
                        timestamps=times, reference_frame="nose", **per_sample)  # fmt: skip
        _series(eye, "eye_tracking", "EllipseSeries", centre + 100, **per_sample,
                angle=np.zeros(N))  # fmt: skip
        eye["eye_tracking/timestamps"] = h5py.SoftLink(pupil.name + "/timestamps")
        wheel = fh["acquisition"].create_group("wheel")
        wheel.attrs.update(neurodata_type="TimeSeries", namespace="core")
        data = wheel.create_dataset("data", data=np.array([1, 2, 3], dtype=np.int16))
        data.attrs.update(unit="radians", conversion=0.5, offset=-1.0)
        start = wheel.create_dataset("starting_time", data=2.0)
        start.attrs["rate"] = 4.0
        notes = fh["acquisition"].create_group("notes")
        notes.attrs["neurodata_type"] = "AnnotationSeries"
        text(notes, "data", ["start", "stop"])
        notes.create_dataset("timestamps", data=[1.0, 9.0])
        lfp = fh["acquisition"].create_group("lfp")
        lfp.attrs["neurodata_type"] = "ElectricalSeries"
        lfp.create_dataset("data", data=np.zeros((10, 4), dtype=np.int16))
        lfp.create_dataset("timestamps", data=np.arange(10) / 2500)
        table = fh.create_group("processing/optotagging/conditions")
        table.attrs.update(neurodata_type="DynamicTable", colnames=[b"level"])
        table.create_dataset("id", data=np.arange(2))
        text(table, "level", ["low", "high"]).attrs["neurodata_type"] = "VectorData"
    return decode_file(path)


def _samples(bundle, series: str, component: str) -> tuple[list, list]:
    ts = bundle.table("timeseries")
    mask = pc.and_(pc.equal(ts["series"], series), pc.equal(ts["component"], component))
    rows = ts.filter(mask)
    return rows["time"].to_pylist(), rows["value"].to_pylist()


def test_ellipse_series_keep_every_per_sample_dataset(bundle):
    info = {r["series"]: r for r in bundle.table("timeseries_info").to_pylist()}
    pupil = info["pupil_tracking"]
    assert pupil["components"] == ["angle", "area", "height", "width", "x", "y"]
    assert (pupil["neurodata_type"], pupil["namespace"], pupil["container"]) == (
        "EllipseSeries",
        "ndx-ellipse-series",
        "EllipseEyeTracking",
    )
    times, x = _samples(bundle, "pupil_tracking", "x")
    assert times == list(np.arange(N) / 60.0) and x == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert _samples(bundle, "pupil_tracking", "angle")[1] == list(-np.arange(N) / 10)
    assert _samples(bundle, "eye_tracking", "height")[1] == [2.0, 3.0, 4.0, 5.0, 6.0]
    # the eye's timestamps are a link to the pupil's: the same times
    assert _samples(bundle, "eye_tracking", "y")[0] == times


def test_scaled_integers_rate_sampled_and_text_series(bundle):
    times, values = _samples(bundle, "wheel", "data")
    assert times == [2.0, 2.25, 2.5] and values == [-0.5, 0.0, 0.5]  # 0.5 x data - 1
    info = {r["series"]: r for r in bundle.table("timeseries_info").to_pylist()}
    wheel = info["wheel"]
    assert (wheel["rate"], wheel["starting_time"], wheel["data_dtype"]) == (4.0, 2.0, "int16")
    assert (wheel["conversion"], wheel["offset"], wheel["unit"]) == (0.5, -1.0, "radians")
    ts = bundle.table("timeseries")
    notes = ts.filter(pc.equal(ts["series"], "notes"))
    assert notes["text"].to_pylist() == ["start", "stop"]
    assert notes["value"].null_count == 2


def test_what_is_not_copied_is_in_the_inventory_with_its_reason(bundle):
    inventory = {r["path"]: r for r in bundle.table("inventory").to_pylist()}
    assert set(inventory) == {
        "/acquisition/lfp/data",
        "/acquisition/lfp/timestamps",
        "/processing/optotagging/conditions/id",
        "/processing/optotagging/conditions/level",
        "/intervals/epochs/timeseries",
    }
    lfp = inventory["/acquisition/lfp/data"]
    assert (lfp["neurodata_type"], lfp["shape"], lfp["dtype"]) == ("ElectricalSeries", [10, 4],
                                                                   "int16")  # fmt: skip
    assert lfp["reason"] == "ElectricalSeries: dense electrical recording, not copied"
    assert lfp["bytes"] == 80
    assert inventory["/processing/optotagging/conditions/level"]["reason"] == (
        "a table without start_time and stop_time: no lake table holds it"
    )
    assert "lfp" not in set(bundle.table("timeseries_info")["series"].to_pylist())
    notes = bundle.table("sessions")["notes"][0].as_py()
    assert "inventory: 5 dataset(s) of the file" in notes
