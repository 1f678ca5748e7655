"""One fuzz batch in a fresh process: `python -m tests.fuzz._child LAKE SOURCES.json OUT.jsonl`.

Ingests the sources (one ingest call: a broken source fails alone) and writes each outcome as
one JSON line the moment it is known, then a last line `{"done": true}`. The parent counts a
timeout as a hang and a non-zero exit code as a crash; the lines written before either say
which sources were done.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lake


def main(argv: list[str]) -> int:
    root, sources, out = argv[1], Path(argv[2]), Path(argv[3])
    paths = [Path(p) for p in json.loads(sources.read_text())]
    with out.open("w") as fh:

        def write(o) -> None:
            row = {
                "source": o.source,
                "status": o.status,
                "session_id": o.session_id,
                "reason": o.reason,
                "traceback": o.traceback,
                "notes": o.notes,
                "rows": o.rows,
            }
            fh.write(json.dumps(row) + "\n")
            fh.flush()

        lake.open(root).ingest(paths, on_outcome=write)
        fh.write(json.dumps({"done": True}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
