"""Seeded synthetic Neuropixels sessions with known ground truth (Allen VBN-like), as NWB files.

`generate_session` draws a `SyntheticSession` in memory (the ground truth, on the master clock);
`write_nwb` writes it as a standard NWB file; `truth_tables(session)` gives the lake rows a
decoder of that file must produce; `write_corpus` writes several sessions for benchmarks and the
demo.

Examples
--------
>>> from ingest.synth import generate_session, truth_tables
>>> s = generate_session("1000000001", seed=1, size="tiny")
>>> truth_tables(s)["units"].num_rows == s.summary()["n_units"]
True
"""

from ingest.synth._rig_quirks import RigQuirks
from ingest.synth.corpus import corpus_sessions, nwb_file_name, write_corpus
from ingest.synth.model import (
    GENOTYPES,
    SIZES,
    EdgeCases,
    SizeSpec,
    SubjectInfo,
    SyntheticSession,
    generate_session,
)
from ingest.synth.nwb import write_nwb
from ingest.synth.rig import RigTruth, write_rig_session
from ingest.synth.truth import truth_tables

__all__ = [
    "GENOTYPES",
    "SIZES",
    "EdgeCases",
    "RigQuirks",
    "RigTruth",
    "SizeSpec",
    "SubjectInfo",
    "SyntheticSession",
    "corpus_sessions",
    "generate_session",
    "nwb_file_name",
    "truth_tables",
    "write_corpus",
    "write_nwb",
    "write_rig_session",
]
