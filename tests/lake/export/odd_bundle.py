"""A session no decoder makes: nulls everywhere NWB has none, names NWB cannot hold, odd types.

Used to check that export + ingest gives back exactly the lake rows through the nplake module
(renames, null cells, timestamp and date columns, tables and columns with no NWB home).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from schemas import SessionBundle, rows_table

UTC = dt.timezone.utc
F = float("nan")


def odd_bundle(session_id: str) -> SessionBundle:
    """A validated bundle with awkward values in every table."""
    rng = np.random.default_rng(3)
    unit_ids = np.array([3, 7, 11, 12], dtype=np.int64)
    counts = np.array([40, 0, 25, 10])
    spikes = pa.table(
        {
            "unit_id": np.repeat(unit_ids, counts),
            "time": np.concatenate([np.sort(rng.uniform(0, 50, c)) for c in counts]),
            "amplitude": rng.normal(size=int(counts.sum())),
        }
    )
    sessions = rows_table(
        "sessions",
        [
            {
                "session_id": session_id,
                "sex": "male",
                "age": "about three months",
                "rig": "R:1",
                "has_sync": True,
                "has_task": None,
                "experimenter": [],
                "notes": "made by hand; nothing decoded",
                "species": "Mus musculus",
            }
        ],
    )
    probes = pa.table(
        {
            "probe": ["probe:A/1", "probeB"],
            "device": [None, "dev:1"],
            "description": [None, "second probe"],
            "location": ["VISp", None],
            "manufacturer": ["imec", None],
            "model": ["NP 1.0", "3a"],
            "sampling_rate": [30000.0, None],
            "clock_status": ["aligned", None],
            "clock_n_barcodes": pa.array([12, None], pa.int64()),
            "custom_flag": [None, True],
        }
    )
    channels = pa.table(
        {
            "probe": ["probe:A/1"] * 3 + ["probeB"] * 2,
            "channel": [0, 1, 2, 0, 1],
            "channel_id": pa.array([10, None, 12, None, 20], pa.int64()),
            "ccf_ap": [1.0, None, F, 4.0, 5.0],
            "structure_acronym": ["VISp", None, "CA1", "LP", "LP"],
            "valid": [True, None, False, True, True],
            "rel_x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "installed": pa.array(
                [dt.datetime(2020, 1, 1, tzinfo=UTC), None, None, None, None],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    units = pa.table(
        {
            "unit_id": unit_ids,
            "probe": ["probe:A/1", None, "probeB", "probeB"],
            "peak_channel": pa.array([1, None, 0, 7], pa.int64()),
            "peak_channel_id": pa.array([None, None, 20, 5], pa.int64()),
            "quality": ["good", None, "mua", "good"],
            "spike_count": counts,
            "snr": [1.5, F, None, 2.0],
            "spans": pa.array([[0.0, 1.0], None, [], [2.0]], pa.list_(pa.float64())),
            "sorted_on": pa.array([dt.date(2021, 5, 1), None, None, None], pa.date32()),
        }
    )
    waveforms = pa.table(
        {
            "unit_id": [3, 11],
            "waveform_mean": pa.array([[0.5, 1.0, 2.0], [1.0, 2.0, 3.0]], pa.list_(pa.float32())),
            "waveform_sd": pa.array([None, [0.1, 0.1, 0.1]], pa.list_(pa.float32())),
            "n_samples": [3, 3],
            "n_channels": [1, 1],
            "sampling_rate": [None, 30000.0],
        }
    )
    trials = pa.table(
        {
            "trial_index": [0, 1, 2],
            "start_time": [0.0, 10.0, 20.0],
            "stop_time": [9.0, 19.0, F],
            "go": [True, None, False],
            "image": ["a", None, ""],
            "lick_times": pa.array([[1.0, 2.0], None, []], pa.list_(pa.float64())),
            "labels": pa.array([["x"], [], None], pa.list_(pa.string())),
            "nested": pa.array([[[1.0], [2.0, 3.0]], [], None], pa.list_(pa.list_(pa.float64()))),
            "shown_at": pa.array(
                [None, dt.datetime(2021, 1, 1, 12, tzinfo=UTC), None],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    intervals = pa.table(
        {
            "name": ["a:b", "a:b", "c/d", "epochs", "trials"],
            "row": [0, 1, 0, 4, 0],
            "start_time": [0.0, 1.0, 2.0, 3.0, 4.0],
            "stop_time": [0.5, 1.5, 2.5, 3.5, 4.5],
            "tags": pa.array([["t"], None, ["u", "v"], None, None], pa.list_(pa.string())),
            "score": [1.0, None, 3.0, None, None],
            "kind": [None, None, "k", "e", None],
        }
    )
    licks = pa.table({"time": [5.0, 1.0, 3.0, 3.0], "source": ["left", "left", "right", "x:y"]})
    rewards = pa.table(
        {
            "time": [1.0, 2.0, 2.0],
            "volume": [0.005, None, 0.003],
            "auto_rewarded": pa.array([None, None, None], pa.bool_()),
            "source": [None, "task", "task"],
        }
    )
    running = pa.table({"time": [0.0, 0.1, 0.2], "speed": [1.0, None, F]})
    clock = pa.table(
        {
            "probe": ["probe:A/1", "probe:A/1"],
            "barcode": [5, 6],
            "probe_time": [1.0, 2.0],
            "sync_time": [1.5, None],
            "residual": [0.0, None],
            "used_in_fit": [True, False],
        }
    )
    edges = pa.table(
        {
            "line": [0, 0, 3],
            "label": ["barcode", "barcode", None],
            "sample": [10, 20, 5],
            "time": [1e-4, 2e-4, 5e-5],
            "rising": [True, False, True],
        }
    )
    return SessionBundle(
        session_id,
        {
            "sessions": sessions,
            "probes": probes,
            "channels": channels,
            "units": units,
            "spikes": spikes,
            "waveforms": waveforms,
            "trials": trials,
            "intervals": intervals,
            "licks": licks,
            "rewards": rewards,
            "running_speed": running,
            "clock_alignment": clock,
            "sync_edges": edges,
        },
    ).validate()
