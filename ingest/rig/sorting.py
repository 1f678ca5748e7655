"""A Kilosort / phy spike-sorting folder: units, channels and spikes of one probe.

Reads (FORMATS.md 2.3) the folder holding `spike_times.npy` (found below the given folder: the
Allen folders keep it in `continuous/Neuropix-3a-100.0/`), and Allen extras found there or in
the folders above it up to the given one:

- `spike_times.npy` (probe samples) and `spike_clusters.npy` (required), `amplitudes.npy`;
  (N,) or (N, 1), any integer type; `np.load` never unpickles;
- `cluster_group.tsv` (curation label -> `quality`), `cluster_KSLabel.tsv` (used for `quality`
  when there is no cluster_group.tsv) and other `cluster_<name>.tsv` files (columns kept;
  `cluster_info.tsv`, a phy summary, is not read). A column name two files share is kept from
  both, the later one as `<name>_<file stem>` (e.g. `quality_metrics`);
- `metrics.csv`: every column kept under the source's name, except the key (`cluster_id`, Allen
  `cluster_ids`, or an unnamed index column when there is neither) and an unnamed row index;
  `peak_chan` (or `peak_channel`) also fills `peak_channel`: a channel number on the probe (on
  the real Allen file it reaches 364, beyond the 338 entries of channel_map, so it is not a
  channel_map index). Its other numeric columns are metrics, read as float64 whether or not
  their values look integral (`spread` does): the NWB files of the same pipeline store them as
  float, and a lake column cannot hold int64 for one session and float64 for another;
- `channel_map.npy`, `channel_positions.npy`, `ccf_regions.csv`, `probe_info.json`;
- `params.py`, read as text: `key = value` lines, each value parsed with `ast.literal_eval`;
  never imported or executed.

The sample rate comes from params.py `sample_rate`, else probe_info.json's AP-band rate, else
30 kHz with a note. Unit ids and clock conversion are the session assembler's job: `unit_ids`
gives the session-unique id scheme. Arrays whose lengths disagree are a DecodeError naming the
file and the field.

Examples
--------
>>> probe = read_sorting("725254892_probeA_sorted")  # doctest: +SKIP
>>> probe.units.num_rows, probe.spike_samples.shape  # doctest: +SKIP
(205, (10000,))
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ingest.rig._npy import load_npy
from schemas import DecodeError

#: unit_id = probe_index * UNIT_ID_STRIDE + cluster_id (see `unit_ids`).
UNIT_ID_STRIDE = 100_000
DEFAULT_SAMPLE_RATE = 30_000.0
#: Largest params.py accepted (Kilosort writes six short lines).
MAX_PARAMS_CHARS = 1 << 16
_SEARCH_DEPTH = 4
_CCF_UNKNOWN = -1.0
#: Columns that give `quality`, by file type, in order of preference across files.
_QUALITY_SOURCES = {".tsv": ("group", "KSLabel"), ".csv": ("quality",)}


@dataclass(frozen=True)
class SortedProbe:
    """One probe's sorting output, as Arrow tables and spike arrays (probe clock, samples).

    Attributes
    ----------
    folder
        The folder holding spike_times.npy.
    sample_rate, sample_rate_source
        Nominal spike-band rate (Hz) and where it came from ('params.py', 'probe_info.json' or
        'default').
    units
        cluster_id, quality, peak_channel, spike_count, then the metrics columns as named by the
        source. One row per cluster seen in any of the files, sorted by cluster_id.
    channels
        channel, probe_horizontal_position, probe_vertical_position, ccf_ap, ccf_dv, ccf_ml,
        structure_acronym, structure_id, valid (+ used_for_sorting when channel_map.npy exists,
        and the source's other per-channel columns).
    spike_clusters, spike_samples, spike_amplitudes
        Per spike, in file order: cluster id (int64), sample index on the probe clock (int64),
        amplitude (float64, or None without amplitudes.npy).
    probe
        What probe_info.json says: serial_number, model, sampling_rate, lfp_sampling_rate,
        surface_channel, air_channel, software (absent keys are missing).
    params
        params.py as a dict (empty when absent).
    notes
        Remarks for the ingest summary.
    """

    folder: Path
    sample_rate: float
    sample_rate_source: str
    units: pa.Table
    channels: pa.Table
    spike_clusters: np.ndarray
    spike_samples: np.ndarray
    spike_amplitudes: np.ndarray | None
    probe: dict[str, object] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def spike_order(self) -> np.ndarray:
        """Indices that sort the spikes by (cluster, sample): the spikes table's order."""
        return np.lexsort((self.spike_samples, self.spike_clusters))


def unit_ids(probe_index: int, cluster_ids: np.ndarray) -> np.ndarray:
    """Session-unique unit ids: `probe_index * 100_000 + cluster_id`.

    `probe_index` is the probe's position in the session (0 for the first probe in name order,
    e.g. probeA). Cluster ids must be in [0, 100_000), which Kilosort/phy ids are in practice;
    anything else is a DecodeError rather than a collision.

    Examples
    --------
    >>> unit_ids(2, np.array([0, 17])).tolist()
    [200000, 200017]
    """
    ids = np.asarray(cluster_ids, dtype=np.int64)
    if probe_index < 0:
        msg = f"probe_index must be >= 0, got {probe_index}"
        raise ValueError(msg)
    if ids.size and (ids.min() < 0 or ids.max() >= UNIT_ID_STRIDE):
        msg = (
            f"cluster ids must be in [0, {UNIT_ID_STRIDE}) to make unit ids, "
            f"got {ids.min()}..{ids.max()}"
        )
        raise DecodeError(msg, field="cluster_id")
    return probe_index * UNIT_ID_STRIDE + ids


def read_sorting(path: str | Path) -> SortedProbe:
    """Read a Kilosort/phy folder (or a folder above it) into a `SortedProbe`.

    Raises DecodeError naming the folder and `spike_clusters.npy` when cluster ids are missing,
    and naming file and field when arrays disagree in length or a table is malformed.
    """
    root = Path(path)
    folder = find_sorting_folder(root)
    notes: list[str] = []
    samples = _spike_samples(folder / "spike_times.npy")
    clusters_file = folder / "spike_clusters.npy"
    if not clusters_file.exists():
        msg = "spike_clusters.npy is missing: no cluster id per spike"
        raise DecodeError(msg, file=folder, field="spike_clusters.npy")
    clusters = _vector(clusters_file, integer=True).astype(np.int64)
    _same_length(clusters_file, clusters, samples)
    amplitudes = None
    if (folder / "amplitudes.npy").exists():
        amplitudes = _vector(folder / "amplitudes.npy", integer=False).astype(np.float64)
        _same_length(folder / "amplitudes.npy", amplitudes, samples)
    params = read_params(folder / "params.py") if (folder / "params.py").exists() else {}
    info_file = find_up(folder, root, "probe_info.json")
    probe = _probe_info(info_file, folder.name) if info_file else {}
    rate, source = _sample_rate(params, probe, notes)
    return SortedProbe(
        folder=folder,
        sample_rate=rate,
        sample_rate_source=source,
        units=_units(folder, clusters, notes),
        channels=_channels(folder, root, info_file),
        spike_clusters=clusters,
        spike_samples=samples,
        spike_amplitudes=amplitudes,
        probe=probe,
        params=params,
        notes=tuple(notes),
    )


def find_sorting_folder(path: Path) -> Path:
    """The one folder at or below `path` (4 levels deep at most) holding spike_times.npy."""
    path = Path(path)
    if not path.is_dir():
        msg = "no such folder"
        raise DecodeError(msg, file=path)
    if (path / "spike_times.npy").exists():
        return path
    found = [
        p.parent
        for depth in range(1, _SEARCH_DEPTH + 1)
        for p in path.glob("/".join(["*"] * depth) + "/spike_times.npy")
    ]
    if len(found) == 1:
        return found[0]
    if not found:
        msg = "no spike_times.npy in or below this folder"
        raise DecodeError(msg, file=path, field="spike_times.npy")
    names = sorted(str(p.relative_to(path)) for p in found)
    msg = f"several sorting folders {names}; point at one"
    raise DecodeError(msg, file=path, field="spike_times.npy")


def find_up(folder: Path, root: Path, name: str) -> Path | None:
    """`name` in `folder` or a folder above it, up to `root`.

    Where `read_sorting` finds probe_info.json and ccf_regions.csv (beside the Kilosort files or
    in the probe folder above them); the rig layout lists its inputs the same way.
    """
    current = folder
    while True:
        if (current / name).exists():
            return current / name
        if current == root or current.parent == current or root not in current.parents:
            return None
        current = current.parent


def read_params(file: Path) -> dict[str, object]:
    """Kilosort's params.py as a dict, read as text (`key = value`, values via literal_eval).

    A value that is not a Python literal is kept as its text. The file is never executed.

    Examples
    --------
    >>> read_params(Path("params.py"))  # doctest: +SKIP
    {'dat_path': 'continuous.dat', 'n_channels_dat': 384, 'dtype': 'int16', 'offset': 0,
     'sample_rate': 30000.0, 'hp_filtered': False}
    """
    text = Path(file).read_text(errors="replace")
    if len(text) > MAX_PARAMS_CHARS:
        msg = f"{len(text)} characters; Kilosort's params.py is a few lines"
        raise DecodeError(msg, file=file)
    out: dict[str, object] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        key, value = key.strip(), value.strip()
        if not key.isidentifier():
            continue
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out[key] = value
    return out


# --- spikes ----------------------------------------------------------------------------------


def _vector(file: Path, *, integer: bool) -> np.ndarray:
    array = load_npy(file)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        msg = f"expected shape (N,) or (N, 1), got {array.shape}"
        raise DecodeError(msg, file=file, field="shape")
    kinds = "iu" if integer else "iuf"
    if array.dtype.kind not in kinds:
        msg = f"unexpected dtype {array.dtype}"
        raise DecodeError(msg, file=file, field="dtype")
    return array


def _spike_samples(file: Path) -> np.ndarray:
    if not file.exists():
        msg = "missing"
        raise DecodeError(msg, file=file)
    array = _vector(file, integer=False)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            msg = "float spike times that are not whole sample indices"
            raise DecodeError(msg, file=file, field="dtype")
    elif array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        msg = "sample index too large for int64"
        raise DecodeError(msg, file=file, field="values")
    samples = array.astype(np.int64)
    if samples.size and samples.min() < 0:
        at = int(np.argmax(samples < 0))
        msg = (
            f"sample index {samples[at]} (spike {at}) is negative: Kilosort counts samples "
            "from 0 at the recording's start, so the file is damaged; re-export the sorting"
        )
        raise DecodeError(msg, file=file, field="values")
    return samples


def _same_length(file: Path, array: np.ndarray, samples: np.ndarray) -> None:
    if len(array) != len(samples):
        msg = f"{len(array)} values for {len(samples)} spikes in spike_times.npy"
        raise DecodeError(msg, file=file, field="length")


def _sample_rate(params: dict, probe: dict, notes: list[str]) -> tuple[float, str]:
    rate = params.get("sample_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
        return float(rate), "params.py"
    rate = probe.get("sampling_rate")
    if isinstance(rate, float) and rate > 0:
        return rate, "probe_info.json"
    notes.append(
        f"no sample rate in params.py or probe_info.json: assumed {DEFAULT_SAMPLE_RATE:g} Hz"
    )
    return DEFAULT_SAMPLE_RATE, "default"


# --- units -----------------------------------------------------------------------------------


def _units(folder: Path, clusters: np.ndarray, notes: list[str]) -> pa.Table:
    sources = _cluster_tables(folder)
    ids = np.unique(np.concatenate([clusters, *(ids for ids, _, _ in sources)]))
    present, counts = np.unique(clusters, return_counts=True)
    spike_count = np.zeros(len(ids), dtype=np.int64)
    spike_count[np.searchsorted(ids, present)] = counts
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "cluster_id": pa.array(ids),
        "quality": pa.nulls(len(ids), pa.string()),
        "peak_channel": pa.nulls(len(ids), pa.int64()),
        "spike_count": pa.array(spike_count),
    }
    quality_from = None
    for src_ids, table, file in sources:
        take = np.full(len(ids), -1, dtype=np.int64)
        take[np.searchsorted(ids, src_ids)] = np.arange(len(src_ids))
        idx = pa.array(take, mask=take < 0)
        for name in table.column_names:
            values = table.column(name).take(idx)
            if name in _QUALITY_SOURCES.get(file.suffix, ()) and quality_from is None:
                columns["quality"] = _cast(values, pa.string(), file, name)
                quality_from = name
                _note_unlabelled(file, src_ids, present, counts, notes)
                continue
            if name in ("peak_chan", "peak_channel") and file.name == "metrics.csv":
                columns["peak_channel"] = _cast(values, pa.int64(), file, name)
                if name == "peak_channel":
                    continue
            # a name another file (or a declared column) took is kept as <name>_<file stem>
            columns[name if name not in columns else f"{name}_{file.stem}"] = values
    return pa.table(columns)


def _note_unlabelled(
    file: Path, labelled: np.ndarray, present: np.ndarray, counts: np.ndarray, notes: list[str]
) -> None:
    """Note clusters that have spikes but no row in the file that gives the quality.

    phy leaves a cluster out of cluster_group.tsv until it is labelled, so such units are kept
    (quality null); a damaged spike_clusters.npy shows here too, as clusters nobody listed.
    """
    missing = ~np.isin(present, labelled)
    if not missing.any():
        return
    ids = present[missing]
    shown = ", ".join(str(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
    n_spikes = int(counts[missing].sum())
    notes.append(
        f"{file.name} has no row for {len(ids)} cluster{'s' if len(ids) > 1 else ''} with "
        f"spikes ({shown}; {n_spikes:,} spike{'s' if n_spikes > 1 else ''}): kept, quality null"
    )


def _cluster_tables(folder: Path) -> list[tuple[np.ndarray, pa.Table, Path]]:
    """(cluster ids, other columns, file) of the cluster_*.tsv files, then metrics.csv.

    cluster_group.tsv (phy curation) comes first, so its `group` is the quality; then
    cluster_KSLabel.tsv and the other tsv files; metrics.csv last.
    """
    out = []
    tsvs = sorted(
        folder.glob("cluster_*.tsv"),
        key=lambda p: (p.name != "cluster_group.tsv", p.name != "cluster_KSLabel.tsv", p.name),
    )
    for file in tsvs:
        if file.name == "cluster_info.tsv":
            continue
        out.append(_keyed_table(file, _read_csv(file, "\t"), ("cluster_id", "id")))
    metrics = folder / "metrics.csv"
    if metrics.exists():
        ids, table, file = _keyed_table(
            metrics, _read_csv(metrics, ","), ("cluster_id", "cluster_ids")
        )
        out.append((ids, _metrics_as_floats(file, table), file))
    return out


#: A cell pyarrow's CSV reader would read as a float (or a missing value).
_NUMBER = r"^\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(nan|NaN|inf|Inf)|)\s*$"


def _metrics_as_floats(file: Path, table: pa.Table) -> pa.Table:
    """metrics.csv columns with integer values as float64, but the peak channel.

    A text column whose cells are mostly numbers holds a typo (or a damaged byte): refused,
    naming the column, the row and the cell, rather than stored as text in one session (which
    would then clash with every other session's float column).
    """
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if pa.types.is_string(column.type) and column.null_count < len(column):
            numeric = (
                pc.match_substring_regex(column, _NUMBER)
                .fill_null(True)
                .to_numpy(zero_copy_only=False)
            )
            if 0 < int((~numeric).sum()) < int(numeric.sum()):
                row = int(np.argmin(numeric))
                msg = (
                    f"{column[row].as_py()!r} in row {row + 1} is not a number, unlike the "
                    "column's other values: fix the cell (leave it empty when unknown)"
                )
                raise DecodeError(msg, file=file, field=name)
    for i, name in enumerate(table.column_names):
        if name not in ("peak_chan", "peak_channel") and pa.types.is_integer(table.schema[i].type):
            table = table.set_column(i, name, table.column(i).cast(pa.float64()))
    return table


def _keyed_table(
    file: Path, table: pa.Table, keys: tuple[str, ...]
) -> tuple[np.ndarray, pa.Table, Path]:
    unnamed = [c for c in table.column_names if c == "" or c.startswith("Unnamed")]
    key = next((k for k in keys if k in table.column_names), None)
    if key is None and unnamed:
        key = unnamed[0]
    if key is None:
        msg = f"no cluster id column (looked for {list(keys)} or an unnamed index)"
        raise DecodeError(msg, file=file, field="cluster_id")
    column = table.column(key)
    if not pa.types.is_integer(column.type) or column.null_count:
        msg = f"cluster ids must be integers, got {column.type}"
        raise DecodeError(msg, file=file, field=key)
    ids = column.to_numpy().astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        msg = "repeated cluster ids"
        raise DecodeError(msg, file=file, field=key)
    keep = [c for c in table.column_names if c != key and c not in unnamed]
    order = np.argsort(ids, kind="stable")
    return ids[order], table.select(keep).take(pa.array(order)), file


def _read_csv(file: Path, delimiter: str) -> pa.Table:
    try:
        table = pacsv.read_csv(file, parse_options=pacsv.ParseOptions(delimiter=delimiter))
        table.column_names  # noqa: B018 (names are decoded lazily: undecodable ones raise here)
    except (pa.ArrowInvalid, OSError) as exc:
        msg = f"not a readable table: {exc}"
        raise DecodeError(msg, file=file) from None
    except UnicodeDecodeError as exc:
        msg = f"a column name is not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise DecodeError(msg, file=file, field="header") from None
    undecodable = [f.name for f in table.schema if pa.types.is_binary(f.type)]
    if undecodable:  # pyarrow reads a column holding bytes that are not UTF-8 as binary
        msg = "holds bytes that are not UTF-8 text (a damaged file?); fix or re-export it"
        raise DecodeError(msg, file=file, field=undecodable[0])
    return table


def _cast(values: pa.Array | pa.ChunkedArray, kind: pa.DataType, file: Path, name: str):
    """`values` as `kind`; a DecodeError naming file and column when a cell does not fit."""
    try:
        return values.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        msg = f"cannot be read as {kind}: {exc}"
        raise DecodeError(msg, file=file, field=name) from None


# --- channels --------------------------------------------------------------------------------


def _channels(folder: Path, root: Path, info_file: Path | None) -> pa.Table:
    channel_map = None
    map_file = folder / "channel_map.npy"
    if map_file.exists():
        channel_map = _vector(map_file, integer=True).astype(np.int64)
    positions = None
    pos_file = folder / "channel_positions.npy"
    if pos_file.exists():
        positions = load_npy(pos_file)
        if positions.ndim != 2 or positions.shape[1] < 2 or positions.dtype.kind not in "iuf":
            msg = f"expected shape (n, 2), got {positions.shape}"
            raise DecodeError(msg, file=pos_file, field="shape")
        if channel_map is not None and len(positions) != len(channel_map):
            msg = f"{len(positions)} positions for {len(channel_map)} channels in channel_map.npy"
            raise DecodeError(msg, file=pos_file, field="rows")
    ccf_file = find_up(folder, root, "ccf_regions.csv")
    info = _load_json(info_file) if info_file else {}
    if ccf_file is not None:
        columns = _ccf_columns(ccf_file)
    elif isinstance(info, dict) and isinstance(info.get("channel"), list):
        columns = _probe_info_channels(info_file, info)
    elif channel_map is not None:
        columns = {"channel": pa.array(channel_map)}
    else:
        return pa.table({"channel": pa.array([], pa.int64())})
    channel = columns["channel"].to_numpy()
    if positions is not None and channel_map is not None:
        _fill_positions(columns, channel, channel_map, positions)
    if channel_map is not None:
        columns["used_for_sorting"] = pa.array(np.isin(channel, channel_map))
    return pa.table(columns)


def _ccf_columns(file: Path) -> dict[str, pa.Array]:
    table = _read_csv(file, ",")
    names = table.column_names
    key = (
        "channel"
        if "channel" in names
        else next((c for c in names if c == "" or c.startswith("Unnamed")), None)
    )
    if key is None:
        msg = "no channel column (looked for 'channel' or an unnamed index)"
        raise DecodeError(msg, file=file, field="channel")
    out: dict[str, pa.Array] = {"channel": _cast(table.column(key), pa.int64(), file, key)}
    renames = {
        "horizontal_position": "probe_horizontal_position",
        "vertical_position": "probe_vertical_position",
        "A/P": "ccf_ap",
        "D/V": "ccf_dv",
        "M/L": "ccf_ml",
        "is_valid": "valid",
    }
    for name in names:
        if name == key:
            continue
        column = table.column(name)
        if name == "region":
            text = _cast(column, pa.string(), file, name)
            unknown = pc.is_in(pc.utf8_lower(text), pa.array(["none", ""]))
            out["structure_acronym"] = pc.if_else(unknown, None, text)
        elif name == "structure_id":
            ids = _cast(column, pa.int64(), file, name)
            out["structure_id"] = pc.if_else(pc.greater(ids, 0), ids, None)
        elif name in ("A/P", "D/V", "M/L", "cortical_depth"):
            values = _cast(column, pa.float64(), file, name)
            known = pc.not_equal(values, _CCF_UNKNOWN)
            out[renames.get(name, name)] = pc.if_else(known, values, None)
        elif name in ("horizontal_position", "vertical_position"):
            out[renames[name]] = _cast(column, pa.float64(), file, name)
        elif name in renames:
            out[renames[name]] = column
        else:
            out[name] = column
    return out


def _probe_info_channels(file: Path, info: dict) -> dict[str, pa.Array]:
    channel = np.asarray(info["channel"], dtype=np.int64)
    out: dict[str, pa.Array] = {"channel": pa.array(channel)}
    for src, dst in (
        ("horizontal_pos", "probe_horizontal_position"),
        ("vertical_pos", "probe_vertical_position"),
        ("mask", "valid"),
    ):
        values = info.get(src)
        if isinstance(values, list):
            if len(values) != len(channel):
                msg = f"{len(values)} values for {len(channel)} channels"
                raise DecodeError(msg, file=file, field=src)
            out[dst] = pa.array(values, type=pa.bool_() if src == "mask" else pa.float64())
    return out


def _fill_positions(
    columns: dict, channel: np.ndarray, channel_map: np.ndarray, positions: np.ndarray
) -> None:
    """Positions from channel_positions.npy where the per-channel table has none."""
    order = np.argsort(channel_map, kind="stable")
    at = np.minimum(np.searchsorted(channel_map[order], channel), len(order) - 1)
    found = channel_map[order][at] == channel
    pos = np.full((len(channel), 2), np.nan)
    pos[found] = positions[order[at[found]], :2]
    for k, name in enumerate(("probe_horizontal_position", "probe_vertical_position")):
        fallback = pa.array(pos[:, k], mask=~found)
        given = columns.get(name)
        columns[name] = fallback if given is None else pc.coalesce(given, fallback)


# --- probe_info.json -------------------------------------------------------------------------


def _probe_info(file: Path, stream: str) -> dict[str, object]:
    info = _load_json(file)
    out: dict[str, object] = {}
    if not isinstance(info, dict):
        return out
    probe = info.get("probe") if isinstance(info.get("probe"), dict) else {}
    software = info.get("software") if isinstance(info.get("software"), dict) else {}
    if probe.get("serial number") is not None:
        out["serial_number"] = str(probe["serial number"])
    if probe.get("phase") is not None:
        out["model"] = str(probe["phase"])
    for sub in probe.get("subprocessors", []) or []:
        if not isinstance(sub, dict) or "sample_rate" not in sub:
            continue
        kind = str(sub.get("type", "")).lower()
        if sub.get("name") == stream or kind.startswith("ap"):
            out.setdefault("sampling_rate", float(sub["sample_rate"]))
        elif kind.startswith("lfp"):
            out.setdefault("lfp_sampling_rate", float(sub["sample_rate"]))
    for key in ("surface_channel", "air_channel"):
        value = info.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = int(value)
    if software:
        out["software"] = " ".join(str(software[k]) for k in ("name", "version") if k in software)
    return out


def _load_json(file: Path) -> object:
    try:
        return json.loads(Path(file).read_text())
    except (OSError, ValueError) as exc:
        msg = f"not readable JSON: {exc}"
        raise DecodeError(msg, file=file) from None
