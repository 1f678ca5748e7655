"""What an ingest call did: one `Outcome` per source and a readable `IngestReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["landed", "unchanged", "failed"]


@dataclass
class Outcome:
    """What happened to one source."""

    source: str
    status: Status
    session_id: str | None = None
    reason: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    replaced: bool = False
    traceback: str | None = None
    version: int | None = None

    @property
    def problem(self) -> str:
        """Why the source failed, naming the source once ('' when it did not fail)."""
        if not self.reason:
            return ""
        return self.reason if self.source in self.reason else f"{self.source}: {self.reason}"


@dataclass
class IngestReport:
    """Outcomes of one ingest call, with a readable summary (`str(report)`)."""

    outcomes: list[Outcome]
    seconds: float
    versions: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Tables whose small files the ingest merged afterwards: table -> (files in, files out).
    optimized: dict[str, tuple[int, int]] = field(default_factory=dict)

    def with_status(self, status: Status) -> list[Outcome]:
        """Outcomes with this status."""
        return [o for o in self.outcomes if o.status == status]

    @property
    def landed(self) -> list[Outcome]:
        """Sources committed by this call."""
        return self.with_status("landed")

    @property
    def unchanged(self) -> list[Outcome]:
        """Sources the lake already held, byte for byte."""
        return self.with_status("unchanged")

    @property
    def failed(self) -> list[Outcome]:
        """Sources that failed, each with its reason."""
        return self.with_status("failed")

    @property
    def ok(self) -> bool:
        """Whether no source failed."""
        return not self.failed

    def __str__(self) -> str:
        spikes = sum(o.rows.get("spikes", 0) for o in self.landed)
        commits = f" in {len(self.versions)} commit{'s' if len(self.versions) != 1 else ''}"
        lines = [
            f"{len(self.landed)} landed, {len(self.unchanged)} unchanged, "
            f"{len(self.failed)} failed in {self.seconds:.1f} s ({spikes:,} spikes written"
            + (commits if self.versions else "")
            + ")"
        ]
        for o in self.landed:
            verb = "replaced" if o.replaced else "new"
            lines.append(
                f"  landed    {o.session_id} ({verb}; {o.rows.get('units', 0)} units, "
                f"{o.rows.get('spikes', 0):,} spikes, {o.seconds:.1f} s) <- {o.source}"
            )
            lines += [f"            note: {n}" for n in o.notes]
        lines += [f"  unchanged {o.session_id} <- {o.source}" for o in self.unchanged]
        lines += [f"  FAILED    {o.problem}" for o in self.failed]
        lines += [f"  warning:  {w}" for w in self.warnings]
        if self.optimized:
            merged = ", ".join(f"{t} {a} -> {b}" for t, (a, b) in self.optimized.items())
            lines.append(f"  merged small files: {merged}")
        return "\n".join(lines)
