"""Big data: one billion spikes (100 sessions × 10 M) — cross-session questions vs a bare scan.

Sessions are written straight from synthetic bundles through the commit path ingest uses (500
units in 10 areas, 3,600 s, change trials and licks). Each question runs on `Lake.sql` in a
fresh process and is compared with the floor: a bare DuckDB `read_parquet` scan of the same
columns of the same files, in the same run. Also reports peak RSS and bytes per spike.

Usage: python benchmarks/bench_bigdata.py [--sessions 100] [--spikes 10000000] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import numpy as np
from _common import DATA, machine, median, run_child, write_section

WORK = DATA / "bigdata"
AREAS = ("VISp", "VISl", "VISal", "VISpm", "CA1", "CA3", "DG", "LGd", "LP", "APN")
N_UNITS = 500
DURATION_S = 3600.0

#: question -> (SQL as a user writes it, the same with nplake's Python analysis, the floor:
#: a bare scan of the columns the question needs).
QUESTIONS = {
    "spikes per area": (
        "SELECT structure_acronym, count(*) AS n FROM spikes "
        "JOIN units_annotated USING (session_id, unit_id) GROUP BY 1 ORDER BY 1",
        "lk.analysis.rates_by_area(None)",
        "SELECT count(*), sum(unit_id) FROM {spikes}",
    ),
    "change-aligned counts": (
        "SELECT count(*) AS pairs, sum(n_spikes) AS n "
        "FROM aligned_counts('units', 'trials.change_time', 0.0, 0.25)",
        "lk.analysis.aligned_counts(None, 'trials.change_time', window=(0.0, 0.25))",
        "SELECT count(unit_id), sum(time) FROM {spikes}",
    ),
    "lick PSTH": (
        "SELECT bin, avg(rate_hz) AS rate FROM psth('units', 'licks', -0.5, 0.05, 20) "
        "GROUP BY 1 ORDER BY 1",
        "lk.analysis.psth(None, 'licks', bins=(-0.5, 0.05, 20))",
        "SELECT count(unit_id), sum(time) FROM {spikes}",
    ),
}


def _bundle(sid: str, seed: int, n_spikes: int):
    import pyarrow as pa

    from schemas import SessionBundle, StreamSource, rows_table

    rng = np.random.default_rng(seed)
    per_unit = n_spikes // N_UNITS
    unit_ids = np.arange(N_UNITS, dtype=np.int64)
    times = np.sort(rng.uniform(0.0, DURATION_S, size=(N_UNITS, per_unit)), axis=1).ravel()
    owners = np.repeat(unit_ids, per_unit)
    spikes = pa.table({"unit_id": owners, "time": times})
    n_trials = 600
    starts = np.sort(rng.uniform(0, DURATION_S - 10, n_trials))
    change = np.where(rng.random(n_trials) < 0.8, starts + 2.0, np.nan)
    licks = np.sort(rng.uniform(0, DURATION_S, 3000))

    def batches():
        return iter(spikes.to_batches(max_chunksize=1 << 20))

    tables = {
        "sessions": rows_table("sessions", [{"session_id": sid, "subject_id": f"m{seed % 10}"}]),
        "probes": pa.table({"probe": ["probeA"], "sampling_rate": [30000.0]}),
        "channels": pa.table(
            {
                "probe": ["probeA"] * N_UNITS,
                "channel": unit_ids,
                "structure_acronym": [AREAS[i % len(AREAS)] for i in range(N_UNITS)],
            }
        ),
        "units": pa.table(
            {
                "unit_id": unit_ids,
                "probe": ["probeA"] * N_UNITS,
                "peak_channel": unit_ids,
                "quality": ["good"] * N_UNITS,
                "spike_count": np.full(N_UNITS, per_unit),
            }
        ),
        "spikes": StreamSource(spikes.schema, spikes.num_rows, batches),
        "trials": pa.table(
            {
                "trial_index": np.arange(n_trials),
                "start_time": starts,
                "stop_time": starts + 5.0,
                "change_time": change,
            }
        ),
        "licks": pa.table({"time": licks, "source": ["lick"] * len(licks)}),
    }
    return SessionBundle(sid, tables)


def build(n_sessions: int, n_spikes: int) -> tuple[str, float]:
    """The lake, written session by session through the commit path; seconds taken."""
    from lake.storage import Store, commit_bundle

    shutil.rmtree(WORK, ignore_errors=True)
    store = Store.at(WORK / "lake")
    t0 = time.perf_counter()
    for i in range(n_sessions):
        commit_bundle(store, _bundle(f"15{i:08d}", i, n_spikes), source_hash=str(i))
        print(f"session {i + 1}/{n_sessions}", flush=True)
    return store.root, time.perf_counter() - t0


def _nplake(uri: str, query: str) -> dict:
    code = f"""
import time, lake
lk = lake.open({uri!r})
lk.sql("SELECT 1")
t0 = time.perf_counter(); rows = lk.sql({query!r}).rows(); t1 = time.perf_counter()
_result = {{"seconds": t1 - t0, "rows": len(rows)}}
"""
    return run_child(code)


def _python(uri: str, call: str) -> dict:
    code = f"""
import time, lake
lk = lake.open({uri!r})
{call}  # compiles the kernels and reads the footers once
t0 = time.perf_counter(); out = {call}; t1 = time.perf_counter()
_result = {{"seconds": t1 - t0, "rows": out.height}}
"""
    return run_child(code)


def _floor(uri: str, template: str) -> dict:
    code = f"""
import time, duckdb, lake
files = lake.open({uri!r}).snapshot().files("spikes")
listed = ", ".join(repr(f) for f in files)
spikes = ("read_parquet([" + listed + "], hive_partitioning = true, "
          "hive_types = {{'session_id': 'VARCHAR'}})")
con = duckdb.connect()
t0 = time.perf_counter(); con.execute({template!r}.format(spikes=spikes)).fetchall()
_result = {{"seconds": time.perf_counter() - t0}}
"""
    return run_child(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--spikes", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    uri, build_s = build(args.sessions, args.spikes)
    import lake

    lk = lake.open(uri)
    total = lk.sql("SELECT count(*) FROM spikes").item()
    spike_bytes = sum(os.path.getsize(f) for f in lk.snapshot().files("spikes"))
    results = {}
    for name, (query, call, floor) in QUESTIONS.items():
        sql = [_nplake(uri, query) for _ in range(args.runs)]
        python = [_python(uri, call) for _ in range(args.runs)]
        base = [_floor(uri, floor) for _ in range(args.runs)]
        results[name] = {
            "sql_s": median([r["seconds"] for r in sql]),
            "python_s": median([r["seconds"] for r in python]),
            "floor_s": median([r["seconds"] for r in base]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in sql + python),
        }
        print(name, json.dumps(results[name]), flush=True)
    summary = {
        "spikes": total,
        "bytes_per_spike": spike_bytes / total,
        "build_s": build_s,
        "results": results,
    }
    print(json.dumps(summary))
    if not args.no_doc:
        rows = "\n".join(
            f"| {name} | {r['floor_s']:.2f} s | {r['python_s']:.2f} s "
            f"({r['python_s'] / r['floor_s']:.2f}×) | {r['sql_s']:.2f} s "
            f"({r['sql_s'] / r['floor_s']:.1f}×) | {r['peak_rss_mb']:,.0f} MB |"
            for name, r in results.items()
        )
        write_section(
            "bigdata",
            f"## One billion spikes\n\n`python benchmarks/bench_bigdata.py` — "
            f"{args.sessions} sessions × {args.spikes:,} spikes ({total:,} in all), written "
            f"through the commit path in {build_s:.0f} s; {spike_bytes / total:.2f} bytes per "
            "spike on disk (unit_id, time; zstd / LZ4, byte-stream-split). Each question in a "
            "fresh process (warm connection, median of "
            f"{args.runs}), against the floor: a bare DuckDB `read_parquet` scan of the same "
            f"columns of the same files. Machine: {machine()}.\n\n"
            "| question | floor (bare scan) | nplake Python (`lk.analysis`) | nplake SQL macro | "
            "peak RSS |\n|---|---:|---:|---:|---:|\n" + rows + "\n",
        )


if __name__ == "__main__":
    main()
