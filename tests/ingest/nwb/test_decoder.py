"""The NWB decoder's interface: sniffing, inputs, registration; ages from ISO-8601 durations."""

from __future__ import annotations

import datetime as dt

from ingest import decode
from ingest.base import DecodeOptions
from ingest.nwb import NWBDecoder, age_in_days
from ingest.registry import DECODERS
from tests.ingest.nwb.files import JANELIA, OGEN, UTC, nwb


def test_age_in_days():
    assert age_in_days("P205D", None, None) == 205.0
    assert age_in_days("P2W", None, None) == 14.0
    assert age_in_days("P1Y6M", None, None) == 365.25 * 1.5
    assert age_in_days("PT36H", None, None) == 1.5
    assert age_in_days("P90D/P120D", None, None) is None
    assert age_in_days("unknown", None, None) is None
    start = dt.datetime(2020, 1, 11, tzinfo=UTC)
    assert age_in_days(None, dt.datetime(2020, 1, 1, tzinfo=UTC), start) == 10.0


# --- decoder interface ------------------------------------------------------------------------


def test_sniff_and_inputs(tmp_path, realdata):
    decoder = NWBDecoder()
    upper = tmp_path / "X.NWB"
    upper.write_bytes(b"")
    assert decoder.sniff(upper)
    assert decoder.sniff(nwb(realdata, OGEN))
    assert not decoder.sniff(tmp_path / "missing.nwb")
    (tmp_path / "folder.nwb").mkdir()
    assert not decoder.sniff(tmp_path / "folder.nwb")
    other = tmp_path / "x.h5"
    other.write_bytes(b"")
    assert not decoder.sniff(other)
    assert decoder.inputs(upper, DecodeOptions()) == [upper]
    assert (decoder.name, decoder.version) == ("nwb", "3")


def test_registered_and_reachable_through_ingest_decode(realdata):
    assert any(isinstance(d, NWBDecoder) for d in DECODERS)
    bundle = decode(nwb(realdata, JANELIA))
    assert bundle.num_rows("spikes") == 1_679
