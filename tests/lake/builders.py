"""Small SessionBundles with known content, for lake tests that need no decoder."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from schemas import SessionBundle, StreamSource, rows_table

AREAS = ("VISp", "CA1", "LP", "DG", "VISl")


def make_bundle(
    session_id: str,
    *,
    seed: int = 0,
    n_units: int = 5,
    areas: tuple[str, ...] = AREAS,
    genotype: str = "wt/wt",
    extra_units: dict[str, pa.Array] | None = None,
    batch_rows: int = 500,
    break_stream_after: int | None = None,
) -> SessionBundle:
    """A session with channels, units (peak channel i for unit i), spikes and trials.

    `break_stream_after` makes the spikes stream raise after that many batches, as a damaged
    file found while streaming would.
    """
    rng = np.random.default_rng(seed)
    unit_ids = np.arange(n_units, dtype=np.int64) + 100
    counts = rng.integers(1, 400, n_units)
    spike_units = np.repeat(unit_ids, counts)
    times = np.concatenate([np.sort(rng.uniform(0, 100, c)) for c in counts])
    spikes = pa.table(
        {"unit_id": spike_units, "time": times, "amplitude": rng.normal(size=len(times))}
    )
    units = {
        "unit_id": unit_ids,
        "probe": ["probeA"] * n_units,
        "peak_channel": np.arange(n_units),
        "quality": ["good"] * (n_units - 1) + ["noise"],
        "spike_count": counts,
        "firing_rate": counts / 100.0,
    }
    for name, values in (extra_units or {}).items():
        units[name] = values
    channels = pa.table(
        {
            "probe": ["probeA"] * n_units,
            "channel": np.arange(n_units),
            "structure_acronym": [areas[i % len(areas)] for i in range(n_units)],
        }
    )
    trials = pa.table(
        {
            "trial_index": np.arange(3),
            "start_time": [0.0, 10.0, 20.0],
            "stop_time": [9.0, 19.0, 29.0],
            "change_time": [5.0, float("nan"), 25.0],
        }
    )
    sessions = rows_table(
        "sessions", [{"session_id": session_id, "genotype": genotype, "subject_id": "m1"}]
    )

    def batches():
        for i, batch in enumerate(spikes.to_batches(max_chunksize=batch_rows)):
            if break_stream_after is not None and i >= break_stream_after:
                msg = "simulated damage found while streaming spikes"
                raise OSError(msg)
            yield batch

    return SessionBundle(
        session_id,
        {
            "sessions": sessions,
            "probes": pa.table({"probe": ["probeA"], "sampling_rate": [30000.0]}),
            "channels": channels,
            "units": pa.table(units),
            "spikes": StreamSource(spikes.schema, spikes.num_rows, batches),
            "trials": trials,
        },
    ).validate()


def expected_spikes(bundle: SessionBundle) -> pa.Table:
    """The bundle's spikes as one table (the stream read whole)."""
    return bundle.table("spikes")
