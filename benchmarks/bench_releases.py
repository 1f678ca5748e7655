"""Releases at 1,000 sessions: `nplake diff` between two releases, and opening a release.

A lake of 1,000 small synthetic sessions (written through the commit path in groups), release
`r1`; a pipeline fix re-ingests three sessions; release `r2`. Then, in fresh processes:
`nplake diff r1 r2` (from the log and row counts: no data file is read) and opening `r1` to
answer `SELECT count(*) FROM units`.

Usage: python benchmarks/bench_releases.py [--sessions 1000] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from _common import DATA, machine, median, write_section

WORK = DATA / "releases"


def _wall(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    import lake
    from lake.storage import Store, commit_bundles
    from tests.lake.builders import make_bundle

    shutil.rmtree(WORK, ignore_errors=True)
    store = Store.at(WORK / "lake")
    ids = [f"16{i:08d}" for i in range(args.sessions)]
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        commit_bundles(store, [make_bundle(s, seed=i, n_units=3) for i, s in enumerate(chunk)])
    lk = lake.open(store.root)
    lk.release("r1", message="before the fix")
    fixed = [make_bundle(s, seed=10_000 + i, n_units=4) for i, s in enumerate(ids[:3])]
    commit_bundles(store, fixed, source_hash="fixed")
    lk.release("r2", message="three sessions re-ingested")
    cli = "from lake.cli import main; main()"
    diffs = [_wall(cli, "diff", "r1", "r2", "--lake", store.root) for _ in range(args.runs)]
    print(diffs[0][1])
    opening = (
        f"import lake; print(lake.open({store.root!r}).at('r1').sql("
        "'SELECT count(*) FROM units').item())"
    )
    opens = [_wall(opening) for _ in range(args.runs)]
    result = {
        "sessions": args.sessions,
        "diff_s": median([t for t, _ in diffs]),
        "open_release_s": median([t for t, _ in opens]),
    }
    print(json.dumps(result))
    if not args.no_doc:
        write_section(
            "releases",
            "## Releases at 1,000 sessions\n\n`python benchmarks/bench_releases.py` — "
            f"{args.sessions:,} sessions, release r1, three sessions re-ingested, release r2. "
            f"Fresh processes, import included, median of {args.runs}. Machine: {machine()}.\n\n"
            "| command | time |\n|---|---:|\n"
            f"| `nplake diff r1 r2` | {result['diff_s']:.2f} s |\n"
            f"| `lake.open(uri).at('r1').sql('SELECT count(*) FROM units')` | "
            f"{result['open_release_s']:.2f} s |\n",
        )


if __name__ == "__main__":
    main()
