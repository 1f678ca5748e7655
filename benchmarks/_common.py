"""Shared benchmark plumbing: data folder, child processes that report time and peak RSS,
and writing a result section into docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NPLAKE_BENCH_DATA", ROOT / "benchmarks" / "_data"))
DOC = ROOT / "docs" / "benchmarks.md"
if str(ROOT) not in sys.path:  # the scripts share the tests' helpers (tests/s3.py, builders)
    sys.path.insert(0, str(ROOT))

#: Appended to a child's code: print what it measured plus its own peak RSS, as JSON. Peak RSS
#: is VmHWM of the child's own address space: ru_maxrss survives execve and would report the
#: parent's size at fork time.
_REPORT = """
import json as _json, sys as _sys
with open("/proc/self/status") as _f:
    _hwm = next(int(l.split()[1]) for l in _f if l.startswith("VmHWM:"))
_result["peak_rss_mb"] = _hwm / 1024
_sys.stdout.write("\\n@@RESULT@@" + _json.dumps(_result) + "\\n")
"""


def run_child(code: str, **env: str) -> dict:
    """Run `code` (which fills a dict `_result`) in a fresh Python; its result and peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", code + _REPORT],
        capture_output=True,
        text=True,
        cwd=DATA,
        env={**os.environ, **env},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-4000:])
    line = next(x for x in done.stdout.splitlines() if x.startswith("@@RESULT@@"))
    return json.loads(line.removeprefix("@@RESULT@@"))


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """One line describing where the numbers were measured."""
    import duckdb
    import numpy
    import polars
    import pyarrow

    cpus = os.cpu_count()
    return (
        f"{platform.machine()}, {cpus} cores, Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, pyarrow {pyarrow.__version__}, polars {polars.__version__}, "
        f"duckdb {duckdb.__version__}"
    )


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section between `<!-- name:start -->` and `<!-- name:end -->`."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nMeasured by the scripts in `benchmarks/`.\n"
    )
    block = f"<!-- {name}:start -->\n{markdown.strip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    DOC.write_text(text)
