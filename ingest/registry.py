"""The decoders nplake knows, in sniffing order. A new format is one module plus one line here."""

from __future__ import annotations

from ingest.base import Decoder
from ingest.nwb import NWBDecoder
from ingest.rig.session import RigDecoder

DECODERS: tuple[Decoder, ...] = (NWBDecoder(), RigDecoder())


def decoder_named(name: str) -> Decoder:
    """The registered decoder called `name`."""
    for decoder in DECODERS:
        if decoder.name == name:
            return decoder
    msg = f"no decoder named {name!r}; known: {[d.name for d in DECODERS]}"
    raise KeyError(msg)
