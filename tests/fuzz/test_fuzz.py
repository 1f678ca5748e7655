"""The fuzz suite: corrupted NWB files and rig folders against lakes that hold good sessions.

Every variant is ingested (in spawned processes, with timeouts) into a lake that already holds
good sessions: NWB variants beside the three real NWB files, rig variants beside a synthetic rig
session and the human NWB file. Counted and asserted: 0 tracebacks (every failure is a one-line
NplakeError reason), 0 hangs, 0 crashes (exit codes, at exit too), every table still readable
by nplake's SQL and scan and by plain deltalake and polars readers, the good sessions' rows
unchanged in every table, no landed row holding a value the rules refuse, and each variant
doing what it must (fail with its reason, land with its note) and, when it lands, holding
exactly what decoding its source gives. The quick test runs a seeded sample of 40; the slow one
all of them (>= 300). NPLAKE_FUZZ_SEED draws other damage.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import lake
from tests.fuzz import lake_checks
from tests.fuzz.harness import Result, counts, run_variants
from tests.fuzz.nwb_variants import FILES, NwbVariants
from tests.fuzz.rig_variants import RigVariants, write_template
from tests.fuzz.variant import Variant

#: Seed of every draw (NPLAKE_FUZZ_SEED runs the suite with other damage).
SEED = int(os.environ.get("NPLAKE_FUZZ_SEED", "12"))
QUICK = 40


@pytest.fixture
def lakes(realdata, tmp_path) -> dict[str, tuple[Path, list[str]]]:
    """Two lakes of good sessions, (root, session ids) each, and the rig template.

    NWB variants go into a lake holding the three real files; rig variants into one holding a
    rig session and the human file. (A rig session's trials.response is boolean, the Janelia
    files' text: a lake holds one of the two, and a clash fails the later session.)
    """
    template = write_template(tmp_path / "template")
    good_rig = tmp_path / "good" / "good-rig"
    shutil.copytree(template, good_rig)
    info = json.loads((good_rig / "session.json").read_text())
    (good_rig / "session.json").write_text(json.dumps({**info, "session_id": "good-rig"}))
    out = {"template": template}
    for kind, sources in (
        ("nwb", [realdata / "nwb" / f for f in FILES]),
        ("rig", [good_rig, realdata / "nwb" / FILES[-1]]),
    ):
        root = tmp_path / f"lake-{kind}"
        report = lake.open(root).ingest(sources)
        assert report.ok, str(report)
        out[kind] = (root, sorted(o.session_id for o in report.landed))
    return out


def all_variants(realdata: Path, template: Path, folder: Path) -> dict[str, list[Variant]]:
    return {
        "nwb": NwbVariants(realdata, folder / "nwb", seed=SEED).all(),
        "rig": RigVariants(template, folder / "rig", seed=SEED).all(),
    }


def quick_sample(variants: list[Variant], n: int) -> list[Variant]:
    """A seeded sample of `n` variants, every kind of damage in (near) equal shares."""
    rng = np.random.default_rng(SEED)
    kinds = sorted({v.kind for v in variants})
    picked: list[Variant] = []
    for k, kind in enumerate(kinds):
        of_kind = [v for v in variants if v.kind == kind]
        share = n // len(kinds) + (k < n % len(kinds))
        picked += [of_kind[i] for i in sorted(rng.choice(len(of_kind), share, replace=False))]
    return picked


def problems_of(root: Path, results: list[Result]) -> list[str]:
    """Everything a variant did that it must not, one line each."""
    out = []
    lk = lake.open(root)
    for r in results:
        v = r.variant
        name = f"[{v.kind}] {v.what}"
        if r.status in ("hang", "crash"):
            out.append(f"{name}: {r.status}: {r.detail}")
            continue
        if r.traceback is not None:
            out.append(f"{name}: traceback: {r.reason}")
        if r.status == "failed" and "\n" in r.reason.replace(str(v.path), ""):
            out.append(f"{name}: reason is not one line: {r.reason!r}")
        if v.expect == "fail" and r.status != "failed":
            out.append(f"{name}: {r.status}, must fail ({v.fragment})")
        if v.expect == "land" and r.status != "landed":
            out.append(f"{name}: {r.status}, must land: {r.reason}")
        said = r.reason if r.status == "failed" else "; ".join(r.notes)
        if v.fragment and v.fragment not in (said or ""):
            out.append(f"{name}: {v.fragment!r} not in {said!r}")
        if r.status == "landed":
            out += [f"{name}: {p}" for p in landed_problems(lk, r)]
    landed = [r for r in results if r.status == "landed"]
    return out + lake_checks.unfaithful(root, landed)


def landed_problems(lk: lake.Lake, r: Result) -> list[str]:
    v = r.variant
    out = []
    if v.session_id is not None and r.session_id != v.session_id:
        out.append(f"landed as {r.session_id!r}, not {v.session_id!r}")
    if v.column is not None:
        table, column, value = v.column
        got = lake_checks.column_values(lk, table, column, r.session_id)
        if got is None or ((got != value) if isinstance(value, list) else (value not in got)):
            out.append(f"{table}.{column} holds {str(got)[:200]}, not {value!r}")
    return out


def fuzz(lakes: dict, variants: dict[str, list[Variant]], scratch: Path, batch: int) -> dict:
    """Run the variants, each kind into its lake; assert everything the suite promises.

    Returns the counts per kind of damage (printed first: the record of the run, with -s).
    """
    results, problems = [], []
    for kind, of_kind in variants.items():
        root, session_ids = lakes[kind]
        before = lake_checks.session_rows(root, session_ids)
        tables_before = lake_checks.read_every_table(root)
        got, exits = run_variants(root, of_kind, scratch / kind, batch)
        results += got
        problems += exits  # a process that crashed or hung after its sources were done
        problems += problems_of(root, got)
        tables_after = lake_checks.read_every_table(root)
        lost = {t: (n, tables_after[t]) for t, n in tables_before.items() if tables_after[t] < n}
        problems += [f"{kind} lake: rows lost {lost}"] if lost else []
        lake_checks.assert_unchanged(before, lake_checks.session_rows(root, session_ids))
        refused = lake_checks.refused_values_in_lake(root)
        problems += [f"{kind} lake holds refused values: {refused}"] if refused else []
    table = counts(results)
    print(json.dumps(table, indent=1))
    assert problems == [], "\n".join(problems)
    assert sum(len(v) for v in variants.values()) == table["all"]["variants"]
    assert table["all"]["tracebacks"] == table["all"]["hang"] == table["all"]["crash"] == 0
    return table


def test_quick_fuzz_sample(realdata, lakes, tmp_path):
    variants = all_variants(realdata, lakes["template"], tmp_path / "variants")
    nwb = QUICK * 2 // 3
    sample = {
        "nwb": quick_sample(variants["nwb"], nwb),
        "rig": quick_sample(variants["rig"], QUICK - nwb),
    }
    table = fuzz(lakes, sample, tmp_path / "runs", batch=QUICK)
    assert table["all"]["variants"] == QUICK
    assert {k for k in table if k != "all"} == {
        "delete", "flip", "hostile", "retype", "truncate", "value"
    }  # fmt: skip


@pytest.mark.slow
def test_full_fuzz(realdata, lakes, tmp_path):
    variants = all_variants(realdata, lakes["template"], tmp_path / "variants")
    n = sum(len(v) for v in variants.values())
    assert n >= 300
    table = fuzz(lakes, variants, tmp_path / "runs", batch=50)
    assert table["all"]["variants"] == n
    assert table["all"]["landed"] > 0 and table["all"]["failed"] > 0
