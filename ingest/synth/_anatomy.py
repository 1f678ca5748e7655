"""Probes and channels of a synthetic session: Neuropixels geometry, CCF tracks, brain areas.

Each probe enters visual cortex from above and passes, tip last, through hippocampus into
thalamus or midbrain, as Allen Visual Behavior Neuropixels probes do. Channel 0 is at the tip
(deepest); structure labels are assigned along the shank by depth fraction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Horizontal site positions (µm) of a Neuropixels 1.0 checkerboard, by channel index mod 4.
NP1_COLUMNS_UM = (43.0, 11.0, 59.0, 27.0)
#: Vertical pitch between rows of two sites (µm); channel 0 sits at 20 µm.
NP1_ROW_PITCH_UM = 20.0
#: The Neuropixels 1.0 reference channel, stored as invalid like Allen's `valid_data`.
REFERENCE_CHANNEL = 191

#: Tracks per probe, tip first: (structure acronym, relative share of the shank).
_TRACKS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("APN", 0.12), ("LP", 0.16), ("DG", 0.08), ("CA1", 0.12), ("VISam", 0.27), ("root", 0.25)),
    (("APN", 0.10), ("LP", 0.18), ("DG", 0.09), ("CA1", 0.12), ("VISpm", 0.26), ("root", 0.25)),
    (("MRN", 0.22), ("DG", 0.10), ("CA3", 0.06), ("CA1", 0.12), ("VISp", 0.28), ("root", 0.22)),
    (("LGd", 0.18), ("DG", 0.09), ("CA3", 0.07), ("CA1", 0.11), ("VISl", 0.28), ("root", 0.27)),
    (("LP", 0.20), ("DG", 0.10), ("CA3", 0.06), ("CA1", 0.12), ("VISrl", 0.27), ("root", 0.25)),
    (("LGd", 0.17), ("DG", 0.10), ("CA3", 0.07), ("CA1", 0.12), ("VISal", 0.27), ("root", 0.27)),
)
#: Approximate CCF entry points (AP, ML in µm) per track, lateral to the midline at 5,700 µm.
_ENTRY_AP_ML = (
    (8300.0, 7000.0),
    (8900.0, 7200.0),
    (9200.0, 8300.0),
    (8800.0, 9300.0),
    (7700.0, 9200.0),
    (7900.0, 9500.0),
)
#: How many units land on a channel of each structure, relative to cortex (1.0).
UNIT_DENSITY = {"root": 0.03, "DG": 0.5, "CA3": 0.5, "CA1": 0.8}


@dataclass(frozen=True, eq=False)
class Probes:
    """One entry per probe: name, Allen-like id, nominal rates and the cortical target."""

    name: np.ndarray  # str, "probeA", ...
    probe_id: np.ndarray  # int64
    sampling_rate: np.ndarray  # float64, Hz
    lfp_sampling_rate: np.ndarray  # float64, Hz
    target: np.ndarray  # str, cortical area the probe aims at

    def __len__(self) -> int:
        """Number of probes."""
        return len(self.name)


@dataclass(frozen=True, eq=False)
class Channels:
    """One entry per channel, probe-major then local index: the NWB electrodes table rows."""

    probe_index: np.ndarray  # int64, row in Probes
    local_index: np.ndarray  # int64, channel index on its probe (0 = tip)
    channel_id: np.ndarray  # int64, NWB electrodes id (Allen-like, increasing)
    vertical: np.ndarray  # float64, µm from the tip
    horizontal: np.ndarray  # float64, µm across the shank
    ccf_ap: np.ndarray  # float64, µm (NWB x)
    ccf_dv: np.ndarray  # float64, µm (NWB y)
    ccf_ml: np.ndarray  # float64, µm (NWB z)
    structure: np.ndarray  # str, CCF acronym (NWB location)
    valid: np.ndarray  # bool

    def __len__(self) -> int:
        """Number of channels over all probes."""
        return len(self.channel_id)


def probe_names(n_probes: int) -> list[str]:
    """Allen-style probe names: probeA, probeB, ..."""
    return [f"probe{chr(ord('A') + i)}" for i in range(n_probes)]


def make_probes(rng: np.random.Generator, n_probes: int) -> Probes:
    """Probes with Allen-like ids and nominal rates near 30 kHz (LFP = rate / 12)."""
    base_id = 1_040_000_000 + int(rng.integers(0, 10_000_000))
    rates = np.round(30_000.0 + rng.normal(0.0, 0.06, n_probes), 6)
    targets = [_TRACKS[i % len(_TRACKS)][-2][0] for i in range(n_probes)]
    return Probes(
        name=np.array(probe_names(n_probes)),
        probe_id=base_id + np.arange(n_probes, dtype=np.int64),
        sampling_rate=rates,
        lfp_sampling_rate=np.round(rates / 12.0, 6),
        target=np.array(targets),
    )


def make_channels(rng: np.random.Generator, probes: Probes, channels_per_probe: int) -> Channels:
    """Channels of every probe: checkerboard geometry, a CCF track and structure labels."""
    n_probes, n_ch = len(probes), channels_per_probe
    local = np.tile(np.arange(n_ch, dtype=np.int64), n_probes)
    probe_index = np.repeat(np.arange(n_probes, dtype=np.int64), n_ch)
    vertical = NP1_ROW_PITCH_UM * (local // 2 + 1).astype(np.float64)
    horizontal = np.asarray(NP1_COLUMNS_UM)[local % 4]

    structure = np.empty(n_probes * n_ch, dtype=object)
    ap, dv, ml = (np.empty(n_probes * n_ch) for _ in range(3))
    for p in range(n_probes):
        rows = slice(p * n_ch, (p + 1) * n_ch)
        structure[rows] = _labels_along_track(rng, _TRACKS[p % len(_TRACKS)], n_ch)
        ap[rows], dv[rows], ml[rows] = _ccf_track(
            rng, _ENTRY_AP_ML[p % len(_ENTRY_AP_ML)], vertical[rows]
        )

    valid = np.ones(n_probes * n_ch, dtype=bool)
    if n_ch > REFERENCE_CHANNEL:
        valid[local == REFERENCE_CHANNEL] = False
    # A few more bad channels per probe (at least one), never the two deepest.
    n_bad = max(1, n_ch // 100)
    for p in range(n_probes):
        bad = rng.choice(np.arange(2, n_ch), size=n_bad, replace=False)
        valid[p * n_ch + bad] = False

    gaps = rng.integers(1, 3, size=n_probes * n_ch)
    channel_id = 1_049_000_000 + int(rng.integers(0, 1_000_000)) + np.cumsum(gaps)
    return Channels(
        probe_index=probe_index,
        local_index=local,
        channel_id=channel_id.astype(np.int64),
        vertical=vertical,
        horizontal=horizontal,
        ccf_ap=ap,
        ccf_dv=dv,
        ccf_ml=ml,
        structure=structure.astype(str),
        valid=valid,
    )


def _labels_along_track(
    rng: np.random.Generator, track: tuple[tuple[str, float], ...], n_ch: int
) -> np.ndarray:
    """Structure acronym per channel (tip first), shares jittered by ±20 %."""
    names = [name for name, _ in track]
    shares = np.array([share for _, share in track]) * rng.uniform(0.8, 1.2, len(track))
    bounds = np.cumsum(shares / shares.sum()) * n_ch
    which = np.searchsorted(bounds, np.arange(n_ch) + 0.5)
    return np.array(names, dtype=object)[np.minimum(which, len(names) - 1)]


def _ccf_track(
    rng: np.random.Generator, entry_ap_ml: tuple[float, float], vertical: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CCF (AP, DV, ML) in whole µm along a slightly tilted shank, tip at DV ≈ 4,000 µm."""
    ap0, ml0 = entry_ap_ml
    tip = np.array(
        [ap0 + rng.normal(0, 100), 3_800.0 + rng.normal(0, 250), ml0 + rng.normal(0, 100)]
    )
    tilt = np.array([-0.10 + rng.normal(0, 0.03), -1.0, 0.10 + rng.normal(0, 0.03)])
    direction = tilt / np.linalg.norm(tilt)
    shrink = 0.9  # histology shrinks tissue: CCF distance per µm of shank
    along = (vertical - vertical.min())[:, None] * shrink
    xyz = np.round(tip[None, :] + along * direction[None, :])
    return xyz[:, 0], xyz[:, 1], xyz[:, 2]
