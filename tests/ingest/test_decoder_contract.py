"""The contract every decoder passes, on every real source it reads.

A decoder joins by adding its cases to CASES: a decoder, a path under ../shared/realdata and the
numbers the realdata README gives for it. Known gaps are declared with `gap=` (an exception
type): the case is then an expected failure that must raise exactly that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ingest.base import DecodeOptions, Decoder
from ingest.nwb import NWBDecoder
from ingest.rig.session import RigDecoder
from schemas import TABLES, SessionBundle
from tests.helpers import assert_bundles_equal


@dataclass(frozen=True)
class Case:
    """One real source, its decoder, and the counts the realdata README pins."""

    decoder: Decoder
    source: str
    rows: dict[str, int]
    spike_time_sum: float | None = None
    gap: type[Exception] | None = None
    id: str = field(default="")


CASES = [
    Case(
        NWBDecoder(),
        "nwb/sub-anm369963_ses-20170228.nwb",
        {"units": 1, "spikes": 1_679, "channels": 64, "trials": 178, "licks": 1_798},
        1830408.7248250002,
        id="nwb-janelia-alm",
    ),
    Case(
        NWBDecoder(),
        "nwb/sub_anm00239123_ses_20170627T093549_ecephys_and_ogen.nwb",
        {"units": 4, "spikes": 34_057, "channels": 32, "trials": 412, "waveforms": 4},
        87436293.55639184,
        id="nwb-janelia-ogen",
    ),
    Case(
        NWBDecoder(),
        "nwb/sub-4_ses-4_ecephys+image.nwb",
        {"units": 35, "spikes": 214_278, "channels": 19, "trials": 0, "intervals": 450},
        302104732.80567324,
        id="nwb-human-mtl",
    ),
    # Raw rig folders: realdata's sorting/ folder is a session of one probe without a sync file
    # (kept on its own clock: time = sample / 30 kHz); sync/ is a session of a sync file alone.
    Case(
        RigDecoder(),
        "sorting",
        {"probes": 1, "units": 205, "spikes": 10_000, "channels": 384, "clock_alignment": 298},
        86686.32313333334,
        id="rig-kilosort-probe",
    ),
    Case(
        RigDecoder(),
        "sync",
        {"sync_edges": 99, "licks": 1, "units": 0, "spikes": 0},
        id="rig-sync-file",
    ),
]


def params() -> list:
    """The cases as pytest params; a declared gap is a strict xfail raising that type."""
    return [
        pytest.param(
            case,
            id=case.id or case.source,
            marks=[pytest.mark.xfail(raises=case.gap, strict=True)] if case.gap else [],
        )
        for case in CASES
    ]


@pytest.fixture(scope="module")
def decoded(realdata):
    """Each case decoded once per module (decoding is deterministic; one test checks that)."""
    cache: dict[str, SessionBundle] = {}

    def get(case: Case) -> SessionBundle:
        if case.source not in cache:
            cache[case.source] = case.decoder.decode(realdata / case.source, DecodeOptions())
        return cache[case.source]

    return get


def spike_columns(bundle: SessionBundle) -> tuple[np.ndarray, np.ndarray, int]:
    """unit_id and time over the whole stream, and the number of batches read."""
    units, times, n = [], [], 0
    for batch in bundle.batches("spikes"):
        units.append(batch.column("unit_id").to_numpy())
        times.append(batch.column("time").to_numpy())
        n += 1
    if not units:
        return np.array([], np.int64), np.array([], np.float64), 0
    return np.concatenate(units), np.concatenate(times), n


@pytest.mark.parametrize("case", params())
def test_sniffs_its_source(case, realdata):
    source = realdata / case.source
    assert case.decoder.sniff(source)
    inputs = case.decoder.inputs(source, DecodeOptions())
    if source.is_dir():  # a session folder: the files it reads, all inside it
        assert inputs and all(f.is_file() and source in f.parents for f in inputs)
    else:
        assert source in inputs


@pytest.mark.parametrize("case", params())
def test_bundle_validates_and_streams_fully(case, decoded):
    bundle = decoded(case)
    again = bundle.validate()  # a validated bundle validates again
    assert set(bundle.tables) <= set(TABLES)
    assert bundle.num_rows("sessions") == 1
    unit, _, _ = spike_columns(again)
    assert len(unit) == bundle.num_rows("spikes")


@pytest.mark.parametrize("case", params())
def test_counts_and_spike_time_sum(case, decoded):
    bundle = decoded(case)
    for name, rows in case.rows.items():
        assert bundle.num_rows(name) == rows, name
    if case.spike_time_sum is not None:
        _, time, _ = spike_columns(bundle)
        assert math.isclose(math.fsum(time), case.spike_time_sum, rel_tol=1e-12)


@pytest.mark.parametrize("case", params())
def test_keys_are_unique(case, decoded):
    bundle = decoded(case)
    for name in bundle.tables:
        spec = TABLES[name]
        if not spec.unique_key or name == "spikes":
            continue
        table = bundle.table(name)
        key = list(spec.key)
        distinct = table.group_by(key).aggregate([([], "count_all")]).num_rows
        assert distinct == table.num_rows, name


@pytest.mark.parametrize("case", params())
def test_spikes_sorted_by_unit_then_time(case, decoded):
    unit, time, _ = spike_columns(decoded(case))
    same_unit = unit[1:] == unit[:-1]
    assert np.all(unit[1:] >= unit[:-1])
    assert np.all(time[1:][same_unit] >= time[:-1][same_unit])
    assert not np.isnan(time).any()


@pytest.mark.parametrize("case", params())
def test_decoding_twice_gives_equal_tables(case, realdata, decoded):
    again = case.decoder.decode(realdata / case.source, DecodeOptions())
    assert_bundles_equal(decoded(case), again)
    assert decoded(case).notes == again.notes


@pytest.mark.parametrize("case", params())
def test_every_table_has_its_spec_columns_first(case, decoded):
    bundle = decoded(case)
    for name in bundle.tables:
        spec = TABLES[name]
        schema: pa.Schema = bundle.table(name).schema
        assert tuple(schema.names[: len(spec.columns)]) == spec.column_names, name


def test_cases_point_at_real_files(realdata):
    missing = [c.source for c in CASES if not Path(realdata / c.source).exists()]
    assert not missing
