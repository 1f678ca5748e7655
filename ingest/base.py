"""The Decoder protocol: one module per input format implements it, nothing more.

A decoder says whether it reads a path (`sniff`), which files it would read (`inputs`, hashed by
the lake to make re-ingest of an unchanged source a no-op without decoding it), and turns the
path into a `SessionBundle` (`decode`). Decoders never write anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from schemas import DecodeError, SessionBundle


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

    def for_source(self, path: Path) -> DecodeOptions:
        """The options one source sees: only the named pickles that sit directly in its folder.

        The options are recorded per session, so a pickle named for one session folder must not
        change (and re-ingest) the other sessions of the batch. A remote source has no folder
        here: it sees none.
        """
        if not isinstance(path, str | Path):  # a remote source (`ingest.remote.RemotePath`)
            return replace(self, pickles=())
        folder = Path(path).resolve()
        kept = tuple(p for p in self.pickles if Path(p).resolve().parent == folder)
        return replace(self, pickles=kept)

    def check_pickles(self, sources: Iterable[Path]) -> None:
        """DecodeError unless every named pickle is a file directly in one of `sources`' folders.

        A named pickle no session would load is a mistake (a typo, or the wrong folder) that
        would otherwise pass silently.
        """
        folders = {Path(s).resolve() for s in sources if isinstance(s, str | Path)}
        for pickle in map(Path, self.pickles):
            if not pickle.is_file():
                msg = "no such file (named as a behaviour pickle)"
                raise DecodeError(msg, file=pickle, field="pickles")
            if pickle.resolve().parent not in folders:
                msg = (
                    "named as a behaviour pickle, but it is not in the folder of any session "
                    "being ingested (a pickle is read by the rig session folder it sits in)"
                )
                raise DecodeError(msg, file=pickle, field="pickles")

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
