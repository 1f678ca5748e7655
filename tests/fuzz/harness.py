"""Run fuzz variants against a lake in spawned processes and count what happened to each.

Variants go in batches, one `lake.open(root).ingest([...])` per batch in a fresh process (a
broken source fails alone, so failures stay attributable). A batch that times out or whose
process dies is run again one variant at a time, each with its own timeout: a variant that
times out alone is a hang, one whose process exits non-zero is a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.variant import Variant

REPO = Path(__file__).resolve().parents[2]
#: Seconds a child may take: to start (imports, numba) and per variant.
START_S, PER_VARIANT_S = 60.0, 10.0


@dataclass
class Result:
    """What ingesting one variant did."""

    variant: Variant
    status: str  # landed | failed | unchanged | hang | crash
    session_id: str | None = None
    reason: str | None = None
    traceback: str | None = None
    notes: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    detail: str = ""


def run_variants(
    root: Path, variants: list[Variant], scratch: Path, batch: int
) -> tuple[list[Result], list[str]]:
    """Ingest `variants` into the lake at `root`, `batch` per process.

    Returns one Result per variant, and the batch processes that hung or crashed after every
    one of their sources was done (not attributable to one variant, but counted).
    """
    results: list[Result] = []
    exits: list[str] = []
    for start in range(0, len(variants), batch):
        chunk = variants[start : start + batch]
        done, failure = _run(root, chunk, scratch / f"batch-{start:04d}")
        results += done
        if failure is None:
            continue
        left = [v for v in chunk if v not in {r.variant for r in done}]
        if not left:
            exits.append(f"batch of {len(chunk)} from {chunk[0].what}: {failure[0]} after all "
                         f"were done: {failure[1]}")  # fmt: skip
        for k, variant in enumerate(left):  # which variant hung or crashed it?
            alone, failed = _run(root, [variant], scratch / f"alone-{start:04d}-{k:03d}")
            results += alone or [Result(variant, failed[0], detail=failed[1])]
            if alone and failed is not None:
                exits.append(f"{variant.what}: {failed[0]} after it was done: {failed[1]}")
    return results, exits


def _run(
    root: Path, variants: list[Variant], work: Path
) -> tuple[list[Result], tuple[str, str] | None]:
    """One child process: Results of the sources it finished, and ("hang" | "crash", detail)
    when it did not end well."""
    work.mkdir(parents=True)
    sources, out = work / "sources.json", work / "outcomes.jsonl"
    sources.write_text(json.dumps([str(v.path) for v in variants]))
    command = [sys.executable, "-m", "tests.fuzz._child", str(root), str(sources), str(out)]
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    timeout = START_S + PER_VARIANT_S * len(variants)
    failure = None
    try:
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            failure = ("crash", f"exit code {done.returncode}: {done.stderr[-3000:]}")
    except subprocess.TimeoutExpired:
        failure = ("hang", f"no answer within {timeout:g} s")
    lines = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    outcomes = [x for x in lines if "done" not in x]
    if failure is None and not (lines and "done" in lines[-1]):
        failure = ("crash", "the child ended without finishing")
    results = [r for v in variants if (r := _result(v, outcomes)) is not None]
    return results, failure


def _result(variant: Variant, outcomes: list[dict]) -> Result | None:
    """The outcome of `variant` (by its source path, or the one source found below it)."""
    path = str(variant.path)
    mine = [o for o in outcomes if o["source"] == path or o["source"].startswith(f"{path}/")]
    if not mine:
        return None
    if len(mine) > 1:
        return Result(variant, "crash", detail=f"{len(mine)} outcomes for one source: {mine}")
    o = mine[0]
    return Result(
        variant,
        o["status"],
        session_id=o["session_id"],
        reason=o["reason"],
        traceback=o["traceback"],
        notes=o["notes"],
        rows=o["rows"],
    )


def counts(results: list[Result]) -> dict[str, dict[str, int]]:
    """Per kind: variants, landed, failed, unchanged, tracebacks, hangs, crashes."""
    table: dict[str, Counter] = {}
    for r in results:
        c = table.setdefault(r.variant.kind, Counter())
        c["variants"] += 1
        c[r.status] += 1
        c["tracebacks"] += r.traceback is not None
    total = Counter()
    for c in table.values():
        total.update(c)
    table["all"] = total
    keys = ("variants", "landed", "failed", "unchanged", "tracebacks", "hang", "crash")
    return {kind: {k: int(c[k]) for k in keys} for kind, c in table.items()}
