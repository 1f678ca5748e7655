"""The Dask DataFrame recipe of docs/interop.md: an S3 lake read through its manifest."""

from __future__ import annotations

import pyarrow as pa
import pytest

import lake
from lake.storage import Store, commit_bundle, commit_bundles
from tests.lake.builders import make_bundle
from tests.lake.test_interop import QUESTION


def dask_recipe(lake_uri: str, storage: dict) -> list[tuple[str, int]]:
    """The recipe as docs/interop.md gives it (storage: s3fs options)."""
    # --- recipe start
    import json

    import dask.dataframe as dd
    import fsspec
    import pandas as pd
    import pyarrow.parquet as pq

    fs = fsspec.filesystem("s3", **storage)
    version = json.loads(fs.cat(f"{lake_uri}/_nplake/log/_last_checkpoint"))["version"]
    with fs.open(f"{lake_uri}/_nplake/log/{version:020d}.checkpoint.parquet") as fh:
        manifest = pq.read_table(fh).to_pandas()
    current = manifest[manifest["removed_version"].isna()]

    def table(name: str, columns: list[str]) -> dd.DataFrame:
        """One table's current files, one partition each; session_id from the manifest."""
        rows = current[current["table"] == name]

        def read(path: str, partition) -> pd.DataFrame:
            with fs.open(f"{lake_uri}/{name}/{path}") as fh:
                frame = pq.read_table(fh).to_pandas()
            if isinstance(partition, str):  # per-session tables keep session_id in the path
                frame["session_id"] = partition
            return frame.reindex(columns=columns)  # files older than a column lack it

        meta = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
        return dd.from_map(read, list(rows["path"]), list(rows["partition"]), meta=meta)

    spikes = table("spikes", ["session_id", "unit_id"])
    units = table("units", ["session_id", "unit_id", "quality"])
    joined = spikes.merge(units, on=["session_id", "unit_id"])
    answer = joined.groupby("quality").size().compute().sort_index()
    # --- recipe end
    return [(str(q), int(n)) for q, n in answer.items()]


@pytest.mark.slow  # moto, Delta publishing on S3 and dask.dataframe: about 6 s
def test_the_dask_dataframe_recipe_answers_as_nplake_on_an_s3_lake(s3):
    uri = s3.uri("interop")
    store = Store.at(uri, s3.options)
    commit_bundles(store, [make_bundle("s1", seed=1), make_bundle("s2", seed=2)])
    extra = {"snr": pa.array([1.0, 2, 3, 4])}  # a column older files lack
    commit_bundle(store, make_bundle("s1", seed=3, n_units=4, extra_units=extra))  # replaces s1
    storage = {
        "key": s3.options["AWS_ACCESS_KEY_ID"],
        "secret": s3.options["AWS_SECRET_ACCESS_KEY"],
        "endpoint_url": s3.endpoint,
    }
    expected = lake.open(uri, storage_options=s3.options).sql(QUESTION).rows()
    assert dask_recipe(uri, storage) == expected
    assert sum(n for _, n in expected) > 0
