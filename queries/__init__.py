"""SQL run against the lake's DuckDB views: views/, presets/ and macros/ as plain .sql files.

Each file is standalone DuckDB SQL over the table views (sessions, units, spikes, ...), so it can
be used from any DuckDB session that defines those views; `lake.views.load_query_files` runs
them all for every `Lake.sql` connection.

`GUARANTEED_COLUMNS` lists extra (source-defined) columns the SQL here relies on. Sources name
metrics differently and some have none, so the lake's table views add each listed column as
NULL when no session has it: a query never fails to bind, and a unit without a metric simply
has NULL there.

`REFERENCE_TABLES` are small tables shipped in `queries/reference/` (the brain-region ontology);
`reference_table(name)` reads one, and every lake connection holds them as tables.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: Views the lake materializes into each connection it builds, in this order. They are small
#: (one row per unit, per trial, lick or reward) and joined to millions of spikes; as views,
#: DuckDB may move their inner LEFT JOINs above the spike join (measured: 5x slower on a
#: units_annotated-spikes join), and every query would read the trials, licks and rewards
#: Parquet files again (10-20 ms each on 20 sessions).
MATERIALIZED_VIEWS: tuple[str, ...] = ("units_annotated", "units_quality", "task_events")

#: table -> {column: DuckDB type} that the views guarantee to exist (NULL when absent).
GUARANTEED_COLUMNS: dict[str, dict[str, str]] = {
    "units": {
        "snr": "DOUBLE",
        "isi_violations": "DOUBLE",
        "amplitude_cutoff": "DOUBLE",
        "presence_ratio": "DOUBLE",
        # IBL single-unit QC metrics (lake.presets: the 'ibl' preset and ibl_label)
        "slidingRP_viol": "DOUBLE",
        "noise_cutoff": "DOUBLE",
        "amp_median": "DOUBLE",
        # units_annotated's area fallback: the unit's own location (NWB units `location`)
        "location": "VARCHAR",
    },
    # trials_annotated and the change-aligned examples read change_time on any lake
    "trials": {"change_time": "DOUBLE"},
}

#: Reference tables every connection holds (name -> Parquet file under queries/); see
#: queries/reference/README.md for where they come from and under which terms.
REFERENCE_TABLES: dict[str, str] = {"brain_regions": "reference/brain_regions.parquet"}


@functools.cache
def reference_table(name: str) -> pa.Table:
    """A reference table shipped with the package, read once per process (files never change)."""
    import pyarrow.parquet as pq

    if name not in REFERENCE_TABLES:
        msg = f"no reference table {name!r}; there are {sorted(REFERENCE_TABLES)}"
        raise KeyError(msg)
    with resources.as_file(resources.files("queries") / REFERENCE_TABLES[name]) as path:
        return pq.ParquetFile(path).read()  # not read_table: pyarrow.dataset imports pandas
