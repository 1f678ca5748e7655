"""One line for the storage failures a user can cause or fix: a full disk, a read-only folder.

Everything else that escapes the storage layer is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno

_FULL = "No space left on device"
_KNOWN = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def _errno(exc: OSError) -> int | None:
    if exc.errno in _KNOWN:
        return exc.errno
    text = str(exc)
    if _FULL in text:
        return errno.ENOSPC
    if "Read-only file system" in text:
        return errno.EROFS
    if "Permission denied" in text:
        return errno.EACCES
    return None


def is_storage_error(exc: BaseException) -> bool:
    """Whether `exc` is a full disk, a read-only folder or a permission problem."""
    return isinstance(exc, OSError) and _errno(exc) is not None


def describe_os_error(exc: OSError, doing: str) -> str:
    """One line: what went wrong while `doing`, where, and what to do."""
    code = _errno(exc)
    what = _KNOWN.get(code, f"{type(exc).__name__}: {exc}") if code else f"{exc}"
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    if code in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some space and run it again; nothing of it was committed"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        advice = "check that you may write to the lake's folder (--lake)"
    else:
        advice = "nothing of it was committed"
    return f"{what} while {doing}{where}: {advice}"
