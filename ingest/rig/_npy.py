"""Load a .npy file of a sorting or events folder: never unpickled, damage named in one line.

np.load raises a handful of exception types on a damaged file (ValueError for a short body,
EOFError for an empty file, SyntaxError or tokenize.TokenError for a garbled header): all of
them become one DecodeError naming the file.
"""

from __future__ import annotations

import tokenize
from pathlib import Path
from typing import Literal

import numpy as np

from schemas import DecodeError

#: What np.load raises on a damaged or foreign .npy file.
DAMAGED = (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError)


def load_npy(file: Path, *, mmap_mode: Literal["r"] | None = None) -> np.ndarray:
    """The array in `file` (memory-mapped with `mmap_mode="r"`); a DecodeError when damaged."""
    try:
        return np.load(file, mmap_mode=mmap_mode, allow_pickle=False)
    except DAMAGED as exc:
        msg = f"not a readable .npy array: {exc}"
        raise DecodeError(msg, file=file) from None
