"""`RigQuirks`: the quirks of real rigs the synthetic rig writer can put into its files.

Its own module because both the session writer (`rig.py`) and the probe writer
(`_rig_probes.py`) read it, and `rig.py` imports `_rig_probes.py`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RigQuirks:
    """Quirks real rigs produce, written on demand (all off by default)."""

    truncated_last_barcode: bool = False
    dropped_barcode: bool = False
    glitch: bool = False
    counter_bits: int = 32
    probe_without_ttl: int | None = None
    no_sync: bool = False
