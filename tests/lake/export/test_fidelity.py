"""No data left behind: every dataset of a source is in the lake (and back in the export) or in
the inventory; pynapple sees the same objects in the source and in its export.

Sources: the real NWB files of ../shared/realdata/nwb and a synthetic NWB session. The tree walk
maps each dataset to where the lake keeps it with its own rules (not the decoder's claims), so a
dataset the decoder says it kept but did not is found out.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import lake
from ingest.synth import generate_session, write_nwb
from tests.lake.export.helpers import session_rows

pytestmark = pytest.mark.slow

SOURCES = {
    "sub-anm369963_ses-20170228.nwb": "anm369963_2017-02-28_2",
    "sub_anm00239123_ses_20170627T093549_ecephys_and_ogen.nwb": "anm00239123_2017-06-27_09-35-49",
    "sub-4_ses-4_ecephys+image.nwb": "TWH103_CBID4",
    "synth.nwb": "1064644573",
}
#: What the inventory must hold per source: the only dataset the lake does not copy is the
#: human file's placeholder image data (its videos are external files).
INVENTORY = {
    "sub-4_ses-4_ecephys+image.nwb": [
        ("/stimulus/presentation/StimulusPresentation_encoding/data", "OpticalSeries", 64)
    ],
}
NOT_WALKED = ("/specifications", "/processing/nplake")
GENERAL = {
    "notes": "nwb_notes",
    "session_id": "nwb_session_id",
    "stimulus": "session_type",
}
SUBJECT = {"description": "subject_description", "weight": "subject_weight"}
UNITS_SPECIAL = {
    "spike_times": "spikes",
    "spike_times_index": "spikes",
    "spike_amplitudes": "spikes",
    "spike_amplitudes_index": "spikes",
    "waveform_mean": "waveforms",
    "waveform_sd": "waveforms",
}
ELECTRODES = {"x": "ccf_ap", "y": "ccf_dv", "z": "ccf_ml", "location": "structure_acronym",
              "local_index": "channel", "valid_data": "valid", "id": "channel_id",
              "group": "probe", "group_name": "probe"}  # fmt: skip


@pytest.fixture(scope="module")
def sources(realdata, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fidelity")
    synth = write_nwb(generate_session("1064644573", seed=3), root / "synth.nwb")
    files = {name: realdata / "nwb" / name for name in SOURCES if name != "synth.nwb"}
    return {**files, "synth.nwb": synth}


@pytest.fixture(scope="module")
def lk(sources, tmp_path_factory) -> lake.Lake:
    lk = lake.open(tmp_path_factory.mktemp("fidelity-lake") / "lake")
    report = lk.ingest(list(sources.values()))
    assert report.ok, str(report)
    return lk


@pytest.fixture(scope="module")
def exported(lk, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("fidelity-out")
    return {name: lk.export_nwb(sid, out) for name, sid in SOURCES.items()}


def _datasets(path: Path) -> list[str]:
    found: list[str] = []
    with h5py.File(path) as fh:
        fh.visititems(
            lambda name, obj: found.append(f"/{name}") if isinstance(obj, h5py.Dataset) else None
        )
    return [p for p in found if not p.startswith(NOT_WALKED)]


def _has(rows: list[dict], column: str) -> bool:
    return any(r.get(column) is not None for r in rows)


def _lake_home(path: str, rows: dict[str, list[dict]]) -> bool:
    """Whether the lake holds the dataset at `path` (rules of docs/ingest.md)."""
    parts = path.strip("/").split("/")
    session = rows["sessions"][0]
    series = {r["path"]: r for r in rows["timeseries_info"]}
    parent = "/" + "/".join(parts[:-1])
    if parent in series:
        samples = [r for r in rows["timeseries"] if r["series"] == series[parent]["series"]]
        info = series[parent]
        kept = json.loads(info["attributes"])["datasets"]
        return bool(samples) and (parts[-1] in (*info["components"], "timestamps",
                                                "starting_time") or parts[-1] in kept
                                  or parts[-1] == "data")  # fmt: skip

    if len(parts) == 1:
        return session.get(parts[0]) is not None
    if parts[0] == "general" and len(parts) == 2:
        return session.get(GENERAL.get(parts[1], parts[1])) is not None
    if parts[:2] == ["general", "subject"]:
        return session.get(SUBJECT.get(parts[2], parts[2])) is not None
    if parts[:2] == ["general", "optogenetics"]:
        sites = json.loads(session["optogenetic_sites"])
        return any(s["name"] == parts[2] and parts[3] in s for s in sites)
    if parts[:3] == ["general", "extracellular_ephys", "electrodes"]:
        return _has(rows["channels"], ELECTRODES.get(parts[3], parts[3]))
    if parts[0] == "units":
        column = parts[1]
        if column in UNITS_SPECIAL:
            return bool(rows[UNITS_SPECIAL[column]])
        if column.startswith("electrode"):
            return _has(rows["units"], "probe")
        return _has(rows["units"], "unit_id" if column == "id" else column.removesuffix("_index"))
    if parts[:2] == ["intervals", "trials"]:
        column = "trial_index" if parts[2] == "id" else parts[2].removesuffix("_index")
        return _has(rows["trials"], column)
    if parts[0] == "intervals" or (parts[0] == "processing" and len(parts) == 4):
        name, column = parts[-2], parts[-1]
        column = "row" if column == "id" else column.removesuffix("_index")
        tables = rows["intervals"] + rows["stimulus_presentations"]
        return _has([r for r in tables if r["name"] == name], column)
    return False


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_dataset_is_in_the_lake_and_the_export_or_in_the_inventory(
    lk, sources, exported, name
):
    sid = SOURCES[name]
    tables = ("sessions", "channels", "units", "spikes", "waveforms", "trials", "intervals",
              "stimulus_presentations", "timeseries_info", "timeseries", "inventory")  # fmt: skip
    rows = {t: session_rows(lk, t, sid).to_pylist() for t in tables}
    inventory = {r["path"]: r for r in rows["inventory"]}
    expected = INVENTORY.get(name, [])
    assert [(p, r["neurodata_type"], r["bytes"]) for p, r in inventory.items()] == expected
    with h5py.File(exported[name]) as out:
        in_export = {p for p in _datasets(exported[name]) if p in out}
    missing = []
    for path in _datasets(sources[name]):
        if path in inventory:
            assert inventory[path]["reason"]
            continue
        if not _lake_home(path, rows):
            missing.append(f"{path}: not in the lake")
        elif path not in in_export:
            missing.append(f"{path}: in the lake, not in the export")
    assert missing == []


def _pynapple(path: Path) -> dict:
    import pynapple as nap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = nap.load_file(str(path))
        out = {}
        for key in sorted(data.keys()):
            obj = data[key]
            entry: dict = {"type": type(obj).__name__}
            if isinstance(obj, nap.TsGroup):
                entry["meta"] = sorted(obj.metadata_columns)
                entry["spikes"] = {int(k): obj[k].t.copy() for k in obj.index}
            elif isinstance(obj, nap.IntervalSet):
                entry["meta"] = sorted(obj.metadata_columns)
                entry["values"] = np.asarray(obj.values).copy()
            elif hasattr(obj, "t"):
                entry["t"] = np.asarray(obj.t).copy()
                entry["d"] = np.asarray(obj.d).copy()
                entry["columns"] = [str(c) for c in getattr(obj, "columns", [])]
            out[key] = entry
        data.close()
    return out


@pytest.mark.parametrize("name", list(SOURCES))
def test_pynapple_sees_the_same_objects_in_source_and_export(sources, exported, name):
    source, export = _pynapple(sources[name]), _pynapple(exported[name])
    assert list(source) == list(export)
    for key, want in source.items():
        got = export[key]
        assert want.keys() == got.keys(), key
        for field, value in want.items():
            if field == "spikes":
                assert value.keys() == got[field].keys()
                for unit, times in value.items():
                    assert np.array_equal(np.sort(times), got[field][unit]), (key, unit)
            elif isinstance(value, np.ndarray):
                np.testing.assert_array_equal(got[field], value, err_msg=f"{key}.{field}")
            else:
                assert got[field] == value, (key, field)


def test_pynapple_keys_of_the_janelia_file(exported):
    data = _pynapple(exported["sub-anm369963_ses-20170228.nwb"])
    assert list(data) == ["lick_left_times", "lick_right_times", "trials", "units"]
    assert data["units"]["meta"] == ["cell_type", "depth", "quality", "rate"]
    assert len(data["lick_left_times"]["t"]) == 782 and len(data["lick_right_times"]["t"]) == 1016


def test_human_units_keep_their_electrode_metadata_in_pynapple(exported):
    meta = _pynapple(exported["sub-4_ses-4_ecephys+image.nwb"])["units"]["meta"]
    assert meta == sorted(
        ["rate", "x", "y", "z", "imp", "location", "filtering", "group_name", "origChannel"]
    )
