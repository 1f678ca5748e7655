"""Decoders: source files in, a validated SessionBundle out. Knows nothing about Delta."""

from __future__ import annotations

import os
from pathlib import Path

from ingest.base import DecodeOptions, Decoder
from ingest.discover import Source, Unreadable, discover, find_decoder, fingerprint
from schemas import DecodeError, SessionBundle

__all__ = [
    "DecodeOptions",
    "Decoder",
    "Source",
    "Unreadable",
    "decode",
    "discover",
    "find_decoder",
    "fingerprint",
]


def decode(
    path: str | os.PathLike,
    *,
    session_id: str | None = None,
    pickles: tuple[str | os.PathLike, ...] = (),
) -> SessionBundle:
    """Decode one session file or folder into a validated SessionBundle (no lake involved).

    Examples
    --------
    >>> bundle = decode("session.nwb")  # doctest: +SKIP
    >>> bundle.tables["units"].num_rows  # doctest: +SKIP
    """
    p = Path(path).expanduser()
    if not p.exists():
        msg = "no such file or folder"
        raise DecodeError(msg, file=p)
    decoder = find_decoder(p)
    if decoder is None:
        msg = "not a session source nplake reads"
        raise DecodeError(msg, file=p)
    options = DecodeOptions(session_id=session_id, pickles=tuple(Path(x) for x in pickles))
    options.check_pickles([p])
    return decoder.decode(p, options.for_source(p))
