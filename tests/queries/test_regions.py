"""Brain regions: the packaged ontology, units_annotated's region columns, in_region and the
grouping levels of rates_by_area / psth_by_area, in SQL and in polars.

The reference is an independent reading of the packaged source files
(queries/reference/allen_structure_tree.csv and ibl_groupings.csv) with the csv module and the
CSV's own `structure_id_path` column: it never goes through queries.brain_regions.
"""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

import lake
from ingest.synth import generate_session, truth_tables
from lake.regions import area_at, brain_regions, descendants, in_region
from lake.storage import Store, commit_bundle
from schemas import SessionBundle
from schemas.errors import UnknownRegion
from tests.conftest import REALDATA
from tests.lake.builders import make_bundle
from tests.queries.lakes import shared_lake

REFERENCE = Path(__file__).resolve().parents[2] / "queries" / "reference"
REGIONS = ("VIS", "VISp", "HPF", "CA1", "TH", "Isocortex", "grey", "root", "MB")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return shared_lake(tmp_path_factory)


def _csv_ontology() -> dict[str, dict]:
    """acronym -> {id, path (ids from root, from the CSV's own path column), depth, name}."""
    with (REFERENCE / "allen_structure_tree.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["id"] != "0"]
    out = {}
    for r in rows:
        path = [int(x) for x in r["structure_id_path"].strip("/").split("/")]
        out[r["acronym"]] = {
            "id": int(r["id"]),
            "name": r["name"],
            "path": path,
            "depth": int(float(r["depth"])),
            "parent": int(float(r["parent_structure_id"])) if r["parent_structure_id"] else None,
        }
    return out


def _groupings() -> dict[str, set[int]]:
    found: dict[str, set[int]] = {"beryl": set(), "cosmos": set()}
    with (REFERENCE / "ibl_groupings.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            found[row["grouping"]].add(int(row["structure_id"]))
    return found


ONTOLOGY = _csv_ontology()
BY_ID = {v["id"]: k for k, v in ONTOLOGY.items()}
GROUPS = _groupings()


def _expected(acronym: str) -> dict | None:
    """What the ontology says about an acronym, as units_annotated should show it."""
    if acronym not in ONTOLOGY or acronym == "root":
        return None
    entry = ONTOLOGY[acronym]
    out = {
        "structure_id": entry["id"],
        "structure_name": entry["name"],
        "structure_depth": entry["depth"],
        "structure_path": [BY_ID[i] for i in entry["path"]],
        "structure_path_ids": entry["path"],
    }
    for grouping in ("beryl", "cosmos"):
        inside = [i for i in entry["path"] if i in GROUPS[grouping]]
        out[f"{grouping}_id"] = inside[-1] if inside else None
        out[f"{grouping}_acronym"] = BY_ID[inside[-1]] if inside else None
    return out


# ------------------------------------------------------------------------------ the table
def test_the_packaged_table_is_the_csv_ontology_with_ibl_groupings():
    table = brain_regions()
    assert table.height == len(ONTOLOGY) == 1327
    assert table["acronym"].n_unique() == table.height  # acronyms are keys
    for row in table.iter_rows(named=True):
        entry = ONTOLOGY[row["acronym"]]
        assert row["structure_id"] == entry["id"]
        assert row["name"] == entry["name"]
        assert row["parent_id"] == entry["parent"]
        assert row["depth"] == entry["depth"] == len(entry["path"]) - 1
        assert row["path_ids"] == entry["path"]
        expected = _expected(row["acronym"]) or {}
        for grouping in ("beryl", "cosmos"):
            if row["acronym"] != "root":
                assert row[f"{grouping}_id"] == expected[f"{grouping}_id"], row["acronym"]
                assert row[f"{grouping}_acronym"] == expected[f"{grouping}_acronym"]
    assert len(GROUPS["beryl"]) == 306 and len(GROUPS["cosmos"]) == 10


def test_visp_layers_sit_in_vis_in_isocortex_as_the_atlas_says():
    row = brain_regions().filter(pl.col("acronym") == "VISp5").row(0, named=True)
    assert row["structure_id"] == 778 and row["depth"] == 8
    assert row["path_acronyms"] == [
        "root", "grey", "CH", "CTX", "CTXpl", "Isocortex", "VIS", "VISp", "VISp5"
    ]  # fmt: skip
    assert (row["beryl_acronym"], row["cosmos_acronym"]) == ("VISp", "Isocortex")
    root = brain_regions().filter(pl.col("acronym") == "root").row(0, named=True)
    assert (root["structure_id"], root["parent_id"], root["depth"]) == (997, None, 0)
    assert root["beryl_acronym"] is None and root["cosmos_acronym"] is None
    assert "void" not in brain_regions()["acronym"].to_list()  # IBL's placeholder, id 0


def test_every_connection_holds_the_same_table(shared):
    sql = shared.lake.sql("SELECT * FROM brain_regions ORDER BY structure_id")
    assert_frame_equal(sql, brain_regions().sort("structure_id"))


# ------------------------------------------------------------------- units_annotated
def _real_locations() -> set[str]:
    """Every electrode location of the three real NWB files, read with h5py."""
    found = set()
    for path in sorted((REALDATA / "nwb").glob("*.nwb")):
        with h5py.File(path, "r") as f:
            values = f["general/extracellular_ephys/electrodes/location"][:]
        found |= {v.decode() if isinstance(v, bytes) else str(v) for v in values}
    return found


SYNTH_AREAS = (
    "APN", "CA1", "CA3", "DG", "LGd", "LP", "MRN",
    "VISal", "VISam", "VISl", "VISp", "VISpm", "VISrl", "root",
)  # fmt: skip


def test_the_synthetic_vbn_areas_are_these():
    session = generate_session("1000000001", seed=1, size="small")
    areas = truth_tables(session)["channels"].column("structure_acronym").to_pylist()
    assert tuple(sorted(set(areas))) == SYNTH_AREAS


def test_synthetic_areas_resolve_as_the_ontology_says(tmp_path):
    bundle = make_bundle("areas", n_units=len(SYNTH_AREAS), areas=SYNTH_AREAS)
    store = Store.at(tmp_path / "lake")
    commit_bundle(store, bundle)
    got = lake.open(tmp_path / "lake").sql("SELECT * FROM units_annotated ORDER BY unit_id")
    assert got["structure_acronym"].to_list() == list(SYNTH_AREAS)
    for row in got.iter_rows(named=True):
        expected = _expected(row["structure_acronym"])
        if expected is None:  # 'root': a site in no annotated structure
            assert row["structure_acronym"] == "root"
            assert row["structure_id"] is None and row["structure_path"] is None
            continue
        assert {k: row[k] for k in expected} == expected, row["structure_acronym"]
    pinned = got.filter(pl.col("structure_acronym").is_in(["VISp", "CA1", "LGd", "MRN"]))
    assert pinned.select(
        "structure_acronym", "structure_id", "beryl_acronym", "cosmos_acronym"
    ).rows() == [
        ("CA1", 382, "CA1", "HPF"),
        ("LGd", 170, "LGd", "TH"),
        ("MRN", 128, "MRN", "MB"),
        ("VISp", 385, "VISp", "Isocortex"),
    ]
    assert got.filter(pl.col("structure_acronym") == "VISp")["structure_path"].item().to_list()[
        -3:
    ] == ["Isocortex", "VIS", "VISp"]


def test_real_file_areas_are_not_acronyms_and_keep_their_text(shared):
    locations = _real_locations()
    assert locations == {
        "hippocampus_right",
        "amygdala_right",
        "brain_region: ALM; brain_subregion: N/A; cortical_layer: 5; hemisphere: left; "
        "brain_location_full_name: N/A",
        "brain_region: Thalamus; brain_subregion: N/A; cortical_layer: N/A; hemisphere: left; "
        "coordinate_ref: bregma; coordinate_ap: 2.50; coordinate_ml: -1.50; coordinate_dv: 0.00",
    }
    real = ", ".join(f"'{s}'" for s in shared.real)
    got = shared.lake.sql(
        "SELECT structure_acronym, structure_acronym_source, structure_id, structure_path, "
        "beryl_acronym, cosmos_acronym, in_region(structure_acronym, 'root') AS in_root "
        f"FROM units_annotated WHERE session_id IN ({real})"
    )
    assert set(got["structure_acronym"].to_list()) == locations  # the text as the file has it
    assert got["structure_acronym_source"].unique().to_list() == ["channel"]
    for column in ("structure_id", "structure_path", "beryl_acronym", "cosmos_acronym"):
        assert got[column].null_count() == got.height == 40, column
    assert not got["in_root"].any()


def test_unknown_acronyms_map_to_null_and_the_cookbook_recipe_lists_them(tmp_path):
    areas = ("VISp", "hippocampus_right", "out of brain", "root", "", "void", "visp")
    store = Store.at(tmp_path / "lake")
    commit_bundle(store, make_bundle("odd", n_units=len(areas), areas=areas))
    lk = lake.open(tmp_path / "lake")
    got = lk.sql(
        "SELECT unit_id, structure_acronym, structure_id, beryl_id, cosmos_id, "
        "in_region(structure_acronym, 'grey') AS in_grey FROM units_annotated ORDER BY unit_id"
    )
    # '' is no area at all: the unit's own and its probe's location are empty too
    assert got["structure_acronym"].to_list() == [
        "VISp", "hippocampus_right", "out of brain", "root", None, "void", "visp"
    ]  # fmt: skip
    assert got["structure_id"].to_list() == [385, None, None, None, None, None, None]
    assert got["beryl_id"].to_list() == [385, None, None, None, None, None, None]
    assert got["in_grey"].to_list() == [True, False, False, False, False, False, False]
    stored = lk.sql("SELECT structure_acronym FROM channels ORDER BY channel")
    assert stored.to_series().to_list() == list(areas)  # the source text is never changed
    unknown = lk.sql(
        "SELECT structure_acronym, count(*) FROM units_annotated WHERE structure_id IS NULL "
        "GROUP BY ALL ORDER BY 1 NULLS FIRST"
    )
    assert unknown.rows() == [
        (None, 1), ("hippocampus_right", 1), ("out of brain", 1), ("root", 1), ("visp", 1),
        ("void", 1),
    ]  # fmt: skip


def test_the_area_falls_back_to_the_units_then_the_probes_location(tmp_path):
    # issue 16, item 5: units without a peak channel kept a NULL area although the file said
    bundle = make_bundle("fallback", n_units=5, areas=("VISp", "LP", "DG", "", "CA1"))
    units = bundle.tables["units"]
    no_peak = pa.array([0, None, None, 3, None], pa.int64())
    units = units.set_column(units.schema.get_field_index("peak_channel"), "peak_channel", no_peak)
    units = units.append_column("location", pa.array(["CA3", "CA1", None, "DG", ""]))
    probe = pa.array(["probeA", "probeA", "probeA", "probeA", None])
    units = units.set_column(units.schema.get_field_index("probe"), "probe", probe)
    tables = dict(bundle.tables)
    tables["units"] = units
    tables["probes"] = pa.table(
        {"probe": ["probeA"], "location": ["VISl"], "sampling_rate": [30000.0]}
    )
    store = Store.at(tmp_path / "lake")
    commit_bundle(store, SessionBundle("fallback", tables).validate())
    got = lake.open(tmp_path / "lake").sql(
        "SELECT unit_id, structure_acronym, structure_acronym_source, structure_id "
        "FROM units_annotated ORDER BY unit_id"
    )
    assert got.rows() == [
        (100, "VISp", "channel", 385),  # the peak channel wins over the unit's own 'CA3'
        (101, "CA1", "unit", 382),  # no peak channel: the unit's own location
        (102, "VISl", "probe", 409),  # no peak channel, no location: the probe's
        (103, "DG", "unit", 726),  # the peak channel's location is empty
        (104, None, None, None),  # nothing says: no probe, empty location
    ]


# ------------------------------------------------------------------------- in_region
@pytest.mark.parametrize("region", REGIONS)
def test_in_region_gives_the_same_units_in_sql_and_polars(shared, region):
    lk = shared.lake
    sql = lk.sql(
        "SELECT session_id, unit_id FROM units_annotated "
        f"WHERE in_region(structure_acronym, '{region}') ORDER BY ALL"
    )
    polars = (
        lk.analysis.units_annotated()
        .filter(in_region("structure_acronym", region))
        .select("session_id", "unit_id")
        .sort("session_id", "unit_id")
    )
    assert_frame_equal(sql, polars)
    expected = {
        a for a in ONTOLOGY if a != "root" and ONTOLOGY[region]["id"] in ONTOLOGY[a]["path"]
    }
    assert set(descendants(region)) == expected
    chosen = lk.analysis.units_annotated().join(polars, on=["session_id", "unit_id"])
    assert set(chosen["structure_acronym"].to_list()) <= expected


def test_in_region_counts_on_the_shared_lake(shared):
    counts = shared.lake.sql(
        "SELECT count(*) FILTER (WHERE in_region(structure_acronym, 'VIS')) AS vis, "
        "count(*) FILTER (WHERE in_region(structure_acronym, 'HPF')) AS hpf, "
        "count(*) FILTER (WHERE structure_acronym IN ('VISam', 'VISpm')) AS visam_visp, "
        "count(*) FILTER (WHERE structure_acronym IN ('CA1', 'CA3', 'DG')) AS hippocampus "
        "FROM units_annotated"
    ).row(0)
    assert counts[0] == counts[2] > 0 and counts[1] == counts[3] > 0


def test_an_unknown_region_is_an_error_in_sql_and_polars(shared):
    with pytest.raises(Exception, match="'VISX' is not an acronym of the Allen CCF ontology"):
        shared.lake.sql("SELECT * FROM units_annotated WHERE in_region(structure_acronym, 'VISX')")
    with pytest.raises(UnknownRegion, match="'vis' is not an acronym"):
        in_region("structure_acronym", "vis")


# ---------------------------------------------------------------------- grouping levels
LEVELS = ("structure", "beryl", "cosmos", 0, 5, 6, 7, 20)


def _level_sql(level) -> str:
    return f"'{level}'" if isinstance(level, str) else str(level)


@pytest.mark.parametrize("level", LEVELS, ids=str)
def test_rates_by_area_levels_agree_in_sql_and_polars(shared, level):
    lk = shared.lake
    sql = lk.sql(
        f"SELECT * FROM rates_by_area('units', level := {_level_sql(level)}) "
        "ORDER BY session_id, structure_acronym NULLS LAST"
    )
    py = lk.analysis.rates_by_area(None, level=level)
    assert_frame_equal(sql, py, rel_tol=1e-12, abs_tol=0.0)
    assert sql["n_units"].sum() == lk.sql("SELECT count(*) FROM units").item()


def test_rates_by_area_groups_by_the_level_asked(shared):
    lk = shared.lake
    synth = ", ".join(f"'{s}'" for s in shared.synthetic)
    units = lk.sql(f"SELECT * FROM units_annotated WHERE session_id IN ({synth})")
    expected = {}
    for level in ("beryl", "cosmos", 6):
        grouped = {}
        for area, n in units.group_by("structure_acronym").len().rows():
            info = _expected(area)
            if level == 6:
                key = (
                    None
                    if info is None
                    else info["structure_path"][min(6, info["structure_depth"])]
                )
            else:
                key = None if info is None else info[f"{level}_acronym"]
            grouped[key] = grouped.get(key, 0) + n
        expected[level] = grouped
        got = lk.sql(
            "SELECT structure_acronym, CAST(sum(n_units) AS BIGINT) "
            f"FROM rates_by_area('units', level := {_level_sql(level)}) "
            f"WHERE session_id IN ({synth}) GROUP BY 1"
        )
        assert dict(got.rows()) == grouped, level
    assert set(expected[6]) - {None} <= {"VIS", "HIP", "LAT", "APN", "MRN", "DG", "LGd"}
    assert set(expected["cosmos"]) - {None} <= {"Isocortex", "HPF", "TH", "MB"}


@pytest.mark.parametrize("level", ("structure", "cosmos", 6), ids=str)
def test_psth_by_area_levels_agree_in_sql_and_polars(shared, level):
    lk = shared.lake
    sql = lk.sql(
        "SELECT * FROM psth_by_area('units', 'licks', -0.2, 0.1, 4, "
        f"level := {_level_sql(level)}) ORDER BY structure_acronym NULLS LAST, bin"
    )
    py = lk.analysis.psth_by_area(None, "licks", bins=(-0.2, 0.1, 4), level=level)
    assert_frame_equal(sql, py, rel_tol=1e-12, abs_tol=1e-12)
    per_unit = lk.analysis.psth(None, "licks", bins=(-0.2, 0.1, 4))
    assert (
        sql.filter(pl.col("bin") == 0)["n_units"].sum()
        == per_unit.filter(pl.col("bin") == 0).height
    )


@pytest.mark.parametrize("level", ("region", -1, "7.5", True))
def test_a_bad_level_is_an_error_in_sql_and_polars(shared, level):
    with pytest.raises(UnknownRegion, match="level must be 'structure', 'beryl', 'cosmos'"):
        area_at(level)
    if not isinstance(level, bool):
        with pytest.raises(Exception, match="level must be 'structure', 'beryl', 'cosmos'"):
            shared.lake.sql(f"SELECT * FROM rates_by_area('units', level := {_level_sql(level)})")


def test_area_at_a_depth_keeps_shallower_structures():
    apn = [BY_ID[i] for i in ONTOLOGY["APN"]["path"]]
    visp5 = [BY_ID[i] for i in ONTOLOGY["VISp5"]["path"]]
    frame = pl.DataFrame(
        {"structure_acronym": ["VISp5", "APN", None], "structure_path": [visp5, apn, None]},
        schema={"structure_acronym": pl.String, "structure_path": pl.List(pl.String)},
    )
    assert frame.select(area_at(6)).to_series().to_list() == [
        "VIS",
        apn[min(6, len(apn) - 1)],
        None,
    ]
    assert frame.select(area_at(20)).to_series().to_list() == ["VISp5", "APN", None]
    assert frame.select(area_at(0)).to_series().to_list() == ["root", "root", None]
