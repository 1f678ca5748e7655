"""What `Lake.at`, `Lake.diff` and `--at` accept: a version, a release name or a date-time."""

from __future__ import annotations

import datetime as dt

from lake.storage.history import version_at
from lake.storage.releases import get_release
from lake.storage.store import Store
from schemas import LakeError

#: A version number, a release name, a date-time, or an ISO date-time text.
VersionRef = int | str | dt.datetime


def resolve(store: Store, ref: VersionRef) -> int:
    """The lake version `ref` names; one-line LakeError when it names none.

    Text is a version when it is all digits, a date-time when ISO 8601 parses it (a date, or a
    date and time; without an offset it is this machine's local time), else a release name.
    """
    log = store.log
    latest = log.latest()
    if latest is None:
        msg = f"no nplake lake at {store.root}"
        raise LakeError(msg)
    if isinstance(ref, bool):
        msg = f"{ref!r} is not a version, a release name or a date-time"
        raise LakeError(msg)
    if isinstance(ref, str) and ref.strip().isdigit():
        ref = int(ref)
    if isinstance(ref, int):
        version = ref
    elif isinstance(ref, dt.datetime):
        version = version_at(log, ref)
    elif isinstance(ref, str):
        when = _datetime(ref)
        version = (
            version_at(log, when) if when is not None else get_release(store.files, ref).version
        )
    else:
        msg = f"{ref!r} is not a version, a release name or a date-time"
        raise LakeError(msg)
    if not 0 <= version <= latest:
        msg = f"lake {store.root} has versions 0 to {latest}; there is no version {version!r}"
        raise LakeError(msg)
    _check_not_vacuumed(store, version, latest)
    return version


def _datetime(text: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed


def _check_not_vacuumed(store: Store, version: int, latest: int) -> None:
    """LakeError when `version`'s files were vacuumed (releases are always kept)."""
    if version == latest:
        return
    horizon = store.log.manifest(latest).vacuumed_before_ms
    if not horizon:
        return
    # a version stays whole while everything after it happened after the horizon
    if store.log.entry(version + 1).timestamp_ms >= horizon or _is_release(store, version):
        return
    msg = (
        f"version {version} of {store.root} was vacuumed (files older than the retention "
        "horizon are gone); name versions you need with `nplake release create`"
    )
    raise LakeError(msg)


def _is_release(store: Store, version: int) -> bool:
    from lake.storage.releases import list_releases

    return any(r.version == version for r in list_releases(store.files))
