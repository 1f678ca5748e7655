"""The Decoder protocol: one module per input format implements it, nothing more.

A decoder says whether it reads a path (`sniff`), which files it would read (`inputs`, hashed by
the lake to make re-ingest of an unchanged source a no-op without decoding it), and turns the
path into a `SessionBundle` (`decode`). Decoders never write anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from schemas import SessionBundle


@dataclass(frozen=True)
class DecodeOptions:
    """Choices the user makes about decoding, recorded in `sessions.decoder_options`.

    session_id
        Use this id instead of the one the source carries (one source at a time).
    pickles
        Pickle files the user named explicitly. A pickle can run code when loaded, so decoders
        load only these, never pickles they merely find in a folder.
    """

    session_id: str | None = None
    pickles: tuple[Path, ...] = field(default_factory=tuple)

    def allows_pickle(self, path: Path) -> bool:
        """Whether the user named `path` as a pickle to load."""
        resolved = Path(path).resolve()
        return any(Path(p).resolve() == resolved for p in self.pickles)

    def to_json_dict(self) -> dict:
        """The options as JSON-ready values."""
        return {
            "session_id": self.session_id,
            "pickles": sorted(str(Path(p).resolve()) for p in self.pickles),
        }


@runtime_checkable
class Decoder(Protocol):
    """Turns one source (a file or a session folder) into a SessionBundle."""

    #: Short name recorded as `sessions.source_kind` (e.g. "nwb", "rig").
    name: str
    #: Decoder version; a change re-ingests sources this decoder made.
    version: str

    def sniff(self, path: Path) -> bool:
        """Whether `path` looks like a source of this format (cheap: names, magic bytes)."""
        ...

    def inputs(self, path: Path, options: DecodeOptions) -> list[Path]:
        """The files `decode` reads for `path`, for content hashing."""
        ...

    def decode(self, path: Path, options: DecodeOptions) -> SessionBundle:
        """Decode `path` into a validated SessionBundle; raise DecodeError on bad input."""
        ...
