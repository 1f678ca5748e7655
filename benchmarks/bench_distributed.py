"""Distributed ingest: 20 sessions on a 2-worker Dask LocalCluster vs `--jobs 2`, same run.

Both prepare sessions in two spawned worker processes on this machine and commit in this one;
the difference is the engine (Dask's scheduler, task transfer, results back over TCP) against
a `ProcessPoolExecutor`. Each measurement is a fresh process ingesting the 20 sessions into a
new lake; the two alternate, several times, because the machine is shared with other test
runs. For Dask the cluster is started before the clock (its start-up is reported apart): a
cluster serves many ingests, a process pool lives for one.

    python benchmarks/bench_distributed.py            # 20 small sessions, 3 rounds
    python benchmarks/bench_distributed.py --rounds 1 --no-doc
"""

from __future__ import annotations

import argparse
import shutil
import textwrap

from _common import DATA, machine, median, run_child, write_section

CORPUS = DATA / "distributed-corpus"
SESSIONS = 20

JOBS = """
import time, lake
_result = {{}}
t0 = time.perf_counter()
report = lake.open({lake!r}).ingest([{corpus!r}], jobs=2)
_result["total"] = time.perf_counter() - t0
_result["landed"] = len(report.landed)
_result["spikes"] = sum(o.rows.get("spikes", 0) for o in report.landed)
"""

DASK = """
import time, dask, lake
from distributed import Client, LocalCluster
_result = {{}}
if {environ!r} is not None:
    dask.config.set({{"distributed.nanny.pre-spawn-environ": {environ!r}}})
t0 = time.perf_counter()
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                       dashboard_address=None, host="127.0.0.1",
                       scheduler_kwargs={{"dashboard_address": "127.0.0.1:0"}})
client = Client(cluster)
_result["start"] = time.perf_counter() - t0
t0 = time.perf_counter()
report = lake.open({lake!r}).ingest([{corpus!r}], client=client)
_result["total"] = time.perf_counter() - t0
_result["landed"] = len(report.landed)
_result["spikes"] = sum(o.rows.get("spikes", 0) for o in report.landed)
client.close()
cluster.close()
"""


#: Dask's workers get MALLOC_TRIM_THRESHOLD_=65536 by default (its pre-spawn-environ); setting
#: it turns off glibc's dynamic mmap threshold, so every array over 128 KB is a fresh mmap.
NO_TRIM = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}
VARIANTS = (("jobs", JOBS, None), ("dask", DASK, None), ("dask-no-trim", DASK, NO_TRIM))


def corpus() -> str:
    """The 20 synthetic sessions (written once, reused; bench_s3.py uses them too)."""
    from ingest.synth import write_corpus

    if len(list(CORPUS.glob("*.nwb"))) != SESSIONS:
        shutil.rmtree(CORPUS, ignore_errors=True)
        write_corpus(CORPUS, SESSIONS, seed=14, size="small")
    return str(CORPUS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    source = corpus()
    work = DATA / "distributed-work"
    results: dict[str, list[dict]] = {name: [] for name, _, _ in VARIANTS}
    for round_ in range(args.rounds):
        for name, code, environ in VARIANTS:
            lake_dir = work / f"lake-{name}"
            shutil.rmtree(lake_dir, ignore_errors=True)
            result = run_child(code.format(lake=str(lake_dir), corpus=source, environ=environ))
            assert result["landed"] == SESSIONS, result
            results[name].append(result)
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{k} {v[-1]['total']:.2f} s" for k, v in results.items())
        )
    spikes = results["jobs"][0]["spikes"]
    assert all(r["spikes"] == spikes for v in results.values() for r in v)
    t = {k: median([r["total"] for r in v]) for k, v in results.items()}
    each = {k: ", ".join(f"{r['total']:.2f}" for r in v) for k, v in results.items()}
    start = median([r["start"] for r in results["dask"]])
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in results.items()}
    over = {k: t[k] / t["jobs"] - 1 for k in t}
    label = {
        "jobs": "`--jobs 2`",
        "dask": "Dask, 2 workers (Dask's defaults)",
        "dask-no-trim": "Dask, 2 workers, without `MALLOC_TRIM_THRESHOLD_`",
    }
    rows = "\n".join(
        f"| {label[k]} | {t[k]:.2f} | {each[k]} | {SESSIONS / t[k]:.1f} | {over[k]:+.0%} | "
        f"{rss[k]:,.0f} MB |"
        for k in t
    )
    table = textwrap.dedent(
        f"""
        ## Distributed ingest: Dask LocalCluster vs --jobs 2 (issue 14)

        `python benchmarks/bench_distributed.py --rounds {args.rounds}` — {SESSIONS} synthetic
        sessions (size "small", {spikes:,} spikes in all) ingested into a new local lake by
        `--jobs 2` (a spawned process pool) and by a Dask `LocalCluster` of 2 spawned worker
        processes with one thread each; each measurement a fresh coordinator process, the
        three alternating, {args.rounds} rounds (the machine is shared with other test runs:
        every round is listed). The cluster is started before the clock ({start:.1f} s,
        median): a cluster outlives an ingest, a pool does not. Machine: {machine()}.

        | engine | seconds (median) | each round | sessions/s | vs --jobs 2 | coordinator peak RSS |
        |---|---:|---|---:|---:|---:|
        {{rows}}

        Target: the engine costs at most 15 % over `--jobs 2`. With Dask's defaults:
        {over["dask"]:+.0%}; with the workers' environment a process pool's (no
        `MALLOC_TRIM_THRESHOLD_`): {over["dask-no-trim"]:+.0%}.

        Both engines do the same work in the workers (decode, write per-session files) and
        the same in the coordinator (group commits); what differs is how tasks and results
        travel, and the workers' environment: Dask starts its workers with
        `MALLOC_TRIM_THRESHOLD_=65536` (`distributed.nanny.pre-spawn-environ`), which turns
        off glibc's dynamic mmap threshold, so every array over 128 KB the decoder makes is a
        fresh mmap (measured: about 15 % more CPU per session). docs/distributed.md says how
        to leave it out of an ingest cluster's workers.
        """
    ).replace("{rows}", rows)
    print(table)
    if not args.no_doc:
        write_section("distributed-ingest", table)


if __name__ == "__main__":
    main()
