"""Kilosort/phy folders: the real Allen probe folder pinned, synthetic folders, bad input."""

from __future__ import annotations

import builtins
import importlib
import runpy
import sys

import numpy as np
import pyarrow.compute as pc
import pytest

from ingest.rig.sorting import UNIT_ID_STRIDE, read_params, read_sorting, unit_ids
from schemas import TABLES, DecodeError
from schemas.conform import conform_table
from tests.ingest.rig.fakes import write_phy_folder

SORTED = "sorting/725254892_388523_20180726_probeA_sorted"
KILOSORT_PARAMS = """dat_path = 'continuous.dat'
n_channels_dat = 384
dtype = 'int16'
offset = 0
sample_rate = 30000.
hp_filtered = False
"""


@pytest.fixture(scope="module")
def real(realdata):
    return read_sorting(realdata / SORTED)


def test_real_folder_is_found_below_the_probe_folder(real, realdata):
    assert real.folder == realdata / SORTED / "continuous" / "Neuropix-3a-100.0"
    assert real.params == {}
    assert (real.sample_rate, real.sample_rate_source) == (30000.0, "probe_info.json")
    assert real.probe == {
        "serial_number": "641252332",
        "model": "3a",
        "sampling_rate": 30000.0,
        "lfp_sampling_rate": 2500.0,
        "surface_channel": 333,
        "air_channel": 384,
        "software": "Open Ephys GUI 0.4.4",
    }


def test_real_units(real):
    units = real.units
    assert units.num_rows == 205
    assert units.column_names == [
        "cluster_id",
        "quality",
        "peak_channel",
        "spike_count",
        "peak_chan",  # metrics.csv columns as the source names them (cluster_ids is the key)
        "snr",
        "firing_rate",
        "isi_viol",
        "unit_quality",
    ]
    assert units.column("cluster_id").to_pylist() == list(range(205))
    quality = pc.value_counts(units.column("quality")).to_pylist()
    assert {q["values"]: q["counts"] for q in quality} == {"good": 189, "noise": 16}
    # metrics.csv's own label disagrees with the curation: both are kept
    labels = pc.value_counts(units.column("unit_quality")).to_pylist()
    assert {q["values"]: q["counts"] for q in labels} == {"good": 179, "noise": 26}
    assert pc.sum(units.column("spike_count")).as_py() == 10_000
    assert pc.sum(pc.greater(units.column("spike_count"), 0)).as_py() == 160
    peak = units.column("peak_channel")
    assert (pc.min(peak).as_py(), pc.max(peak).as_py()) == (3, 364)
    assert peak.to_pylist() == units.column("peak_chan").to_pylist()
    assert units.column("snr")[0].as_py() == pytest.approx(4.885615203226523)
    conform_table(TABLES["units"], units.append_column("unit_id", units["cluster_id"]), "s1")


def test_real_channels(real):
    channels = real.channels
    assert channels.num_rows == 384  # ccf_regions.csv
    assert channels.column("channel").to_pylist() == list(range(384))
    assert pc.sum(channels.column("used_for_sorting")).as_py() == 338  # channel_map.npy
    assert pc.sum(channels.column("valid")).as_py() == 373
    acronyms = pc.value_counts(channels.column("structure_acronym")).to_pylist()
    # 'none' means unknown: null
    assert {x["values"]: x["counts"] for x in acronyms} == {None: 297, "VISp": 87}
    for column in ("ccf_ap", "ccf_dv", "ccf_ml", "structure_id"):
        assert channels.column(column).null_count == 384, column  # -1 / 0 mean unknown
    assert channels.column("cortical_depth").null_count == 297  # known on the VISp channels
    first = channels.slice(0, 1).to_pylist()[0]
    assert (first["probe_horizontal_position"], first["probe_vertical_position"]) == (43.0, 20.0)
    assert first["used_for_sorting"] is False
    table = conform_table(TABLES["channels"], channels.append_column("probe", [["A"] * 384]), "s")
    assert table.num_rows == 384


def test_real_spikes(real):
    assert real.spike_samples.shape == (10_000,)
    assert real.spike_samples.dtype == np.int64
    assert real.spike_samples[:4].tolist() == [131, 207, 253, 327]
    assert real.spike_clusters[:4].tolist() == [10, 19, 121, 133]
    assert real.spike_amplitudes[0] == pytest.approx(15.42463779)
    order = real.spike_order()
    key = real.spike_clusters[order] * 10**9 + real.spike_samples[order]
    assert np.all(np.diff(key) >= 0)


def test_synthetic_folder_with_params_and_kslabels(tmp_path):
    folder = write_phy_folder(
        tmp_path / "ks",
        spike_samples=[[10], [20], [30], [40]],
        spike_clusters=[3, 1, 3, 7],
        amplitudes=[1.0, 2.0, 3.0, 4.0],
        labels={1: "good", 3: "mua", 5: "noise"},
        label_file="cluster_KSLabel.tsv",
        params=KILOSORT_PARAMS.replace("30000.", "29999.5") + "evil = __import__('os')\n",
        channel_map=[0, 1, 3],
        channel_positions=[[0, 0], [32, 0], [16, 20]],
    )
    (folder / "metrics.csv").write_text(
        ",cluster_ids,peak_chan,quality,snr\n0,1,4,good,2.5\n1,3,7,noise,1.0\n2,7,2,good,NaN\n"
    )
    probe = read_sorting(tmp_path)
    assert probe.folder == folder
    assert (probe.sample_rate, probe.sample_rate_source) == (29999.5, "params.py")
    assert probe.params["n_channels_dat"] == 384
    assert probe.params["hp_filtered"] is False
    assert probe.params["evil"] == "__import__('os')"  # kept as text, never run
    units = probe.units.to_pydict()
    assert units["cluster_id"] == [1, 3, 5, 7]
    assert units["quality"] == ["good", "mua", "noise", None]  # cluster_KSLabel.tsv
    assert units["quality_metrics"] == ["good", "noise", None, "good"]  # metrics.csv's own
    assert units["spike_count"] == [1, 2, 0, 1]
    assert units["peak_channel"] == units["peak_chan"] == [4, 7, None, 2]
    assert units["snr"] == [2.5, 1.0, None, None]
    channels = probe.channels.to_pydict()
    assert channels["channel"] == [0, 1, 3]
    assert channels["probe_horizontal_position"] == [0.0, 32.0, 16.0]
    assert channels["used_for_sorting"] == [True, True, True]


def test_defaults_without_params_or_probe_info(tmp_path):
    write_phy_folder(tmp_path, spike_samples=[5], spike_clusters=[0])
    probe = read_sorting(tmp_path)
    assert (probe.sample_rate, probe.sample_rate_source) == (30000.0, "default")
    assert probe.notes == ("no sample rate in params.py or probe_info.json: assumed 30000 Hz",)
    assert probe.spike_amplitudes is None
    assert probe.channels.num_rows == 0


def test_missing_spike_clusters(tmp_path):
    write_phy_folder(tmp_path / "ks", spike_samples=[1, 2], spike_clusters=None)
    with pytest.raises(DecodeError, match=r"spike_clusters\.npy is missing") as err:
        read_sorting(tmp_path / "ks")
    assert err.value.file == str(tmp_path / "ks")
    assert err.value.field == "spike_clusters.npy"


def test_mismatched_lengths_name_file_and_field(tmp_path):
    write_phy_folder(tmp_path / "a", spike_samples=[1, 2, 3], spike_clusters=[0, 1])
    with pytest.raises(DecodeError, match="2 values for 3 spikes") as err:
        read_sorting(tmp_path / "a")
    assert err.value.file == str(tmp_path / "a" / "spike_clusters.npy")
    assert err.value.field == "length"
    write_phy_folder(tmp_path / "b", spike_samples=[1, 2], spike_clusters=[0, 1], amplitudes=[1.0])
    with pytest.raises(DecodeError) as err:
        read_sorting(tmp_path / "b")
    assert (err.value.file, err.value.field) == (str(tmp_path / "b" / "amplitudes.npy"), "length")
    write_phy_folder(
        tmp_path / "c", spike_samples=[1], spike_clusters=[0],
        channel_map=[0, 1], channel_positions=[[0, 0]],
    )  # fmt: skip
    with pytest.raises(DecodeError, match="1 positions for 2 channels") as err:
        read_sorting(tmp_path / "c")
    assert err.value.field == "rows"


def test_no_or_several_sorting_folders(tmp_path):
    with pytest.raises(DecodeError, match=r"no spike_times\.npy"):
        read_sorting(tmp_path)
    write_phy_folder(tmp_path / "x" / "a", spike_samples=[1], spike_clusters=[0])
    write_phy_folder(tmp_path / "y" / "b", spike_samples=[1], spike_clusters=[0])
    with pytest.raises(DecodeError, match="several sorting folders"):
        read_sorting(tmp_path)


def test_repeated_cluster_ids_in_a_label_file(tmp_path):
    write_phy_folder(tmp_path, spike_samples=[1], spike_clusters=[0])
    (tmp_path / "cluster_group.tsv").write_text("cluster_id\tgroup\n0\tgood\n0\tmua\n")
    with pytest.raises(DecodeError, match="repeated cluster ids") as err:
        read_sorting(tmp_path)
    assert err.value.field == "cluster_id"


def test_params_are_read_as_text(tmp_path):
    file = tmp_path / "params.py"
    file.write_text(KILOSORT_PARAMS + "# comment\nimport os\nx = os.getcwd()\n")
    assert read_params(file) == {
        "dat_path": "continuous.dat",
        "n_channels_dat": 384,
        "dtype": "int16",
        "offset": 0,
        "sample_rate": 30000.0,
        "hp_filtered": False,
        "x": "os.getcwd()",
    }


def test_unit_id_scheme():
    assert unit_ids(0, np.array([0, 5])).tolist() == [0, 5]
    assert unit_ids(3, np.array([99_999])).tolist() == [399_999]
    with pytest.raises(DecodeError, match=r"cluster ids must be in \[0, 100000\)"):
        unit_ids(1, np.array([UNIT_ID_STRIDE]))


def test_params_py_with_side_effects_is_parsed_never_executed(tmp_path, monkeypatch):
    # a params.py that, if executed or imported, would leave a file behind and then raise
    marker = tmp_path / "params_py_was_executed"
    trap = (
        f"{KILOSORT_PARAMS}"
        f"import pathlib\n"
        f"marker = pathlib.Path({str(marker)!r}).write_text('ran')\n"
        f"sample_rate = 1.0 if pathlib.Path({str(marker)!r}).exists() else 2.0\n"
        "raise RuntimeError('params.py was executed')\n"
    )
    folder = write_phy_folder(
        tmp_path / "ks", spike_samples=[10, 20], spike_clusters=[0, 0], params=trap
    )

    def guard(real):
        def guarded(source, *args, **kwargs):
            where = getattr(source, "co_filename", source)
            text = source.decode(errors="replace") if isinstance(source, bytes) else str(where)
            if "params" in str(where).rsplit("/", 1)[-1] or marker.name in text:
                msg = "params.py must be parsed as text, never run or imported"
                raise AssertionError(msg)
            return real(source, *args, **kwargs)

        return guarded

    monkeypatch.setattr(builtins, "exec", guard(builtins.exec))
    monkeypatch.setattr(builtins, "eval", guard(builtins.eval))
    monkeypatch.setattr(importlib, "import_module", guard(importlib.import_module))
    monkeypatch.setattr(runpy, "run_path", guard(runpy.run_path))
    modules = set(sys.modules)
    params = read_params(folder / "params.py")
    probe = read_sorting(folder)
    assert not marker.exists()
    assert not {m for m in set(sys.modules) - modules if "params" in m}  # never imported
    assert params["marker"] == f"pathlib.Path({str(marker)!r}).write_text('ran')"
    # the last assignment wins, kept as text: no value was computed
    assert params["sample_rate"].startswith("1.0 if pathlib.Path(")
    assert probe.params == params
    assert (probe.sample_rate, probe.sample_rate_source) != (1.0, "params.py")


def test_negative_sample_indices_are_refused(tmp_path):
    write_phy_folder(tmp_path, spike_samples=[1, 2, 3], spike_clusters=[0, 0, 0])
    np.save(tmp_path / "spike_times.npy", np.array([10, -1_000_000_000, 30], dtype=np.int64))
    with pytest.raises(DecodeError) as err:
        read_sorting(tmp_path)
    assert (err.value.file, err.value.field) == (str(tmp_path / "spike_times.npy"), "values")
    assert err.value.reason == (
        "sample index -1000000000 (spike 1) is negative: Kilosort counts samples from 0 at the "
        "recording's start, so the file is damaged; re-export the sorting"
    )


def test_clusters_with_spikes_but_no_label_are_kept_with_a_note(tmp_path):
    write_phy_folder(
        tmp_path,
        spike_samples=[1, 2, 3, 4, 5],
        spike_clusters=[0, 99_999, 1, 99_999, 4],
        labels={0: "good", 1: "mua", 2: "noise"},
    )
    probe = read_sorting(tmp_path)
    assert probe.notes == (
        "no sample rate in params.py or probe_info.json: assumed 30000 Hz",
        "cluster_group.tsv has no row for 2 clusters with spikes (4, 99999; 3 spikes): kept, "
        "quality null",
    )
    units = probe.units.to_pydict()
    assert units["cluster_id"] == [0, 1, 2, 4, 99_999]
    assert units["quality"] == ["good", "mua", "noise", None, None]
    assert units["spike_count"] == [1, 1, 0, 1, 2]


def test_text_in_a_numeric_metrics_column_is_refused_naming_cell_and_row(tmp_path):
    write_phy_folder(tmp_path, spike_samples=[1, 2], spike_clusters=[0, 1])
    (tmp_path / "metrics.csv").write_text(
        "cluster_id,snr,unit_quality\n0,2.5,good\n1,n/a; see notes,noise\n2,1e-3,good\n"
    )
    with pytest.raises(DecodeError) as err:
        read_sorting(tmp_path)
    assert (err.value.file, err.value.field) == (str(tmp_path / "metrics.csv"), "snr")
    assert err.value.reason == (
        "'n/a; see notes' in row 2 is not a number, unlike the column's other values: fix the "
        "cell (leave it empty when unknown)"
    )


def test_a_mostly_text_metrics_column_stays_text(tmp_path):
    write_phy_folder(tmp_path, spike_samples=[1, 2], spike_clusters=[0, 1])
    (tmp_path / "metrics.csv").write_text("cluster_id,note\n0,drifts\n1,1\n2,merged\n")
    assert read_sorting(tmp_path).units["note"].to_pylist() == ["drifts", "1", "merged"]


@pytest.mark.parametrize("name", ["spike_times.npy", "spike_clusters.npy", "amplitudes.npy"])
def test_an_empty_or_cut_npy_file_is_named(tmp_path, name):
    write_phy_folder(tmp_path, spike_samples=[1, 2], spike_clusters=[0, 1], amplitudes=[1.0, 2.0])
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(DecodeError, match=r"not a readable \.npy array") as err:
        read_sorting(tmp_path)
    assert err.value.file == str(tmp_path / name)


def test_a_metrics_header_that_is_not_utf8_is_named(tmp_path):
    write_phy_folder(tmp_path, spike_samples=[1], spike_clusters=[0])
    (tmp_path / "metrics.csv").write_bytes(b"cluster_id,sn\x80r\n0,1.0\n")
    with pytest.raises(DecodeError, match="a column name is not UTF-8 text") as err:
        read_sorting(tmp_path)
    assert (err.value.file, err.value.field) == (str(tmp_path / "metrics.csv"), "header")
