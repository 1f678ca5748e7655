"""The `timeseries` samples stream: every copied series, (series, component, sample) order.

The file is opened again when the lake reads the stream (after the decoder closed it), and
each component is read in slices of `BATCH_ROWS` samples, so a long high-rate series is never
held whole. Values get the source's `conversion` and `offset`; text data go to `text`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa

from ingest._hdf5 import open_h5, text_array
from ingest.nwb.series import Series, number_attr, series_times
from schemas import StreamSource

#: Rows per record batch of the samples stream.
BATCH_ROWS = 1 << 20

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("series", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("component", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("sample", pa.int64(), nullable=False),
        pa.field("time", pa.float64(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("text", pa.string()),
    ]
)


def samples_source(path: Path, catalogue: list[Series]) -> StreamSource | None:
    """The `timeseries` stream: (series, component, sample) order, re-read from the file."""
    ordered = sorted(catalogue, key=lambda s: s.name)
    total = sum(s.n_samples * len(s.components) for s in ordered)
    if not total:
        return None

    def batches() -> Iterator[pa.RecordBatch]:
        with open_h5(path) as fh:
            for s in ordered:
                yield from _series_batches(fh[s.path], s)

    return StreamSource(SAMPLES_SCHEMA, total, batches)


def _series_batches(group: h5py.Group, s: Series) -> Iterator[pa.RecordBatch]:
    times = series_times(group, s.n_samples)
    data = group["data"]
    conversion = number_attr(data, "conversion", 1.0)
    offset = number_attr(data, "offset", 0.0)
    for component in s.components:
        dataset, column = s.sources[component]
        for start in range(0, s.n_samples, BATCH_ROWS):
            stop = min(start + BATCH_ROWS, s.n_samples)
            value = text = None
            if dataset == "data" and s.text:
                text = pa.array(text_array(data[start:stop]), pa.string())
            elif dataset:
                raw = group[dataset]
                chunk = raw[start:stop] if column is None else raw[start:stop, column]
                value = np.asarray(chunk).astype(np.float64)
                if dataset == "data":
                    value = value * conversion + offset
            yield _batch(s.name, component, start, times[start:stop], value, text)


def _batch(name: str, component: str, start: int, times: np.ndarray, value, text) -> pa.RecordBatch:
    n = len(times)
    zeros = pa.array(np.zeros(n, dtype=np.int32))
    return pa.record_batch(
        [
            pa.DictionaryArray.from_arrays(zeros, pa.array([name], pa.string())),
            pa.DictionaryArray.from_arrays(zeros, pa.array([component], pa.string())),
            pa.array(np.arange(start, start + n, dtype=np.int64)),
            pa.array(times),
            pa.array(value) if value is not None else pa.nulls(n, pa.float64()),
            text if text is not None else pa.nulls(n, pa.string()),
        ],
        schema=SAMPLES_SCHEMA,
    )
