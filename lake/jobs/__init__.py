"""The batch runner: prepare sources in workers (inline, spawned processes, Dask), commit groups."""

from lake.jobs.report import IngestReport, Outcome
from lake.jobs.runner import run_ingest
from lake.jobs.work import LAKE_FORMAT, pipeline_version

__all__ = ["LAKE_FORMAT", "IngestReport", "Outcome", "pipeline_version", "run_ingest"]
