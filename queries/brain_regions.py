"""The brain-region reference table: the Allen CCF structure ontology with IBL's groupings.

`queries/reference/brain_regions.parquet` is derived from two source files kept beside it, both
taken unchanged from the `iblatlas` 1.3.0 wheel on PyPI (queries/reference/README.md says where
they come from and under which terms):

- `allen_structure_tree.csv`: the Allen Mouse Brain Atlas structure ontology (CCFv3), one row
  per structure (id, acronym, name, parent, depth, graph order, colour);
- `ibl_groupings.csv`: the structure ids of IBL's Beryl (306 areas) and Cosmos (10 divisions)
  groupings (`beryl.npy`, `cosmos.npy` of the wheel).

The table has one row per structure (IBL's `void` row, id 0, is not an Allen structure and is
left out): structure_id, acronym, name, parent_id (NULL for root), depth (root 0), graph_order,
path_ids and path_acronyms (from root to the structure itself), beryl_id / beryl_acronym and
cosmos_id / cosmos_acronym (the nearest structure of the grouping on the path, the structure
itself included; NULL where the path has none, where IBL's own mapping says "root") and color_hex.

Rebuild after changing the source files (the test suite checks the Parquet file against an
independent reading of the CSV)::

    python -m queries.brain_regions                       # from the files in queries/reference
    python -m queries.brain_regions --wheel iblatlas-X.whl  # refresh the sources from a wheel
"""

from __future__ import annotations

import argparse
import csv
import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REFERENCE = Path(__file__).resolve().parent / "reference"
ONTOLOGY_CSV = REFERENCE / "allen_structure_tree.csv"
GROUPINGS_CSV = REFERENCE / "ibl_groupings.csv"
PARQUET = REFERENCE / "brain_regions.parquet"
#: IBL's placeholder for "outside the annotation" (index 0 of its tables): not a structure.
VOID_ID = 0
GROUPINGS = ("beryl", "cosmos")

SCHEMA = pa.schema(
    [
        pa.field("structure_id", pa.int64(), nullable=False),
        pa.field("acronym", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("parent_id", pa.int64()),
        pa.field("depth", pa.int64(), nullable=False),
        pa.field("graph_order", pa.int64(), nullable=False),
        pa.field("path_ids", pa.list_(pa.int64()), nullable=False),
        pa.field("path_acronyms", pa.list_(pa.string()), nullable=False),
        pa.field("beryl_id", pa.int64()),
        pa.field("beryl_acronym", pa.string()),
        pa.field("cosmos_id", pa.int64()),
        pa.field("cosmos_acronym", pa.string()),
        pa.field("color_hex", pa.string()),
    ]
)


def build(ontology_csv: Path = ONTOLOGY_CSV, groupings_csv: Path = GROUPINGS_CSV) -> pa.Table:
    """The brain_regions table from the ontology CSV and the grouping ids (1,327 rows)."""
    with ontology_csv.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["id"]) != VOID_ID]
    acronym = {int(r["id"]): r["acronym"] for r in rows}
    parent = {int(r["id"]): _int(r["parent_structure_id"]) for r in rows}
    groups = read_groupings(groupings_csv)
    columns: dict[str, list] = {field.name: [] for field in SCHEMA}
    for r in rows:  # 1,327 structures, once, when the reference file is rebuilt
        sid = int(r["id"])
        path = _path(sid, parent)
        columns["structure_id"].append(sid)
        columns["acronym"].append(r["acronym"])
        columns["name"].append(r["name"])
        columns["parent_id"].append(parent[sid])
        columns["depth"].append(len(path) - 1)
        columns["graph_order"].append(int(float(r["graph_order"])))
        columns["path_ids"].append(path)
        columns["path_acronyms"].append([acronym[p] for p in path])
        for grouping in GROUPINGS:
            found = next((p for p in reversed(path) if p in groups[grouping]), None)
            columns[f"{grouping}_id"].append(found)
            columns[f"{grouping}_acronym"].append(None if found is None else acronym[found])
        columns["color_hex"].append(r["color_hex_triplet"] or None)
    return pa.table(columns, schema=SCHEMA)


def read_groupings(path: Path = GROUPINGS_CSV) -> dict[str, set[int]]:
    """{grouping: structure ids} from ibl_groupings.csv (columns grouping, structure_id)."""
    found: dict[str, set[int]] = {g: set() for g in GROUPINGS}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            found[row["grouping"]].add(int(row["structure_id"]))
    return found


def _int(text: str) -> int | None:
    return int(float(text)) if text else None


def _path(sid: int, parent: dict[int, int | None]) -> list[int]:
    """Structure ids from the root down to `sid`."""
    path = [sid]
    while (up := parent[path[-1]]) is not None:
        path.append(up)
    return path[::-1]


def refresh_from_wheel(wheel: Path) -> None:
    """Copy the ontology CSV and the Beryl/Cosmos ids out of an iblatlas wheel, unchanged.

    Checks the groupings rebuilt here against the wheel's own mapping table (mappings.pqt:
    IBL's Beryl and Cosmos index of every structure) before anything is written.
    """
    import numpy as np

    with zipfile.ZipFile(wheel) as z:
        ontology = z.read("iblatlas/allen_structure_tree.csv")
        ids = {g: np.load(io.BytesIO(z.read(f"iblatlas/{g}.npy"))).ravel() for g in GROUPINGS}
        mappings = pq.read_table(io.BytesIO(z.read("iblatlas/mappings.pqt")))
    ONTOLOGY_CSV.write_bytes(ontology)
    lines = ["grouping,structure_id"] + [f"{g},{int(i)}" for g in GROUPINGS for i in ids[g]]
    GROUPINGS_CSV.write_text("\n".join(lines) + "\n")
    _check_against_ibl(build(), ontology, mappings)


def _check_against_ibl(table: pa.Table, ontology: bytes, mappings: pa.Table) -> None:
    """IBL's non-lateralised Beryl/Cosmos mapping gives the same area for every structure."""
    rows = list(csv.DictReader(io.StringIO(ontology.decode())))
    ids = [int(r["id"]) for r in rows]  # the index IBL's mappings point into
    ours = {
        g: dict(zip(table["structure_id"].to_pylist(), table[f"{g}_id"].to_pylist(), strict=True))
        for g in GROUPINGS
    }
    for grouping in GROUPINGS:
        target = mappings.column(grouping.capitalize()).to_pylist()[: len(ids)]
        for index, sid in enumerate(ids):
            if sid == VOID_ID:
                continue
            ibl = ids[target[index]]
            ibl = None if ibl in (997, VOID_ID) else ibl  # IBL: root where no area applies
            if ours[grouping][sid] != ibl:
                msg = f"{grouping} of {sid}: IBL says {ibl}, rebuilt {ours[grouping][sid]}"
                raise ValueError(msg)


def main() -> None:
    """Rebuild brain_regions.parquet (after refreshing the sources from a wheel, if given)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="an iblatlas wheel to take the sources from")
    args = parser.parse_args()
    if args.wheel is not None:
        refresh_from_wheel(args.wheel)
    pq.write_table(build(), PARQUET, compression="zstd")
    print(f"wrote {PARQUET}")


if __name__ == "__main__":
    main()
