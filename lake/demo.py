"""`nplake demo`: make synthetic sessions, ingest them, answer three cross-session questions."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
from rich.console import Console

import lake as lake_pkg
from lake.location import data_home, default_demo_uri

#: The questions the demo asks, as (title, SQL). The SQL runs on any nplake lake.
QUESTIONS: tuple[tuple[str, str], ...] = (
    (
        "Good units per brain area, across all sessions",
        """
        SELECT structure_acronym AS area,
               count(*) AS good_units,
               count(DISTINCT session_id) AS sessions,
               round(avg(firing_rate), 2) AS mean_rate_hz
        FROM units_annotated
        WHERE quality = 'good'
        GROUP BY area
        ORDER BY good_units DESC
        LIMIT 10
        """,
    ),
    (
        "Spikes and units per genotype",
        """
        SELECT genotype,
               count(DISTINCT session_id) AS sessions,
               count(*) AS units,
               CAST(sum(spike_count) AS BIGINT) AS spikes
        FROM units_annotated
        GROUP BY genotype
        ORDER BY genotype
        """,
    ),
    (
        "Every good VISp unit: spikes in the 250 ms after an image change, per session",
        """
        WITH changes AS (
            SELECT session_id, change_time AS t0
            FROM trials
            WHERE change_time IS NOT NULL AND NOT isnan(change_time)
        ),
        visp AS (
            SELECT session_id, unit_id, genotype
            FROM units_annotated
            WHERE structure_acronym = 'VISp' AND quality = 'good'
        ),
        windows AS (
            SELECT v.session_id, count(*) AS spikes
            FROM visp AS v
            JOIN changes AS c USING (session_id)
            JOIN spikes AS s
              ON s.session_id = v.session_id AND s.unit_id = v.unit_id
             AND s.time >= c.t0 AND s.time < c.t0 + 0.25
            GROUP BY ALL
        )
        SELECT v.session_id, any_value(v.genotype) AS genotype,
               count(*) AS visp_units,
               any_value(n.changes) AS changes,
               coalesce(any_value(w.spikes), 0) AS spikes,
               round(coalesce(any_value(w.spikes), 0)
                     / (0.25 * count(*) * any_value(n.changes)), 2) AS rate_after_change_hz
        FROM visp AS v
        JOIN (SELECT session_id, count(*) AS changes FROM changes GROUP BY 1) AS n
          USING (session_id)
        LEFT JOIN windows AS w USING (session_id)
        GROUP BY v.session_id
        ORDER BY v.session_id
        """,
    ),
)


def run_demo(
    uri: str | None, *, n_sessions: int = 4, size: str = "small", jobs: int = 1
) -> lake_pkg.Lake:
    """Generate `n_sessions` synthetic NWB sessions, ingest them, print three answers."""
    from ingest.synth import write_corpus

    console = Console()
    lake_uri = uri or default_demo_uri()
    sources = (Path(f"{lake_uri}-sources") if uri else data_home() / "demo-sources").expanduser()
    sources.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]1. Writing {n_sessions} synthetic NWB sessions[/] to {sources}")
    start = time.perf_counter()
    files = write_corpus(sources, n_sessions, seed=2024, size=size)
    console.print(f"   {len(files)} files in {time.perf_counter() - start:.1f} s")
    lk = lake_pkg.open(lake_uri)
    console.print(f"[bold]2. Ingesting[/] into {lk.uri}")
    report = lk.ingest(files, jobs=jobs, progress=True)
    console.print(str(report), markup=False, highlight=False)
    console.print("[bold]3. Asking across all sessions[/]")
    for title, query in QUESTIONS:
        start = time.perf_counter()
        answer = lk.sql(query)
        elapsed = (time.perf_counter() - start) * 1000
        console.print(f"\n[bold]{title}[/]  ({elapsed:.0f} ms)")
        with pl.Config(tbl_rows=20, tbl_cols=-1, tbl_hide_dataframe_shape=True, fmt_str_lengths=48):
            print(answer, flush=True)
    console.print(
        f'\nTry it yourself:  nplake sql "SELECT * FROM units_annotated LIMIT 5" --lake {lk.uri}'
    )
    return lk
