"""Shared fixtures: where the real files are, temporary lakes, small synthetic sessions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("NPLAKE_REALDATA", REPO.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real lab files (../shared/realdata); its absence is an error, not a skip."""
    if not REALDATA.is_dir():
        msg = f"real data folder not found at {REALDATA} (set NPLAKE_REALDATA)"
        raise FileNotFoundError(msg)
    return REALDATA


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server for the whole test session (started on first use, stopped at the end)."""
    from tests.s3 import MotoS3

    server = MotoS3()
    yield server
    server.stop()
