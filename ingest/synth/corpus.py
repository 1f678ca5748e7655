"""Several synthetic sessions at once: distinct ids, a few sessions per mouse, every genotype."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from ingest.synth.model import (
    GENOTYPES,
    LOCAL_TZ,
    SizeName,
    SizeSpec,
    SyntheticSession,
    generate_session,
    random_subject,
)
from ingest.synth.nwb import Compression, write_nwb

#: Image set of a mouse's first, second, ... session (familiar G first, then novel H, as in VBN).
_IMAGE_SET_ORDER = ("G", "H")


def corpus_sessions(
    n_sessions: int,
    *,
    seed: int,
    size: SizeName | SizeSpec = "tiny",
    sessions_per_subject: int = 2,
) -> Iterator[SyntheticSession]:
    """Yield `n_sessions` sessions one at a time (memory stays at one session).

    Session ids are distinct 10-digit numbers (Allen-like, so every id looks numeric); mouse k
    has `sessions_per_subject` sessions on consecutive days and genotype `GENOTYPES[k % 3]`.
    The same arguments yield the same sessions, so `write_corpus`'s truth can be regenerated.
    """
    if n_sessions < 1 or sessions_per_subject < 1:
        msg = (
            "need n_sessions >= 1 and sessions_per_subject >= 1, got "
            f"{n_sessions} and {sessions_per_subject}"
        )
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    first_id = int(rng.integers(1_040_000_000, 1_090_000_000))
    child_seeds = [
        int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n_sessions)
    ]
    subject = None
    first_day = dt.datetime(2020, 8, 3, 13, 0, tzinfo=LOCAL_TZ)
    for i in range(n_sessions):
        k, nth = divmod(i, sessions_per_subject)
        if nth == 0:
            start = first_day + dt.timedelta(days=7 * k, minutes=int(rng.integers(0, 180)))
            subject = replace(random_subject(rng, start), genotype=GENOTYPES[k % len(GENOTYPES)])
        start_i = start + dt.timedelta(days=nth, seconds=float(rng.integers(0, 3600)))
        yield generate_session(
            str(first_id + 1_237 * i),
            seed=child_seeds[i],
            size=size,
            subject=subject,
            session_start_time=start_i,
            image_set=_IMAGE_SET_ORDER[nth % len(_IMAGE_SET_ORDER)],
        )


def nwb_file_name(session: SyntheticSession) -> str:
    """DANDI-style file name: sub-<subject>_ses-<session>_ecephys.nwb."""
    return f"sub-{session.subject.subject_id}_ses-{session.session_id}_ecephys.nwb"


def write_corpus(
    folder: str | os.PathLike,
    n_sessions: int,
    *,
    seed: int,
    size: SizeName | SizeSpec = "tiny",
    compression: Compression = None,
    sessions_per_subject: int = 2,
) -> list[Path]:
    """Write `n_sessions` synthetic NWB files into `folder` (created) and return their paths.

    Examples
    --------
    >>> paths = write_corpus("corpus", 4, seed=7)  # doctest: +SKIP
    >>> [p.name for p in paths][:1]  # doctest: +SKIP
    ['sub-512345_ses-1061234567_ecephys.nwb']
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    return [
        write_nwb(s, out / nwb_file_name(s), compression=compression)
        for s in corpus_sessions(
            n_sessions, seed=seed, size=size, sessions_per_subject=sessions_per_subject
        )
    ]
