"""Ingest of one realistic synthetic NWB session vs the floor measured in the same run.

The floor is the least any tool must do: read the spike datasets with h5py, flatten the index,
and write the same columns with `pyarrow.parquet.write_table` (its defaults, and tuned like the
lake writes them). nplake does that plus hashing the file, decoding every other table,
validation, and the atomic Delta commit. Each measurement runs in a fresh process that reports
its own peak RSS.

    python benchmarks/bench_ingest.py            # realistic: ~2,000 units, ~50 M spikes
    python benchmarks/bench_ingest.py --size small --runs 1
"""

from __future__ import annotations

import argparse
import shutil
import textwrap

from _common import DATA, machine, median, run_child, write_section

FLOOR = """
import time, h5py, numpy as np, pyarrow as pa, pyarrow.parquet as pq
_result = {{}}
t0 = time.perf_counter()
with h5py.File({path!r}) as f:
    ids = f["units/id"][:]
    index = f["units/spike_times_index"][:].astype(np.int64)
    times = f["units/spike_times"][:]
    amps = f["units/spike_amplitudes"][:]
t1 = time.perf_counter()
unit = np.repeat(ids.astype(np.int64), np.diff(index, prepend=0))
table = pa.table({{"unit_id": unit, "time": times, "amplitude": amps}})
t2 = time.perf_counter()
pq.write_table(table, {out!r}, **{options})
t3 = time.perf_counter()
_result.update(read=t1 - t0, flatten=t2 - t1, write=t3 - t2, total=t3 - t0, spikes=len(times))
"""

NPLAKE = """
import time, lake
_result = {{}}
lk = lake.open({lake!r})
t0 = time.perf_counter()
report = lk.ingest([{path!r}])
_result["total"] = time.perf_counter() - t0
_result["status"] = [o.status for o in report.outcomes]
_result["spikes"] = sum(o.rows.get("spikes", 0) for o in report.landed)
_result["samples"] = sum(o.rows.get("timeseries", 0) for o in report.landed)
"""

HASH = """
import time, hashlib
_result = {{}}
t0 = time.perf_counter()
h = hashlib.sha256()
with open({path!r}, "rb") as f:
    while chunk := f.read(8 << 20):
        h.update(chunk)
_result["total"] = time.perf_counter() - t0
"""

TUNED = (
    '{"compression": "zstd", "use_dictionary": False, "column_encoding": '
    '{"time": "BYTE_STREAM_SPLIT", "amplitude": "BYTE_STREAM_SPLIT", '
    '"unit_id": "DELTA_BINARY_PACKED"}}'
)


def session_file(size: str) -> str:
    """The benchmark's synthetic session (written once, reused)."""
    from ingest.synth import generate_session, write_nwb

    # v2: the synthetic session carries position, eye tracking and optotagging (issue 16)
    path = DATA / f"ingest-{size}-v2.nwb"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        write_nwb(generate_session("1100000001", seed=11, size=size), path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="realistic", choices=["tiny", "small", "realistic"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    path = session_file(args.size)
    work = DATA / "ingest-work"
    results: dict[str, list[dict]] = {"default": [], "tuned": [], "nplake": [], "hash": []}
    for run in range(args.runs):
        for name, options in (("default", "{}"), ("tuned", TUNED)):
            out = str(work / f"floor-{name}.parquet")
            work.mkdir(parents=True, exist_ok=True)
            results[name].append(run_child(FLOOR.format(path=path, out=out, options=options)))
        shutil.rmtree(work / "lake", ignore_errors=True)
        results["nplake"].append(run_child(NPLAKE.format(lake=str(work / "lake"), path=path)))
        assert results["nplake"][-1]["status"] == ["landed"], results["nplake"][-1]
        results["hash"].append(run_child(HASH.format(path=path)))
        print(f"run {run + 1}: nplake {results['nplake'][-1]['total']:.2f} s")
    spikes = results["default"][0]["spikes"]
    assert results["nplake"][0]["spikes"] == spikes
    t = {k: median([r["total"] for r in v]) for k, v in results.items()}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in results.items()}
    parts = {k: median([r[k] for r in results["tuned"]]) for k in ("read", "flatten", "write")}
    table = textwrap.dedent(
        f"""
        ## Ingest of one session (issue 2)

        `python benchmarks/bench_ingest.py --size {args.size} --runs {args.runs}` — one synthetic
        session ({spikes:,} spikes; position, eye tracking, pupil, running, licks and rewards:
        {results["nplake"][0]["samples"]:,} time series rows; file {_size_mb(path):,.0f} MB),
        median of {args.runs} runs, each in a fresh process, page cache warm. Machine:
        {machine()}.

        | what | seconds | spikes/s | peak RSS |
        |---|---:|---:|---:|
        | floor: h5py read + flatten + `pq.write_table` (defaults: snappy) | {t["default"]:.2f} | {spikes / t["default"] / 1e6:.1f} M | {rss["default"]:,.0f} MB |
        | floor: same, written like the lake (zstd, byte-stream-split) | {t["tuned"]:.2f} | {spikes / t["tuned"] / 1e6:.1f} M | {rss["tuned"]:,.0f} MB |
        | **nplake ingest** (hash, decode all tables and series, validate, commit) | **{t["nplake"]:.2f}** | **{spikes / t["nplake"] / 1e6:.1f} M** | **{rss["nplake"]:,.0f} MB** |
        | of which: SHA-256 of the file (re-ingest detection) | {t["hash"]:.2f} | | |

        nplake / floor: **{t["nplake"] / t["default"]:.2f}×** the default floor,
        {t["nplake"] / t["tuned"]:.2f}× the tuned floor (target: within 2×). Peak memory
        {rss["nplake"]:,.0f} MB (target: under 2 GB). The tuned floor splits into read
        {parts["read"]:.2f} s, flatten {parts["flatten"]:.2f} s, write {parts["write"]:.2f} s.
        """
    )
    print(table)
    if not args.no_doc:
        write_section(f"ingest-{args.size}", table)


def _size_mb(path: str) -> float:
    from pathlib import Path

    return Path(path).stat().st_size / 1e6


if __name__ == "__main__":
    main()
