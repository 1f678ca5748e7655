"""Where the lake lives unless the user says: --lake, else $NPLAKE_LAKE, else a data folder."""

from __future__ import annotations

import os
from pathlib import Path


def default_lake_uri() -> str:
    """`$NPLAKE_LAKE` if set, else `$XDG_DATA_HOME/nplake/lake` (~/.local/share/nplake/lake).

    The default is outside any working copy, so it never collides with the package folders
    (`lake/`, `ingest/`, ...) of a checkout.
    """
    env = os.environ.get("NPLAKE_LAKE")
    if env:
        return env
    return str(data_home() / "lake")


def default_demo_uri() -> str:
    """Where `nplake demo` builds its lake unless told otherwise (next to the default lake)."""
    return str(data_home() / "demo-lake")


def data_home() -> Path:
    """Nplake's data folder: $XDG_DATA_HOME/nplake (~/.local/share/nplake)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nplake"
