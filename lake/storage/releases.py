"""Named releases: a name for one lake version, stored in the lake itself.

`_nplake/releases/<name>.json` is created put-if-absent, so a name can never be moved silently:
replacing one is two explicit steps (delete, create). Anyone who opens the lake (or a copy of
its folder or bucket) sees the same releases, and vacuum keeps every file a release reads.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass

from lake.storage.files import Files
from schemas import InvalidName, LakeError

RELEASES = "_nplake/releases"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Release:
    """A named lake version."""

    name: str
    version: int
    created_ms: int
    message: str
    sessions: int


def validate_release_name(name: str) -> str:
    """`name` if it can name a release (letters, digits, '.', '_', '-'; 64 at most)."""
    if not isinstance(name, str) or not _NAME.match(name) or name.isdigit():
        msg = (
            f"{name!r} cannot name a release: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, and not only digits (those are versions)"
        )
        raise InvalidName(msg)
    return name


def create_release(files: Files, release: Release) -> Release:
    """Store `release`; LakeError if the name exists (it is never moved silently)."""
    validate_release_name(release.name)
    body = json.dumps(asdict(release), allow_nan=False).encode()
    if not files.put_if_absent(f"{RELEASES}/{release.name}.json", body):
        old = get_release(files, release.name)
        msg = (
            f"release {release.name!r} exists (version {old.version}); names never move: "
            f"`nplake release delete {release.name}` first to replace it on purpose"
        )
        raise LakeError(msg)
    return release


def get_release(files: Files, name: str) -> Release:
    """The release `name`; LakeError naming the known ones if there is none."""
    validate_release_name(name)
    data = files.read_bytes(f"{RELEASES}/{name}.json")
    if data is None:
        known = ", ".join(r.name for r in list_releases(files)) or "none yet"
        msg = f"no release {name!r} in the lake at {files.root} (releases: {known})"
        raise LakeError(msg)
    return Release(**json.loads(data))


def list_releases(files: Files) -> list[Release]:
    """Every release, oldest version first."""
    out = []
    for info in files.list(RELEASES):
        if not info.path.endswith(".json"):
            continue
        data = files.read_bytes(info.path)
        if data is not None:
            out.append(Release(**json.loads(data)))
    return sorted(out, key=lambda r: (r.version, r.name))


def delete_release(files: Files, name: str) -> Release:
    """Remove release `name` (vacuum may then reclaim what only it kept)."""
    release = get_release(files, name)
    files.delete([f"{RELEASES}/{name}.json"])
    return release


def now_ms() -> int:
    """The current time in ms (release timestamps)."""
    return int(time.time() * 1000)
