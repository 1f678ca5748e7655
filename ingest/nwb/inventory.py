"""What an NWB file carries that the lake does not copy: the `inventory` table and its note.

Every reader claims the datasets whose contents reach the lake (`NWBContext.claim`); once the
session is decoded, the file's datasets are walked and every unclaimed one becomes an
inventory row (path, type, shape, bytes, reason), so nothing disappears without a trace.
`sessions.notes` summarises the inventory. Not walked: `/specifications` (the cached NWB
schema, which a writer regenerates) and nplake's own `/processing/nplake` module.
"""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow as pa

from ingest._hdf5 import as_text
from ingest.nwb.tables import NWBContext, column_layout

#: Groups whose datasets are not session data.
NOT_WALKED = ("/specifications", "/processing/nplake")
#: Units columns other readers consume without `read_table` (spikes, waveforms, links).
UNITS_SPECIAL = (
    "spike_times",
    "spike_times_index",
    "spike_amplitudes",
    "spike_amplitudes_index",
    "waveform_mean",
    "waveform_sd",
    "electrodes",
    "electrodes_index",
    "electrode_group",
)
_DEFAULT_REASON = "no lake table holds it"
_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("neurodata_type", pa.string()),
        ("dtype", pa.string()),
        ("shape", pa.list_(pa.int64())),
        ("bytes", pa.int64()),
        ("reason", pa.string()),
    ]
)


def claim_special(ctx: NWBContext, tables: dict) -> None:
    """Claim the units and electrodes datasets the lake holds in derived form.

    Spike times (and amplitudes) are the spikes table; waveforms the waveforms table; the
    units' electrode links and electrode groups are the units' probe and peak channel; the
    electrodes' group references and names are the channels' probe.
    """
    units = ctx.fh.get("units")
    if isinstance(units, h5py.Group):
        present = {
            "spike_times": "units" in tables,
            "spike_amplitudes": "spikes" in tables,
            "waveform_mean": "waveforms" in tables,
            "waveform_sd": "waveforms" in tables,
            "electrodes": "channels" in tables,
            "electrode_group": "units" in tables,
        }
        for name, kept in present.items():
            if kept:
                ctx.claim(units.get(name), units.get(f"{name}_index"))
            ds = units.get(name)
            if kept and isinstance(ds, h5py.Dataset):
                text = as_text(ds.attrs.get("description"))
                ctx.describe(units.name, name, text, column_layout(units, name))
    electrodes = ctx.fh.get("general/extracellular_ephys/electrodes")
    if isinstance(electrodes, h5py.Group) and "channels" in tables:
        ctx.claim(electrodes.get("group"), electrodes.get("group_name"))


def inventory_table(ctx: NWBContext) -> pa.Table | None:
    """One row per dataset of the file the lake does not hold (None when there is none)."""
    rows: list[dict] = []

    def visit(name: str, obj: h5py.HLObject) -> None:
        path = f"/{name}"
        if not isinstance(obj, h5py.Dataset) or path.startswith(NOT_WALKED):
            return
        if hash(obj.id) in ctx.claimed:
            return
        rows.append(
            {
                "path": path,
                "neurodata_type": _owner_type(obj),
                "dtype": str(obj.dtype),
                "shape": list(obj.shape),
                "bytes": int(obj.id.get_storage_size()),
                "reason": ctx.skipped.get(hash(obj.id), _DEFAULT_REASON),
            }
        )

    with ctx.reading("inventory"):
        ctx.fh.visititems(visit)
    if not rows:
        return None
    return pa.Table.from_pylist(rows, schema=_SCHEMA)


def inventory_note(table: pa.Table | None) -> str | None:
    """A one-line summary of the inventory for `sessions.notes` (None when empty)."""
    if table is None or not table.num_rows:
        return None
    paths = table.column("path").to_pylist()
    total = int(np.sum(table.column("bytes").to_numpy()))
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return (
        f"inventory: {len(paths)} dataset(s) of the file ({total:,} bytes) are not in the "
        f"lake (table inventory says why): {shown}"
    )


def _owner_type(ds: h5py.Dataset) -> str | None:
    """The dataset's own neurodata_type, else that of the nearest group holding one."""
    kind = as_text(ds.attrs.get("neurodata_type"))
    node = ds.parent
    while kind is None and node.name != "/":
        kind = as_text(node.attrs.get("neurodata_type"))
        node = node.parent
    return kind
