"""The batch runner: prepare sources in workers (inline, spawned processes, Dask), commit groups.

Importing the package loads only the report types; the runner (and the decoders it needs)
loads on first use, so `import lake` stays light.
"""

from typing import TYPE_CHECKING, Any

from lake.jobs.report import IngestReport, Outcome

if TYPE_CHECKING:
    from lake.jobs.runner import run_ingest
    from lake.jobs.work import LAKE_FORMAT, pipeline_version

__all__ = ["LAKE_FORMAT", "IngestReport", "Outcome", "pipeline_version", "run_ingest"]


def __getattr__(name: str) -> Any:
    """Load the runner when one of its names is first asked for."""
    if name == "run_ingest":
        from lake.jobs.runner import run_ingest

        return run_ingest
    if name in ("LAKE_FORMAT", "pipeline_version"):
        from lake.jobs import work

        return getattr(work, name)
    msg = f"module 'lake.jobs' has no attribute {name!r}"
    raise AttributeError(msg)
