"""A worker process that dies fails its own source only; the rest of the batch lands.

The crash is injected with a `sitecustomize` module on the workers' path: in a spawned
worker, decoding a file whose name contains "crash" aborts the process, as a segfault in a C
library would.
"""

from __future__ import annotations

import os
import shutil
import textwrap

import pytest

import lake

JANELIA = "sub-anm369963_ses-20170228.nwb"

SITECUSTOMIZE = textwrap.dedent(
    """
    import os

    def _install():
        from ingest.nwb import decoder

        real = decoder.NWBDecoder.decode

        def decode(self, path, options):
            if "crash" in str(path) and os.environ.get("NPLAKE_TEST_CRASH_IN_WORKER"):
                os.abort()
            return real(self, path, options)

        decoder.NWBDecoder.decode = decode

    try:
        _install()
    except ImportError:
        pass
    """
)


@pytest.mark.slow  # spawns worker pools three times
def test_a_dying_worker_fails_only_its_source(tmp_path, realdata, monkeypatch):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("NPLAKE_TEST_CRASH_IN_WORKER", "1")
    sources = tmp_path / "sources"
    sources.mkdir()
    for path in sorted((realdata / "nwb").glob("*.nwb")):
        shutil.copy(path, sources / path.name)
    shutil.copy(realdata / "nwb" / JANELIA, sources / "crash.nwb")
    report = lake.open(tmp_path / "lake").ingest([sources], jobs=2)
    assert sorted(o.status for o in report.outcomes) == ["failed", "landed", "landed", "landed"]
    (failed,) = report.failed
    assert failed.source.endswith("crash.nwb")
    assert "worker process died" in failed.reason and "tried twice" in failed.reason
    assert lake.open(tmp_path / "lake").sessions().height == 3
