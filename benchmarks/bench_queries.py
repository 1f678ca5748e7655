"""Cross-session questions: nplake (SQL and polars) against the ways people answer them today.

Four questions over a synthetic corpus, answered in the same run by

- nplake SQL (`Lake.sql` with the views, presets and macros of queries/),
- nplake polars (`lk.analysis`, numba kernels over the lake's Parquet files),
- an h5py loop over the NWB files (expert notebook code: vectorised per file, searchsorted per
  unit; when the chosen units hold under half of a file's spikes only their ranges of
  spike_times are read, with a chunk cache large enough for gzip chunks), on plain and on
  gzip-compressed files,
- pynwb (NWBHDF5IO + to_dataframe), plain and gzip,
- lazynwb (polars scans of the NWB files, its get_spike_times_in_intervals), plain and gzip,

and every method must give the same numbers (asserted: counts exactly, means to 1e-12).

Questions (NaN or missing metrics never pass a filter):
  Q1 units and mean firing_rate per brain area, units passing the Allen Visual Coding preset
  Q2 spike totals (and units) per session and brain area, every unit
  Q3 spikes in [t, t + 0.25 s) after every image change (finite change_time) for the VISp units
     passing the Allen Visual Coding preset, per (session, unit, trial)
  Q4 lick-aligned PSTH: spikes per 50 ms bin from -0.5 s to +1.0 s around every lick, per unit
     passing the Visual Behavior preset, and the mean rate (Hz) per brain area

    python benchmarks/bench_queries.py                      # 20 small sessions, docs updated
    python benchmarks/bench_queries.py --sessions 4 --runs 3 --no-doc
    python benchmarks/bench_queries.py --size realistic --sessions 2 --slow-runs 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
from _common import DATA, machine, median, run_child, write_section

BENCH = Path(__file__).resolve().parent
SEED = 7
CHANGE_WINDOW = (0.0, 0.25)
LICK_BINS = (-0.5, 0.05, 30)
QUESTIONS = ("q1_units_per_area", "q2_spike_totals", "q3_change_counts", "q4_lick_psth")
TITLES = {
    "q1_units_per_area": "Q1 units + mean rate per area (Allen VC filter)",
    "q2_spike_totals": "Q2 spike totals per session and area",
    "q3_change_counts": "Q3 change-aligned counts, filtered VISp units",
    "q4_lick_psth": "Q4 lick-aligned PSTH (30 bins), VB-filtered units",
}
#: Sort keys of each answer (answers are compared after sorting).
KEYS = {
    "q1_units_per_area": ["area"],
    "q2_spike_totals": ["session_id", "area"],
    "q3_change_counts": ["session_id", "unit_id", "trial_index"],
    "q4_lick_psth": ["session_id", "unit_id", "bin"],
    "q4_area": ["area", "bin"],
}


def lick_offsets() -> np.ndarray:
    """Bin edges relative to a lick: start + k * width, k = 0..n (the documented formula)."""
    start, width, n = LICK_BINS
    return start + np.arange(n + 1).astype(np.float64) * width


def area_means(per_unit: pl.DataFrame, n_events: pl.DataFrame) -> pl.DataFrame:
    """Per area and bin: n_units and the mean over units of n_spikes / (n_licks * width)."""
    width = LICK_BINS[1]
    return (
        per_unit.join(n_events, on="session_id")
        .with_columns(
            (pl.col("n_spikes").cast(pl.Float64) / (pl.col("n_events") * width)).alias("rate")
        )
        .group_by("area", "bin")
        .agg(pl.len().alias("n_units"), pl.col("rate").mean().alias("rate_hz"))
    )


# ================================================================================ nplake SQL
SQL = {
    "q1_units_per_area": """
        SELECT structure_acronym AS area, count(*) AS n_units,
               avg(firing_rate) FILTER (WHERE NOT isnan(firing_rate)) AS mean_firing_rate
        FROM units_with_preset('allen_visual_coding') GROUP BY 1""",
    "q2_spike_totals": """
        SELECT session_id, structure_acronym AS area, count(*) AS n_units,
               sum(spike_count) AS n_spikes
        FROM units_annotated GROUP BY ALL""",
    "q3_change_counts": """
        SELECT session_id, unit_id, event_index AS trial_index, n_spikes
        FROM aligned_counts('bench_visp', 'trials.change_time', 0.0, 0.25)""",
    "q4_lick_psth": """
        SELECT p.session_id, p.unit_id, u.structure_acronym AS area, p.bin, p.n_spikes,
               p.n_events
        FROM psth('bench_vb', 'licks', -0.5, 0.05, 30) AS p
        JOIN units_annotated AS u USING (session_id, unit_id)""",
}
SQL_SETUP = (
    "CREATE OR REPLACE TEMP VIEW bench_visp AS SELECT session_id, unit_id "
    "FROM units_with_preset('allen_visual_coding') WHERE structure_acronym = 'VISp'",
    "CREATE OR REPLACE TEMP VIEW bench_vb AS SELECT session_id, unit_id "
    "FROM units_quality WHERE visual_behavior",
)


def nplake_sql(lake_dir: str) -> dict:
    import lake

    lk = lake.open(lake_dir)
    for statement in SQL_SETUP:
        lk.sql(statement)

    def answer(q: str) -> pl.DataFrame:
        frame = lk.sql(SQL[q])
        if q == "q4_lick_psth":
            per_unit = frame.select("session_id", "unit_id", "area", "bin", "n_spikes")
            n_events = frame.select("session_id", "n_events").unique()
            return per_unit, area_means(per_unit, n_events)
        return frame

    return {"answer": answer}


# ============================================================================= nplake polars
def nplake_polars(lake_dir: str) -> dict:
    import lake
    from lake.presets import preset_expr

    lk = lake.open(lake_dir)
    an = lk.analysis

    def answer(q: str):
        if q == "q1_units_per_area":
            units = an.units_annotated().lazy().filter(preset_expr("allen_visual_coding"))
            fr = pl.col("firing_rate")
            return (
                units.group_by(pl.col("structure_acronym").alias("area"))
                .agg(
                    pl.len().alias("n_units"),
                    fr.filter(fr.is_not_nan()).mean().alias("mean_firing_rate"),
                )
                .collect()
            )
        if q == "q2_spike_totals":
            return (
                an.units_annotated()
                .lazy()
                .group_by("session_id", pl.col("structure_acronym").alias("area"))
                .agg(pl.len().alias("n_units"), pl.col("spike_count").sum().alias("n_spikes"))
                .collect()
            )
        areas = (
            an.units_annotated()
            .lazy()
            .select("session_id", "unit_id", pl.col("structure_acronym").alias("area"))
        )
        if q == "q3_change_counts":
            visp = (
                an.units_annotated()
                .lazy()
                .filter(preset_expr("allen_visual_coding"))
                .filter(pl.col("structure_acronym") == "VISp")
                .select("session_id", "unit_id")
            )
            counts = an.aligned_counts(visp, "trials.change_time", window=CHANGE_WINDOW)
            return counts.select(
                "session_id", "unit_id", pl.col("event_index").alias("trial_index"), "n_spikes"
            )
        psth = an.psth("visual_behavior", "licks", bins=LICK_BINS)
        per_unit = psth.join(areas.collect(), on=["session_id", "unit_id"]).select(
            "session_id", "unit_id", "area", "bin", "n_spikes"
        )
        return per_unit, area_means(per_unit, psth.select("session_id", "n_events").unique())

    return {"answer": answer}


# ============================================================================== h5py loop
def h5py_loop(folder: str) -> dict:
    import h5py

    files = sorted(Path(folder).glob("*.nwb"))

    def units_of(f) -> dict:
        u = f["units"]
        location = f["general/extracellular_ephys/electrodes/location"][:].astype(str)
        return {
            "ids": u["id"][:],
            "ends": u["spike_times_index"][:].astype(np.int64),
            "area": location[u["electrodes"][:]],
            "quality": u["quality"][:].astype(str),
            **{
                m: u[m][:]
                for m in (
                    "amplitude_cutoff",
                    "presence_ratio",
                    "isi_violations",
                    "snr",
                    "firing_rate",
                )
            },
        }

    def allen_vc(m: dict) -> np.ndarray:  # numpy comparisons with NaN are False: NaN fails
        return (
            (m["amplitude_cutoff"] <= 0.1)
            & (m["presence_ratio"] >= 0.95)
            & (m["isi_violations"] <= 0.5)
            & (m["quality"] == "good")
        )

    def visual_behavior(m: dict) -> np.ndarray:
        return (m["snr"] > 1.0) & (m["isi_violations"] < 1.0) & (m["firing_rate"] > 0.1)

    def answer(q: str):
        rows: list[pl.DataFrame] = []
        n_events = []
        for path in files:
            with h5py.File(path, "r", rdcc_nbytes=CHUNK_CACHE) as f:
                sid = _text(f["general/session_id"][()])
                m = units_of(f)
                starts = np.concatenate([[0], m["ends"][:-1]])
                if q == "q1_units_per_area":
                    ok = allen_vc(m)
                    rows.append(pl.DataFrame({"area": m["area"][ok], "fr": m["firing_rate"][ok]}))
                    continue
                if q == "q2_spike_totals":
                    rows.append(
                        pl.DataFrame(
                            {"session_id": sid, "area": m["area"], "n": m["ends"] - starts}
                        )
                    )
                    continue
                if q == "q3_change_counts":
                    trial_ids = f["intervals/trials/id"][:]
                    change = f["intervals/trials/change_time"][:]
                    keep = np.isfinite(change)
                    trial_ids, change = trial_ids[keep], change[keep]
                    chosen = np.flatnonzero(allen_vc(m) & (m["area"] == "VISp"))
                    spikes = unit_spikes(f["units/spike_times"], starts, m["ends"], chosen)
                    counts = np.empty((len(chosen), len(change)), dtype=np.int64)
                    for row, i in enumerate(chosen):
                        t = spikes(i)
                        counts[row] = np.searchsorted(
                            t, change + CHANGE_WINDOW[1]
                        ) - np.searchsorted(t, change + CHANGE_WINDOW[0])
                    rows.append(
                        pl.DataFrame(
                            {
                                "session_id": sid,
                                "unit_id": np.repeat(m["ids"][chosen], len(change)),
                                "trial_index": np.tile(trial_ids, len(chosen)),
                                "n_spikes": counts.reshape(-1),
                            }
                        )
                    )
                    continue
                licks = f["processing/licking/licks/timestamps"][:]
                chosen = np.flatnonzero(visual_behavior(m))
                spikes = unit_spikes(f["units/spike_times"], starts, m["ends"], chosen)
                licks = licks[np.isfinite(licks)]
                edges = licks[:, None] + lick_offsets()[None, :]
                n_events.append((sid, len(licks)))
                totals = np.empty((len(chosen), LICK_BINS[2]), dtype=np.int64)
                for row, i in enumerate(chosen):
                    t = spikes(i)
                    totals[row] = np.diff(np.searchsorted(t, edges), axis=1).sum(axis=0)
            rows.append(
                pl.DataFrame(
                    {
                        "session_id": sid,
                        "unit_id": np.repeat(m["ids"][chosen], LICK_BINS[2]),
                        "area": np.repeat(m["area"][chosen], LICK_BINS[2]),
                        "bin": np.tile(np.arange(LICK_BINS[2]), len(chosen)),
                        "n_spikes": totals.reshape(-1),
                    }
                )
            )
        return _finish(q, rows, n_events)

    return {"answer": answer}


#: h5py chunk cache per open file (the default is 1 MiB, less than one 4 MiB chunk of the
#: synthetic files: slicing unit after unit would decompress a chunk again for every unit).
CHUNK_CACHE = 64 << 20


def unit_spikes(dataset, starts: np.ndarray, ends: np.ndarray, chosen: np.ndarray):
    """unit index -> its spike times, as an expert reads them from /units/spike_times.

    When the chosen units hold less than half of the file's spikes, each unit's range is sliced
    from the dataset (h5py reads, and for gzip decompresses, only the chunks they touch);
    otherwise the whole dataset is read once, which is faster.
    """
    needed = int((ends[chosen] - starts[chosen]).sum())
    if needed < dataset.shape[0] / 2:
        return lambda i: dataset[starts[i] : ends[i]]
    times = dataset[:]
    return lambda i: times[starts[i] : ends[i]]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _finish(q: str, rows: list[pl.DataFrame], n_events: list[tuple[str, int]]):
    """Aggregate the per-file rows of a baseline into the answer's shape."""
    empty = {
        "q1_units_per_area": {"area": pl.String, "fr": pl.Float64},
        "q2_spike_totals": {"session_id": pl.String, "area": pl.String, "n": pl.Int64},
        "q3_change_counts": {
            "session_id": pl.String,
            "unit_id": pl.Int64,
            "trial_index": pl.Int64,
            "n_spikes": pl.Int64,
        },
        "q4_lick_psth": {
            "session_id": pl.String,
            "unit_id": pl.Int64,
            "area": pl.String,
            "bin": pl.Int64,
            "n_spikes": pl.Int64,
        },
    }[q]
    frame = pl.concat(rows) if rows else pl.DataFrame(schema=empty)
    if q == "q1_units_per_area":
        fr = pl.col("fr")
        return frame.group_by("area").agg(
            pl.len().alias("n_units"), fr.filter(fr.is_not_nan()).mean().alias("mean_firing_rate")
        )
    if q == "q2_spike_totals":
        return frame.group_by("session_id", "area").agg(
            pl.len().alias("n_units"), pl.col("n").sum().alias("n_spikes")
        )
    if q == "q3_change_counts":
        return frame
    events = pl.DataFrame(n_events, schema=["session_id", "n_events"], orient="row")
    return frame, area_means(frame, events)


# ================================================================================= pynwb
def pynwb_read(folder: str) -> dict:
    from pynwb import NWBHDF5IO

    files = sorted(Path(folder).glob("*.nwb"))

    def answer(q: str):
        rows: list[pl.DataFrame] = []
        n_events = []
        for path in files:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with NWBHDF5IO(str(path), "r") as io:
                    nwb = io.read()
                    sid = nwb.session_id
                    units = nwb.units.to_dataframe(
                        index=True, exclude={"waveform_mean", "waveform_sd"}
                    )
                    location = nwb.electrodes.to_dataframe()["location"].to_numpy()
                    area = location[np.array([e[0] for e in units["electrodes"]])]
                    m = {c: units[c].to_numpy() for c in units.columns if c != "electrodes"}
                    ok_vc = (
                        (m["amplitude_cutoff"] <= 0.1)
                        & (m["presence_ratio"] >= 0.95)
                        & (m["isi_violations"] <= 0.5)
                        & (m["quality"] == "good")
                    )
                    if q == "q1_units_per_area":
                        rows.append(
                            pl.DataFrame({"area": area[ok_vc], "fr": m["firing_rate"][ok_vc]})
                        )
                    elif q == "q2_spike_totals":
                        n = np.array([len(t) for t in m["spike_times"]])
                        rows.append(pl.DataFrame({"session_id": sid, "area": area, "n": n}))
                    elif q == "q3_change_counts":
                        trials = nwb.trials.to_dataframe()
                        trials = trials[np.isfinite(trials["change_time"].to_numpy())]
                        change = trials["change_time"].to_numpy()
                        for i in np.flatnonzero(ok_vc & (area == "VISp")):
                            t = np.asarray(m["spike_times"][i])
                            counts = np.searchsorted(t, change + 0.25) - np.searchsorted(t, change)
                            rows.append(
                                pl.DataFrame(
                                    {
                                        "session_id": sid,
                                        "unit_id": np.full(len(change), units.index[i]),
                                        "trial_index": trials.index.to_numpy(),
                                        "n_spikes": counts,
                                    }
                                )
                            )
                    else:
                        licks = nwb.processing["licking"]["licks"].timestamps[:]
                        licks = licks[np.isfinite(licks)]
                        edges = licks[:, None] + lick_offsets()[None, :]
                        n_events.append((sid, len(licks)))
                        ok = (m["snr"] > 1) & (m["isi_violations"] < 1) & (m["firing_rate"] > 0.1)
                        chosen = np.flatnonzero(ok)
                        totals = np.array(
                            [
                                np.diff(
                                    np.searchsorted(np.asarray(m["spike_times"][i]), edges), axis=1
                                ).sum(axis=0)
                                for i in chosen
                            ]
                        ).reshape(len(chosen), LICK_BINS[2])
                        rows.append(
                            pl.DataFrame(
                                {
                                    "session_id": sid,
                                    "unit_id": np.repeat(units.index[chosen], LICK_BINS[2]),
                                    "area": np.repeat(area[chosen], LICK_BINS[2]),
                                    "bin": np.tile(np.arange(LICK_BINS[2]), len(chosen)),
                                    "n_spikes": totals.reshape(-1),
                                }
                            )
                        )
        return _finish(q, rows, n_events)

    return {"answer": answer}


# =============================================================================== lazynwb
def lazynwb_scan(folder: str) -> dict:
    import lazynwb

    files = [str(p) for p in sorted(Path(folder).glob("*.nwb"))]
    nan_safe = {
        "vc": (
            (pl.col("amplitude_cutoff").is_not_nan() & (pl.col("amplitude_cutoff") <= 0.1))
            & (pl.col("presence_ratio").is_not_nan() & (pl.col("presence_ratio") >= 0.95))
            & (pl.col("isi_violations").is_not_nan() & (pl.col("isi_violations") <= 0.5))
            & (pl.col("quality") == "good")
        ).fill_null(False),
        "vb": (
            (pl.col("snr").is_not_nan() & (pl.col("snr") > 1))
            & (pl.col("isi_violations").is_not_nan() & (pl.col("isi_violations") < 1))
            & (pl.col("firing_rate").is_not_nan() & (pl.col("firing_rate") > 0.1))
        ).fill_null(False),
    }

    def with_area(units: pl.LazyFrame) -> pl.LazyFrame:
        electrodes = lazynwb.scan_nwb(
            files, "/general/extracellular_ephys/electrodes", disable_progress=True
        ).select("_nwb_path", pl.col("_table_index").alias("e"), pl.col("location").alias("area"))
        return units.with_columns(pl.col("electrodes").list.first().alias("e")).join(
            electrodes, on=["_nwb_path", "e"]
        )

    def session_ids() -> pl.DataFrame:  # DANDI file names: sub-<subject>_ses-<session>_...
        return pl.DataFrame({"_nwb_path": files}).with_columns(
            pl.col("_nwb_path").str.extract(r"_ses-([^_/]+)_[^/]*$").alias("session_id")
        )

    def answer(q: str):
        units = lazynwb.scan_nwb(files, "/units", disable_progress=True)
        if q == "q1_units_per_area":
            fr = pl.col("firing_rate")
            return (
                with_area(units.filter(nan_safe["vc"]))
                .group_by("area")
                .agg(
                    pl.len().alias("n_units"),
                    fr.filter(fr.is_not_nan()).mean().alias("mean_firing_rate"),
                )
                .collect()
            )
        if q == "q2_spike_totals":
            return (
                with_area(
                    units.select(
                        "_nwb_path", "electrodes", pl.col("spike_times").list.len().alias("n")
                    )
                )
                .collect()
                .join(session_ids(), on="_nwb_path")
                .group_by("session_id", "area")
                .agg(pl.len().alias("n_units"), pl.col("n").sum().alias("n_spikes"))
            )
        if q == "q3_change_counts":
            chosen = (
                with_area(
                    units.filter(nan_safe["vc"]).select(
                        "_nwb_path", "_table_index", "id", "electrodes"
                    )
                )
                .filter(pl.col("area") == "VISp")
                .collect()
            )
            if chosen.height == 0:
                return _finish(q, [], [])
            counts = lazynwb.get_spike_times_in_intervals(
                chosen.select("_nwb_path", "_table_index"),
                {"n_spikes": (pl.col("change_time") + 0.0, pl.col("change_time") + 0.25)},
                intervals_df="/intervals/trials",
                intervals_df_filter=pl.col("change_time").is_not_nan(),
                as_counts=True,
                apply_obs_intervals=False,
                keep_only_necessary_cols=True,
                disable_progress=True,
                as_polars=True,
                use_process_pool=False,  # lazynwb 1.0.0: its process-pool path raises NameError
            )
            trials = lazynwb.scan_nwb(files, "/intervals/trials", disable_progress=True).select(
                "_nwb_path", "_table_index", pl.col("id").alias("trial_index")
            )
            return (
                counts.join(
                    chosen.select(
                        "_nwb_path",
                        pl.col("_table_index").alias("_units_table_index"),
                        pl.col("id").alias("unit_id"),
                    ),
                    on=["_nwb_path", "_units_table_index"],
                )
                .join(
                    trials.collect().rename({"_table_index": "_intervals_table_index"}),
                    on=["_nwb_path", "_intervals_table_index"],
                )
                .join(session_ids(), on="_nwb_path")
                .select("session_id", "unit_id", "trial_index", pl.col("n_spikes").cast(pl.Int64))
            )
        chosen = (
            with_area(
                units.filter(nan_safe["vb"]).select("_nwb_path", "id", "electrodes", "spike_times")
            )
            .collect()
            .join(session_ids(), on="_nwb_path")
        )
        rows, n_events = [], []
        for (path,), group in chosen.group_by(["_nwb_path"], maintain_order=True):
            licks = np.asarray(
                lazynwb.get_timeseries(path, "licks", exact_path=False).timestamps[:]
            )
            licks = licks[np.isfinite(licks)]
            edges = licks[:, None] + lick_offsets()[None, :]
            sid = group["session_id"][0]
            n_events.append((sid, len(licks)))
            totals = np.array(
                [
                    np.diff(np.searchsorted(np.asarray(t), edges), axis=1).sum(axis=0)
                    for t in group["spike_times"].to_list()
                ]
            ).reshape(group.height, LICK_BINS[2])
            rows.append(
                pl.DataFrame(
                    {
                        "session_id": sid,
                        "unit_id": np.repeat(group["id"].to_numpy(), LICK_BINS[2]),
                        "area": np.repeat(group["area"].to_numpy(), LICK_BINS[2]),
                        "bin": np.tile(np.arange(LICK_BINS[2]), group.height),
                        "n_spikes": totals.reshape(-1),
                    }
                )
            )
        return _finish(q, rows, n_events)

    return {"answer": answer}


# ============================================================================ child runner
METHODS = {
    "nplake_sql": nplake_sql,
    "nplake_polars": nplake_polars,
    "h5py": h5py_loop,
    "pynwb": pynwb_read,
    "lazynwb": lazynwb_scan,
}

CHILD = """
import sys, time
sys.path.insert(0, {bench!r})
t0 = time.perf_counter()
import bench_queries as bq
_result = bq.child({method!r}, {source!r}, {out!r}, {runs}, t0)
"""


def child(method: str, source: str, out: str, runs: int, t0: float) -> dict:
    """Runs inside a fresh process: answer every question `runs` times; save the last answers."""
    warnings.simplefilter("ignore")
    ready = METHODS[method](source)
    setup = time.perf_counter() - t0
    times: dict[str, list[float]] = {q: [] for q in QUESTIONS}
    for _ in range(runs):
        for q in QUESTIONS:
            start = time.perf_counter()
            result = ready["answer"](q)
            times[q].append(time.perf_counter() - start)
            _save(result, Path(out) / method, q)
    return {"setup": setup, "times": times}


def _save(result, folder: Path, q: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(result, tuple):
        result[0].write_parquet(folder / f"{q}.parquet")
        result[1].write_parquet(folder / "q4_area.parquet")
    else:
        result.write_parquet(folder / f"{q}.parquet")


def check_same(out: Path, methods: list[str]) -> dict[str, int]:
    """Every method's answers equal the first's: integers exactly, means to 1e-12 relative."""
    sizes = {}
    for q in (*QUESTIONS, "q4_area"):
        ref = _load(out / methods[0] / f"{q}.parquet", q)
        sizes[q] = ref.height
        for m in methods[1:]:
            got = _load(out / m / f"{q}.parquet", q)
            assert got.columns == ref.columns and got.height == ref.height, (q, m, got, ref)
            for col in ref.columns:
                a, b = ref[col], got[col]
                if a.dtype.is_float():
                    ok = np.allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12, atol=0, equal_nan=True)
                else:
                    ok = a.equals(b)
                assert ok, f"{q}.{col}: {m} differs from {methods[0]}"
    return sizes


def _load(path: Path, q: str) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    casts = {c: pl.Int64 for c in frame.columns if frame[c].dtype.is_integer()}
    frame = frame.cast(casts).cast(
        {c: pl.String for c in ("session_id", "area") if c in frame.columns}
    )
    return frame.select(sorted(frame.columns)).sort(KEYS[q], nulls_last=True)


WHY_SMALL = """\
How nplake answers the spike-time questions (Q3, Q4), which gain least because they need
spike times: the lake stores spikes sorted by (unit_id, time) in row groups of 128 Ki rows
with a page index, times byte-stream-split and LZ4-compressed (faster to decode than zstd,
within a few % of its size). The
polars path (`lake.analysis`) skips row groups whose unit_id statistics exclude every chosen
unit, takes each unit's slice from the units' spike counts, and hands numba kernels only the
units present in a row group; the VISp units of Q3 (a few % of the units) thus read a few
row groups per session. The SQL macros join spikes to the event windows on an integer session
key and a time bucket a quarter of a window long. The lick PSTH (Q4) needs nearly every spike
of the chosen units: it is bounded by decoding them and by the (spike, lick) pairs (about
20 M here), which the polars kernel bins in one pass and DuckDB groups.
"""
WHY_LARGE = """\
With few, large sessions the metadata questions (Q1, Q2) have little to amortise: opening two
HDF5 files costs about what nplake's query costs. The spike-time questions show the Parquet
layout at work: a realistic session's 52 M spikes span about 400 row groups of 128 Ki spikes,
and the VISp units of Q3 sit in a few of them, so `lake.analysis` reads only those while every
baseline reads every chosen unit's spikes from HDF5 (and pynwb and lazynwb every spike). The
lick PSTH (Q4) needs nearly every spike of every chosen unit, so it is bounded by decoding them
and by binning the (spike, lick) pairs.
"""


# ================================================================================== driver
def corpus(n: int, size: str, compression: str | None) -> Path:
    """The synthetic corpus, written once (same sessions plain and gzip-compressed)."""
    from ingest.synth import write_corpus

    folder = DATA / f"queries-{size}-{n}-{compression or 'plain'}"
    marker = folder / "corpus.json"
    spec = {"n": n, "size": size, "seed": SEED, "compression": compression}
    if not marker.exists() or json.loads(marker.read_text()) != spec:
        shutil.rmtree(folder, ignore_errors=True)
        write_corpus(folder, n, seed=SEED, size=size, compression=compression)
        marker.write_text(json.dumps(spec))
    return folder


def lake_layout() -> dict:
    """How the lake's spikes files are written: a lake written otherwise is built again."""
    from lake.storage import parquet as storage

    return {
        "spike_row_group_rows": storage.SPIKE_ROW_GROUP_ROWS,
        "lz4_columns": {k: list(v) for k, v in storage.LZ4_COLUMNS.items()},
        "options": json.dumps(storage.parquet_options(pa_schema(), "spikes"), sort_keys=True),
        "sorting_columns": True,
    }


def pa_schema():
    import pyarrow as pa

    return pa.schema([("unit_id", pa.int64()), ("time", pa.float64())])


def build_lake(folder: Path, n: int, size: str) -> tuple[Path, float | None]:
    import lake

    lake_dir = DATA / f"queries-{size}-{n}-lake"
    marker = DATA / f"queries-{size}-{n}-lake.json"
    layout = {"n": n, "size": size, **lake_layout()}
    if (
        lake_dir.exists()
        and marker.exists()
        and json.loads(marker.read_text()) == layout
        and len(lake.open(lake_dir).sessions()) == n
    ):
        return lake_dir, None
    shutil.rmtree(lake_dir, ignore_errors=True)
    start = time.perf_counter()
    report = lake.open(lake_dir).ingest([folder], jobs=2)
    assert report.ok and len(report.landed) == n, str(report)
    marker.write_text(json.dumps(layout))
    return lake_dir, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", default="small", choices=["tiny", "small", "realistic"])
    parser.add_argument("--runs", type=int, default=5, help="runs of the fast methods")
    parser.add_argument("--slow-runs", type=int, default=2, help="runs of pynwb and lazynwb")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], help="methods to leave out")
    parser.add_argument(
        "--resume", action="store_true", help="keep the results of methods already measured"
    )
    args = parser.parse_args()

    plain = corpus(args.sessions, args.size, None)
    gzipped = corpus(args.sessions, args.size, "gzip")
    lake_dir, ingest_s = build_lake(plain, args.sessions, args.size)
    out = DATA / f"queries-{args.size}-{args.sessions}-answers"
    if not args.resume:
        shutil.rmtree(out, ignore_errors=True)
    plan = [
        ("nplake_sql", "nplake_sql", str(lake_dir), args.runs),
        ("nplake_polars", "nplake_polars", str(lake_dir), args.runs),
        ("h5py", "h5py_plain", str(plain), args.runs),
        ("h5py", "h5py_gzip", str(gzipped), args.runs),
        ("pynwb", "pynwb_plain", str(plain), args.slow_runs),
        ("pynwb", "pynwb_gzip", str(gzipped), args.slow_runs),
        ("lazynwb", "lazynwb_plain", str(plain), args.slow_runs),
        ("lazynwb", "lazynwb_gzip", str(gzipped), args.slow_runs),
    ]
    results = {}
    for method, label, source, runs in plan:
        if method in args.skip:
            continue
        saved = out / f"{label}.json"
        if args.resume and saved.exists():
            results[label] = json.loads(saved.read_text())
            continue
        print(f"{label} ...", file=sys.stderr, flush=True)
        code = CHILD.format(bench=str(BENCH), method=method, source=source, out=str(out), runs=runs)
        results[label] = run_child(code)
        # each child saves under its method name: keep a copy per label for the comparison
        if label != method:
            shutil.rmtree(out / label, ignore_errors=True)
            shutil.move(str(out / method), str(out / label))
        saved.write_text(json.dumps(results[label]))
    labels = list(results)
    sizes = check_same(out, labels)
    table = report(args, results, sizes, ingest_s, lake_dir)
    print(table)
    if not args.no_doc:
        section = "cross-session-questions" + ("" if args.size == "small" else f"-{args.size}")
        write_section(section, table)


def report(args, results: dict, sizes: dict, ingest_s: float | None, lake_dir: Path) -> str:
    """The markdown section: medians per question and method, ratios, peak memory."""

    def warm(label: str, q: str) -> float:
        t = results[label]["times"][q]
        return median(t[1:] if len(t) > 1 else t)

    def first(label: str, q: str) -> float:
        return results[label]["times"][q][0]

    labels = list(results)
    best = {q: min(warm(x, q) for x in labels if x.startswith("nplake")) for q in QUESTIONS}
    header = "| method | " + " | ".join(TITLES[q].split(" ", 1)[0] for q in QUESTIONS)
    lines = [
        header + " | peak RSS | setup |",
        "|---|" + "---:|" * (len(QUESTIONS) + 2),
    ]
    for label in labels:
        cells = []
        for q in QUESTIONS:
            cells.append(f"{warm(label, q):.3f} ({first(label, q):.3f})")
        rss = results[label]["peak_rss_mb"]
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {rss:,.0f} MB | {results[label]['setup']:.2f} s |"
        )
    ratio_lines = [
        "| nplake (best of SQL, polars) is faster than | "
        + " | ".join(TITLES[q].split(" ", 1)[0] for q in QUESTIONS)
        + " | target |",
        "|---|" + "---:|" * (len(QUESTIONS) + 1),
    ]
    targets = {
        "h5py_plain": 1.0,
        "h5py_gzip": 5.0,
        "pynwb_plain": 30.0,
        "pynwb_gzip": 30.0,
        "lazynwb_plain": 30.0,
        "lazynwb_gzip": 30.0,
    }
    verdict = []
    for label, target in targets.items():
        if label in results:
            ratios = [warm(label, q) / best[q] for q in QUESTIONS]
            ratio_lines.append(
                f"| {label} | " + " | ".join(f"{r:,.1f}×" for r in ratios) + f" | ≥ {target:g}× |"
            )
            missed = [
                f"{q.split('_', 1)[0].upper()} ({r:.1f}×)"
                for q, r in zip(QUESTIONS, ratios, strict=True)
                if r < target
            ]
            if missed:
                verdict.append(f"- vs {label} (≥ {target:g}×): **missed** on {', '.join(missed)}")
            else:
                verdict.append(f"- vs {label} (≥ {target:g}×): met on every question")
    for label in ("nplake_sql", "nplake_polars"):
        if label in results and "h5py_plain" in results:
            slower = [
                q.split("_", 1)[0].upper()
                for q in QUESTIONS
                if warm(label, q) > warm("h5py_plain", q)
            ]
            if slower:
                verdict.append(
                    f"- {label} alone is slower than the plain h5py loop on {', '.join(slower)}"
                )
    ratio_lines += ["", "Targets (best nplake method, medians):", "", *verdict]
    questions = "\n".join(f"- **{TITLES[q]}** — {sizes[q]:,} answer rows" for q in QUESTIONS)
    built = (
        f"Building the lake took {ingest_s:.1f} s (`ingest --jobs 2`, once). " if ingest_s else ""
    )
    why = WHY_SMALL if args.size == "small" else WHY_LARGE
    return textwrap.dedent(
        """
        ## Cross-session questions{suffix}

        `python benchmarks/bench_queries.py --sessions {n} --size {size}` — {n} synthetic
        `{size}` sessions (`write_corpus(folder, {n}, seed={seed}, size="{size}")`), written
        plain and gzip-compressed (`compression="gzip"`); the lake was ingested from the plain
        files (its tables are the same either way). Every method answers every question in a
        fresh process; the answers are checked to be identical (counts exactly, means to 1e-12
        relative: sums in another order). Seconds: median of the repeated runs, first run in
        parentheses (page cache warm, process fresh; nplake's first run includes building its
        DuckDB views and loading the compiled kernels). `setup`: imports and opening. Peak RSS
        of the whole child process. {runs} runs for nplake and h5py, {slow} for pynwb and
        lazynwb. Machine: {machine}.

        {questions}

        {table}

        {ratios}

        {built}

        {why}
        """
    ).format(
        suffix="" if args.size == "small" else f" ({args.size} sessions)",
        n=args.sessions,
        size=args.size,
        seed=SEED,
        runs=args.runs,
        slow=args.slow_runs,
        machine=machine(),
        questions=questions,
        table="\n".join(lines),
        ratios="\n".join(ratio_lines),
        built=built,
        why=why,
    )


if __name__ == "__main__":
    main()
