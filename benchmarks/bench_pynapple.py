"""Lake.to_pynapple of one realistic synthetic session vs pynapple.load_file of its NWB file.

Same session, same run, each measurement in a fresh process that reports its own peak RSS
(page cache warm). load_file reads lazily: its units TsGroup is built when asked for, its
series stay views of the HDF5 datasets until used; to_pynapple reads everything at once. So
three measurements:

- `load_file(path)["units"]`: the spike trains and unit metadata (what both must read);
- `load_file(path)` with every key asked for once (as `to_pynapple` gives them all);
- `lk.to_pynapple(session_id)` in a fresh process: opening the lake and its SQL connection
  included.

Each child checks its spike trains: number of units, of spikes, and the sum of every spike time.

    python benchmarks/bench_pynapple.py            # realistic: ~2,000 units, ~50 M spikes
    python benchmarks/bench_pynapple.py --size small --runs 1 --no-doc
"""

from __future__ import annotations

import argparse
import os
import textwrap
from pathlib import Path

from _common import DATA, machine, median, run_child, write_section
from bench_ingest import session_file

SESSION = "1100000001"  # the id bench_ingest's session file carries

LOAD_UNITS = """
import time, warnings
warnings.simplefilter("ignore")
import numpy as np, pynapple as nap
_result = {{}}
t0 = time.perf_counter()
units = nap.load_file({path!r})["units"]
_result["total"] = time.perf_counter() - t0
_result["check"] = [len(units), int(sum(len(units[k]) for k in units)),
                    float(sum(units[k].t.sum() for k in units))]
"""

LOAD_ALL = """
import time, warnings
warnings.simplefilter("ignore")
import numpy as np, pynapple as nap
_result = {{}}
t0 = time.perf_counter()
data = nap.load_file({path!r})
objects = {{k: data[k] for k in list(data.keys())}}
_result["total"] = time.perf_counter() - t0
units = objects["units"]
_result["keys"] = sorted(objects)
_result["check"] = [len(units), int(sum(len(units[k]) for k in units)),
                    float(sum(units[k].t.sum() for k in units))]
"""

TO_PYNAPPLE = """
import time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import lake
lk = lake.open({lake!r})
data = lk.to_pynapple({session!r})
_result = {{"total": time.perf_counter() - t0}}
units = data["units"]
_result["keys"] = sorted(data)
_result["check"] = [len(units), int(sum(len(units[k]) for k in units)),
                    float(sum(units[k].t.sum() for k in units))]
"""

INGEST = """
import lake
lk = lake.open({lake!r})
report = lk.ingest([{path!r}])
_result = {{"status": [o.status for o in report.outcomes]}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="realistic", choices=["tiny", "small", "realistic"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    path = session_file(args.size)
    lake_dir = str(DATA / f"pynapple-lake-{args.size}")
    landed = run_child(INGEST.format(lake=lake_dir, path=path))["status"]
    assert landed in (["landed"], ["unchanged"]), landed
    _warm(Path(path), Path(lake_dir))
    load_before = os.getloadavg()[0]
    results: dict[str, list[dict]] = {"units": [], "all": [], "lake": []}
    children = {
        "units": LOAD_UNITS.format(path=path),
        "all": LOAD_ALL.format(path=path),
        "lake": TO_PYNAPPLE.format(lake=lake_dir, session=SESSION),
    }
    names = list(children)
    for run in range(args.runs):
        for name in names[run % 3 :] + names[: run % 3]:  # each goes first in turn
            results[name].append(run_child(children[name]))
        print(
            f"run {run + 1}: load_file units {results['units'][-1]['total']:.2f} s, "
            f"all {results['all'][-1]['total']:.2f} s, "
            f"to_pynapple {results['lake'][-1]['total']:.2f} s"
        )
    load = max(load_before, os.getloadavg()[0])
    checks = {k: v[0]["check"] for k, v in results.items()}
    assert checks["units"] == checks["all"] == checks["lake"], checks
    n_units, n_spikes, _ = checks["lake"]
    t = {k: median([r["total"] for r in v]) for k, v in results.items()}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in results.items()}
    keys_nwb = ", ".join(results["all"][0]["keys"])
    keys_lake = ", ".join(results["lake"][0]["keys"])
    table = textwrap.dedent(
        f"""
        ## A session handed to pynapple (issue 17)

        `python benchmarks/bench_pynapple.py --size {args.size} --runs {args.runs}` — the
        synthetic session of the ingest benchmark ({n_units:,} units, {n_spikes:,} spikes),
        median of {args.runs} runs, each in a fresh process, page cache warm, the three
        interleaved and each first in turn.
        Machine: {machine()}; load average up to {load:.1f} during the runs (a shared machine:
        other work ran beside it). Each process checks that its spike trains hold the same
        units, spikes and sum of spike times as the others.

        | what | seconds | peak RSS |
        |---|---:|---:|
        | `pynapple.load_file(nwb)["units"]` (the units only) | {t["units"]:.2f} | {rss["units"]:,.0f} MB |
        | `pynapple.load_file(nwb)`, every key asked for once | {t["all"]:.2f} | {rss["all"]:,.0f} MB |
        | **`lk.to_pynapple(session_id)`** (open the lake, read every table) | **{t["lake"]:.2f}** | **{rss["lake"]:,.0f} MB** |

        to_pynapple / load_file: **{t["lake"] / t["all"]:.2f}×** the time of the whole file,
        {t["lake"] / t["units"]:.2f}× that of its units alone (target: faster than the file).
        load_file's keys: {keys_nwb}. to_pynapple's: {keys_lake}.
        """
    )
    print(table)
    if not args.no_doc:
        write_section(f"pynapple-{args.size}", table)


def _warm(*roots: Path) -> None:
    """Read every file under `roots` once, so that every measurement finds the page cache warm."""
    for root in roots:
        for file in [root] if root.is_file() else sorted(root.rglob("*")):
            if file.is_file():
                with file.open("rb") as handle:
                    while handle.read(8 << 20):
                        pass


if __name__ == "__main__":
    main()
