"""The Dask DataFrame recipe of docs/interop.md, run as written: an S3 lake read through its
manifest answers as `nplake sql`."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

import lake
from lake.storage import Store, commit_bundle, commit_bundles
from tests.lake.builders import make_bundle
from tests.lake.test_interop import QUESTION

DOC = Path(__file__).resolve().parents[3] / "docs" / "interop.md"


def dask_recipe(lake_uri: str, storage: dict) -> list[tuple[str, int]]:
    """Run the recipe of docs/interop.md as written, on `lake_uri` with s3fs's `storage`."""
    text = DOC.read_text()
    section = text[text.index("### Dask DataFrame") :]
    code = section[section.index("```python\n") + 10 : section.index("\n```\n")]
    code = re.sub(r"^lake_uri = .*$", f"lake_uri = {lake_uri!r}", code, count=1, flags=re.M)
    code = re.sub(r"^storage = .*$", f"storage = {storage!r}", code, count=1, flags=re.M)
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)
    answer = scope["answer"].sort_index()
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
