"""Export lake sessions as standard NWB files (pynwb is imported only when a file is built).

`export_nwb` writes one session, `export_sessions` many into one folder with a report. Ingesting
an exported file again yields the same rows in every table, apart from `PROVENANCE`.
"""

from __future__ import annotations

from lake.export.batch import ExportOutcome, ExportReport, export_sessions
from lake.export.meta import PROVENANCE
from lake.export.nwb import dandi_path, export_nwb

__all__ = [
    "PROVENANCE",
    "ExportOutcome",
    "ExportReport",
    "dandi_path",
    "export_nwb",
    "export_sessions",
]
