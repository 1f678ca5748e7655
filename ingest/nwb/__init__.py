"""NWB 2.x files: the decoder (h5py), the NWB <-> lake column map, and the column writers.

`decoder` turns a file into a SessionBundle; `mapping` says where lake columns live in NWB;
`write` turns lake columns into NWB columns and writes the `/processing/nplake` module
(`processing_nplake` reads it back). The lake's exporter and the synthetic writer use these.
"""

from __future__ import annotations

from ingest.nwb.decoder import NWBDecoder, age_in_days

__all__ = ["NWBDecoder", "age_in_days"]
