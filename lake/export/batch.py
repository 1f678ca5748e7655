"""Export many sessions as NWB files into one folder (DANDI layout), with a progress bar.

One session that fails (unknown id, inconsistent rows, file exists) never stops the others:
its reason is reported and the rest are written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import lake
from lake.export.nwb import export_nwb, target_path
from lake.progress import progress_bar
from schemas import LakeError, NplakeError, is_valid_session_id


@dataclass(frozen=True)
class ExportOutcome:
    """What happened to one session: the file written, or why not."""

    session_id: str
    path: Path | None
    reason: str | None
    seconds: float
    size: int = 0

    @property
    def ok(self) -> bool:
        """Whether the file was written."""
        return self.reason is None


@dataclass
class ExportReport:
    """Every session's outcome, and the total time."""

    outcomes: list[ExportOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every session was written."""
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> list[ExportOutcome]:
        """The sessions that were not written."""
        return [o for o in self.outcomes if not o.ok]

    def __str__(self) -> str:
        written = [o for o in self.outcomes if o.ok]
        lines = [f"  failed    {o.session_id}: {o.reason}" for o in self.failed]
        size = sum(o.size for o in written) / 1e6
        lines.append(
            f"{len(written)} exported ({size:,.1f} MB), {len(self.failed)} failed "
            f"in {self.seconds:.1f} s"
        )
        return "\n".join(lines)


def export_sessions(
    lk: lake.Lake,
    session_ids: list[str],
    folder: str | Path,
    *,
    overwrite: bool = False,
    on_outcome: Callable[[ExportOutcome], None] | None = None,
    progress: bool = False,
) -> ExportReport:
    """Export each session to `folder/sub-<subject>/sub-<subject>_ses-<session>_ecephys.nwb`.

    Parameters
    ----------
    lk
        The lake (a `Lake.at(version)` exports the sessions as they were then).
    session_ids
        Sessions to export, in order; repeated ids are exported once.
    folder
        The output folder (created).
    overwrite
        Replace existing files.
    on_outcome
        Called with each session's outcome as it finishes.
    progress
        Show a progress bar over sessions (on stderr).
    """
    try:
        lk.version  # noqa: B018 - reads the lake version now: a bad one fails once, here
    except NplakeError:
        raise
    except Exception:  # deltalake reports a missing version with its own error types
        latest = lake.Lake(lk.store).version
        msg = f"{lk!r} cannot be read: the lake has no such version (the latest is {latest})"
        raise LakeError(msg) from None
    ids = list(dict.fromkeys(session_ids))
    report = ExportReport()
    started = time.perf_counter()
    sessions = lk.sessions()
    subjects = dict(zip(sessions["session_id"], sessions["subject_id"], strict=True))
    claimed: dict[Path, str] = {}
    bar = progress_bar("export", len(ids), _outcome_line) if progress else nullcontext(_ignore)
    with bar as advance:
        for sid in ids:
            outcome = _one(lk, sid, Path(folder), subjects, claimed, overwrite=overwrite)
            report.outcomes.append(outcome)
            advance(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    report.seconds = time.perf_counter() - started
    return report


def _one(
    lk: lake.Lake,
    sid: str,
    folder: Path,
    subjects: dict[str, str | None],
    claimed: dict[Path, str],
    *,
    overwrite: bool,
) -> ExportOutcome:
    """Export one session; a clash of file names within this run is a failure."""
    t0 = time.perf_counter()
    try:
        if is_valid_session_id(sid):
            target = target_path(folder.expanduser(), subjects.get(sid), sid).resolve()
            if target in claimed:
                msg = f"{target.name} is also the file name of session {claimed[target]}"
                raise LakeError(msg)
            claimed[target] = sid
        path = export_nwb(lk, sid, folder, overwrite=overwrite)
    except NplakeError as exc:
        return ExportOutcome(sid, None, str(exc), time.perf_counter() - t0)
    except Exception as exc:  # a bug or an unforeseen failure: this session fails, not the batch
        reason = f"unexpected {type(exc).__name__}: {exc}"
        return ExportOutcome(sid, None, reason, time.perf_counter() - t0)
    return ExportOutcome(sid, path, None, time.perf_counter() - t0, path.stat().st_size)


def _outcome_line(outcome: ExportOutcome) -> str:
    """One session's outcome as a line of the progress bar (rich markup)."""
    if outcome.ok:
        line = f"[green]exported [/] {outcome.session_id} -> {outcome.path} "
        return line + f"({outcome.size / 1e6:,.1f} MB, {outcome.seconds:.1f} s)"
    return f"[red]failed   [/] {outcome.session_id}: {outcome.reason}"


def _ignore(outcome: ExportOutcome) -> None:
    """No progress bar: outcomes are only collected."""
