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


def check_location(store, *, force: bool, writing: bool = False) -> None:
    """Refuse a location that holds something other than an nplake lake (unless `force`).

    A lake made by an older nplake (tables without `_nplake/log`) gets its own message; a file
    named as the lake, or a non-empty folder that is not a lake, is refused so that nplake
    never writes its table folders into someone's data.
    """
    from schemas import LakeError

    if writing and store.is_local:
        _check_writable(Path(store.root))
    if store.exists():
        return
    if store.is_local:
        root = Path(store.root)
        if root.exists() and not root.is_dir():
            msg = f"{root} is a file, not a lake folder: give a folder (--lake DIR)"
            raise LakeError(msg)
        entries = [p.name for p in root.iterdir()] if root.is_dir() else []
    else:
        entries = [f.path for f in store.files.list("")][:50]
    entries = [e for e in entries if e.split("/", 1)[0] != "_nplake"]  # a failed first ingest
    if any(e.split("/", 1)[0] == "sessions" for e in entries):
        msg = (
            f"{store.root} holds a lake made by an older nplake (layout 1, before the lake log): "
            "ingest its sources into a new lake (its sessions table lists them in source_uri)"
        )
        raise LakeError(msg)
    if entries and not force:
        msg = (
            f"{store.root} is not empty and is not an nplake lake: give a new or empty folder, "
            "or --force to make a lake inside it"
        )
        raise LakeError(msg)


def _check_writable(root: Path) -> None:
    """LakeError when the lake folder (or the folder it would be made in) cannot be written."""
    from schemas import LakeError

    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        msg = (
            f"cannot write to {existing} (a read-only file system, or no permission): ingest "
            "into a lake you may write to (--lake)"
        )
        raise LakeError(msg)
