"""The layers: imports between our packages point one way, and no package reaches into another
package's private modules.

`schemas` ← `ingest` ← `lake` → `queries` (docs/design.md). Every import statement counts, also
those inside functions and `if TYPE_CHECKING:` blocks: an import put off until it runs is still a
dependency, and a name needed only for type hints still ties the two modules together.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Which of our other packages each package may import.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "schemas": frozenset(),
    "ingest": frozenset({"schemas"}),
    "lake": frozenset({"schemas", "ingest", "queries"}),
    "queries": frozenset(),
}
PACKAGES = tuple(MAY_IMPORT)


@dataclass(frozen=True)
class Import:
    """One dotted name an import statement of one of our modules brings in."""

    file: str  # relative to the repository
    line: int
    statement: str
    name: str  # absolute: the module, or `module.attribute` for `from module import attribute`

    @property
    def package(self) -> str:
        """The top-level package of the imported name."""
        return self.name.split(".")[0]

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.statement}"


def module_name(relative: Path) -> str:
    """The dotted module name of a file given relative to the repository."""
    parts = relative.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, *, is_package: bool) -> list[tuple[int, str, str]]:
    """(line, statement, absolute dotted name) of every name every import statement brings in.

    `from m import a` gives `m.a` (a may be a submodule or an attribute); relative imports are
    resolved against `module` (a package resolves `.` to itself).
    """
    here = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            base += node.module.split(".") if node.module else []
            names = [".".join([*base, a.name]) for a in node.names if a.name != "*"]
            names = names or [".".join(base)]  # `from m import *`
        else:
            continue
        found += [(node.lineno, ast.unparse(node), name) for name in names]
    return sorted(found)


@functools.cache  # both rules read the same parse
def package_imports(package: str, root: Path = REPO) -> tuple[Import, ...]:
    """Every import of every module of one of our packages, with where it is."""
    out: list[Import] = []
    for file in sorted((root / package).rglob("*.py")):
        relative = file.relative_to(root)
        names = imported_names(
            file.read_text(), module_name(relative), is_package=file.name == "__init__.py"
        )
        out += [Import(str(relative), line, statement, name) for line, statement, name in names]
    return tuple(out)


def _private_part(name: str) -> str | None:
    """`name` up to its first private component (`_y`; dunders like `__version__` are not)."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.endswith("__"):
            return ".".join(parts[: i + 1])
    return None


def crossing_imports(package: str, root: Path = REPO) -> list[Import]:
    """The imports of `package` that name another of our packages."""
    return [
        imp
        for imp in package_imports(package, root)
        if imp.package in PACKAGES and imp.package != package
    ]


def arrow_violations(package: str, root: Path = REPO) -> list[str]:
    """Imports of `package` of one of our packages it may not import, one line each."""
    allowed = MAY_IMPORT[package]
    rule = f"({package} may import {', '.join(sorted(allowed)) or 'none of ours'})"
    wrong = {
        f"{imp}   {rule}" for imp in crossing_imports(package, root) if imp.package not in allowed
    }
    return sorted(wrong)


def private_violations(package: str, root: Path = REPO) -> list[str]:
    """Imports of `package` of a private module (or name) of another package, one line each."""
    return sorted(
        {
            f"{imp}   ({_private_part(imp.name)} is private to {imp.package})"
            for imp in crossing_imports(package, root)
            if _private_part(imp.name)
        }
    )


def _report(violations: list[str], what: str) -> str:
    return f"{len(violations)} {what}:\n  " + "\n  ".join(violations)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_point_one_way(package):
    wrong = arrow_violations(package)
    assert not wrong, _report(wrong, f"imports against the layers in {package}")


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_a_private_module_of_another_package(package):
    wrong = private_violations(package)
    assert not wrong, _report(wrong, f"imports of another package's private modules in {package}")


def test_every_package_has_modules_and_imports_to_check():
    for package in PACKAGES:
        assert (REPO / package / "__init__.py").is_file(), package
    assert {i.package for i in crossing_imports("lake")} >= {"schemas", "ingest"}


def test_imports_in_functions_type_checking_blocks_and_relative_ones_are_checked(tmp_path):
    files = {
        "schemas/__init__.py": "def f():\n    import lake.views\n",
        "ingest/__init__.py": "",
        "ingest/rig/__init__.py": "from . import sync\n",
        "ingest/rig/sync.py": (
            "from typing import TYPE_CHECKING\n"
            "from .._hdf5 import open_h5\n"
            "if TYPE_CHECKING:\n"
            "    from queries import (\n"
            "        views,\n"
            "    )\n"
        ),
        "lake/__init__.py": "from ingest import _nwb_write, nwb\nfrom ingest.nwb._x import y\n",
        "queries/__init__.py": "from .macros import *\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    assert [str(i) for i in package_imports("ingest", tmp_path)] == [
        "ingest/rig/__init__.py:1: from . import sync",
        "ingest/rig/sync.py:1: from typing import TYPE_CHECKING",
        "ingest/rig/sync.py:2: from .._hdf5 import open_h5",
        "ingest/rig/sync.py:4: from queries import views",
    ]
    resolved = {i.name for i in package_imports("ingest", tmp_path)}
    assert {"ingest.rig.sync", "ingest._hdf5.open_h5"} <= resolved  # relative imports resolved
    assert arrow_violations("schemas", tmp_path) == [
        "schemas/__init__.py:2: import lake.views   (schemas may import none of ours)"
    ]
    assert arrow_violations("ingest", tmp_path) == [
        "ingest/rig/sync.py:4: from queries import views   (ingest may import schemas)"
    ]
    assert private_violations("ingest", tmp_path) == []  # its own private module
    assert private_violations("lake", tmp_path) == [
        "lake/__init__.py:1: from ingest import _nwb_write, nwb   "
        "(ingest._nwb_write is private to ingest)",
        "lake/__init__.py:2: from ingest.nwb._x import y   (ingest.nwb._x is private to ingest)",
    ]
    assert [i.name for i in package_imports("queries", tmp_path)] == ["queries.macros"]
    assert _private_part("ingest.__version__") is None
