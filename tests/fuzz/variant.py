"""One corrupted source and what ingesting it must do; the byte-level damage both kinds share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Variant:
    """A corrupted source.

    `expect`: "fail" (it must fail, its reason holding `fragment`), "land" (it must land, a note
    holding `fragment` when one is given) or "any" (either; landed, it must be faithful).
    `session_id`: the id it lands under. `column`: (table, column, value) its rows must hold
    when it lands (a hostile name kept as given); the value is one cell or all cells of a list.
    """

    path: Path
    kind: str
    what: str
    expect: Literal["fail", "land", "any"] = "any"
    fragment: str = ""
    session_id: str | None = None
    column: tuple[str, str, object] | None = None


def truncate(path: Path, fraction: float) -> int:
    """Cut `path` to `fraction` of its size; return the new size."""
    size = int(path.stat().st_size * fraction)
    os.truncate(path, size)
    return size


def flip_bytes(path: Path, offsets: np.ndarray, rng: np.random.Generator) -> None:
    """XOR the bytes at `offsets` with random non-zero values."""
    data = bytearray(path.read_bytes())
    masks = rng.integers(1, 256, len(offsets))
    for offset, mask in zip(offsets.tolist(), masks.tolist(), strict=True):
        data[offset] ^= mask
    path.write_bytes(bytes(data))
