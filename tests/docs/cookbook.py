"""Read the questions of docs/cookbook.md, run them, and (re)write their printed output.

A question is a marker comment followed by one ```sql block, one ```python block (which leaves
its answer in `out`) and one ```text block with the printed answer:

    <!-- cookbook q5 lake=demo session=1052076410 -->

`lake=demo` means the printed answer is what `nplake demo`'s lake gives; `lake=realdata` means
a lake holding the real NWB files of ../shared/realdata (the query then names one of their
sessions). `session=ID` names the session a question is about, so a test can ask it about
every session of another lake; `ask=synthetic` asks it only about that lake's synthetic sessions
(for questions about what the real files do not have, such as image changes). The import lines
of the ```python block marked
`<!-- cookbook setup -->` are run before every polars answer.

Rewrite the printed answers (after changing a question or the demo) with

    python -m tests.docs.cookbook

which builds the demo lake and a lake of the real files in a temporary folder.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

import lake

REPO = Path(__file__).resolve().parents[2]
COOKBOOK = REPO / "docs" / "cookbook.md"
LAKES = ("demo", "realdata")

_MARKER = re.compile(r"<!-- cookbook (?P<name>[\w-]+)(?P<options>(?: [\w-]+=[^\s]+)*) -->")
_BLOCK = re.compile(r"```(?P<kind>sql|python|text)\n(?P<body>.*?)\n```", re.S)


@dataclass(frozen=True)
class Question:
    """One marked question of the cookbook, with where its printed answer sits in the text."""

    name: str
    sql: str
    python: str
    printed: str
    printed_span: tuple[int, int]  # character span of the text block's body in the file
    options: dict[str, str] = field(default_factory=dict)

    @property
    def lake(self) -> str:
        """The lake whose answer is printed: 'demo' or 'realdata'."""
        return self.options.get("lake", "demo")

    @property
    def session(self) -> str | None:
        """The session id the question is about, if it is about one."""
        return self.options.get("session")


def parse(text: str) -> tuple[str, list[Question]]:
    """The setup code and the questions of a cookbook text, in document order."""
    markers = list(_MARKER.finditer(text))
    setup = ""
    questions: list[Question] = []
    for i, marker in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        blocks = {m["kind"]: m for m in _BLOCK.finditer(text, marker.end(), end)}
        if marker["name"] == "setup":
            setup = blocks["python"]["body"]
            continue
        kinds = [m["kind"] for m in _BLOCK.finditer(text, marker.end(), end)]
        if kinds != ["sql", "python", "text"]:
            msg = f"cookbook {marker['name']}: want sql, python, text blocks; found {kinds}"
            raise ValueError(msg)
        options = dict(o.split("=", 1) for o in marker["options"].split())
        if options.get("lake", "demo") not in LAKES:
            msg = f"cookbook {marker['name']}: lake must be one of {LAKES}"
            raise ValueError(msg)
        printed = blocks["text"]
        questions.append(
            Question(
                name=marker["name"],
                sql=blocks["sql"]["body"],
                python=blocks["python"]["body"],
                printed=printed["body"],
                printed_span=printed.span("body"),
                options=options,
            )
        )
    return setup, questions


def for_session(code: str, question: Question, session_id: str | None) -> str:
    """The code of a question asked about `session_id` instead of its own session."""
    if session_id is None or question.session is None:
        return code
    return code.replace(f"'{question.session}'", f"'{session_id}'").replace(
        f'"{question.session}"', f'"{session_id}"'
    )


def ask_sql(uri: str, question: Question, session_id: str | None = None) -> pl.DataFrame:
    """The SQL answer, from a Lake opened for this question alone (no state from others)."""
    return lake.open(uri).sql(for_session(question.sql, question, session_id))


def ask_polars(
    uri: str, setup: str, question: Question, session_id: str | None = None
) -> pl.DataFrame:
    """The polars answer (`out`), from the setup imports and a Lake opened for it alone."""
    lines = setup.splitlines()
    imports = "\n".join(line for line in lines if line.startswith(("import ", "from ")))
    namespace: dict[str, Any] = {}
    exec(imports, namespace)  # the cookbook's own code, as a reader runs it
    namespace["lk"] = lake.open(uri)
    exec(for_session(question.python, question, session_id), namespace)
    out = namespace["out"]
    return out.collect() if isinstance(out, pl.LazyFrame) else out


def render(frame: pl.DataFrame) -> str:
    """A frame as the cookbook prints it."""
    with pl.Config(
        tbl_rows=12,
        tbl_cols=-1,
        tbl_width_chars=250,
        fmt_str_lengths=30,
        float_precision=4,
        tbl_hide_column_data_types=True,
    ):
        return str(frame)


def rewrite(text: str, answers: dict[str, str]) -> str:
    """`text` with the printed answer of each named question replaced."""
    _, questions = parse(text)
    for q in sorted(questions, key=lambda q: q.printed_span[0], reverse=True):
        if q.name in answers:
            a, b = q.printed_span
            text = text[:a] + answers[q.name] + text[b:]
    return text


def build_demo_lake(folder: Path) -> str:
    """`nplake demo`'s lake (the same function and defaults), built in `folder`."""
    from lake.demo import run_demo

    return run_demo(str(folder / "demo-lake")).uri


def build_realdata_lake(folder: Path, realdata: Path) -> str:
    """A lake of the real NWB files of ../shared/realdata/nwb."""
    lk = lake.open(folder / "realdata-lake")
    report = lk.ingest(sorted((realdata / "nwb").glob("*.nwb")))
    if not report.ok:
        raise RuntimeError(str(report))
    return lk.uri


def main() -> None:
    """Rebuild both lakes and rewrite every printed answer of docs/cookbook.md."""
    from tests.conftest import REALDATA

    text = COOKBOOK.read_text()
    _, questions = parse(text)
    with tempfile.TemporaryDirectory() as tmp:
        uris = {
            "demo": build_demo_lake(Path(tmp)),
            "realdata": build_realdata_lake(Path(tmp), REALDATA),
        }
        answers = {q.name: render(ask_sql(uris[q.lake], q)) for q in questions}
    COOKBOOK.write_text(rewrite(text, answers))
    print(f"rewrote {len(answers)} answers in {COOKBOOK}", file=sys.stderr)


if __name__ == "__main__":
    main()
