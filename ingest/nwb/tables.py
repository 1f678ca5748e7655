"""Generic NWB (hdmf) DynamicTable reading with h5py: columns, ragged columns, text, references.

A DynamicTable is a group with an `id` dataset and one dataset per column (VectorData); a ragged
column has `<name>_index` (END offsets), a doubly ragged one also `<name>_index_index`. Columns
are listed in the `colnames` attribute, but real files carry columns that `colnames` misses
(e.g. `response_time` in a DANDI 000207 interval table), so every VectorData dataset of the
group is read. Column descriptions travel as Arrow field metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa

from ingest._flatten import index_ends
from ingest._hdf5 import as_text, text_array
from schemas import DecodeError
from schemas.ids import sanitize_column_name

#: Datasets of a DynamicTable group that are not columns.
_NOT_COLUMNS = ("VectorIndex", "ElementIdentifiers")


@dataclass
class NWBContext:
    """An open NWB file being decoded: the handle, its path and the notes gathered so far."""

    fh: h5py.File
    path: Path
    session_id: str = ""
    notes: list[str] = field(default_factory=list)
    #: HDF5 objects whose contents reached the lake (`claim`); the rest go to the inventory.
    claimed: set[int] = field(default_factory=set)
    #: Why objects were left out of the lake (`skip`), by HDF5 identity.
    skipped: dict[int, str] = field(default_factory=dict)
    #: Series path -> the lake table a reader decoded it into (licks, rewards, running_speed).
    used_by: dict[str, str] = field(default_factory=dict)
    #: (path, column, description, index levels) of every table column read (`describe`).
    described: dict[tuple[str, str], tuple[str | None, int | None]] = field(default_factory=dict)

    def claim(self, *objects: h5py.HLObject | None) -> None:
        """Record that these datasets (or every dataset inside these groups) are in the lake.

        Objects are keyed by HDF5 identity, so a dataset reached through a soft link counts
        under every name it has.
        """
        for obj in objects:
            if isinstance(obj, h5py.Dataset):
                self.claimed.add(hash(obj.id))
            elif isinstance(obj, h5py.Group):
                obj.visititems(lambda _n, o: self.claim(o) if isinstance(o, h5py.Dataset) else None)

    def skip(self, obj: h5py.HLObject | None, reason: str) -> None:
        """Say why a dataset (or every dataset of a group) is not copied (inventory reason)."""
        if isinstance(obj, h5py.Dataset):
            self.skipped.setdefault(hash(obj.id), reason)
        elif isinstance(obj, h5py.Group):
            obj.visititems(
                lambda _n, o: self.skip(o, reason) if isinstance(o, h5py.Dataset) else None
            )

    def claim_path(self, path: str) -> None:
        """`claim` the object at `path` when the file has it."""
        obj = self.fh.get(path)
        if obj is not None:
            self.claim(obj)

    def describe(self, path: str, column: str, description: str | None, ragged: int | None):
        """Record the source's description (and layout) of a table column ('': the table)."""
        self.described.setdefault((path, column), (description, ragged))

    def note(self, message: str) -> None:
        """Record a remark for `sessions.notes` (a quirk handled, something skipped)."""
        if message not in self.notes:
            self.notes.append(message)

    def error(self, message: str, field: str) -> DecodeError:
        """A DecodeError naming this file, `field` and (once known) the session."""
        return DecodeError(message, file=self.path, field=field, session_id=self.session_id or None)

    @contextmanager
    def reading(self, field: str) -> Iterator[None]:
        """Turn h5py read failures inside the block into a DecodeError naming `field`."""
        try:
            yield
        except (OSError, KeyError, RuntimeError, UnicodeError) as exc:
            msg = f"cannot read (truncated or damaged file?): {exc}"
            raise self.error(msg, field) from None


@dataclass(frozen=True)
class NwbTable:
    """The rows of one DynamicTable: ids and every readable column as Arrow."""

    ids: np.ndarray
    table: pa.Table


def row_ids(ctx: NWBContext, dataset: h5py.Dataset, field: str) -> np.ndarray:
    """A DynamicTable's `id` column as int64; DecodeError unless every id is a whole number."""
    if not isinstance(dataset, h5py.Dataset):
        msg = "is a group, not a dataset of ids"
        raise ctx.error(msg, field)
    values = np.asarray(dataset[()]).ravel()
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    whole = values.dtype.kind == "f" and bool(np.all(np.isfinite(values) & (values % 1 == 0)))
    if not whole:
        msg = f"ids must be whole numbers; this file has {values.dtype} values such as {values[:3]}"
        raise ctx.error(msg, field)
    return values.astype(np.int64)


def column_names(group: h5py.Group) -> list[str]:
    """Columns of a DynamicTable: `colnames` first (bytes or text), then unlisted VectorData."""
    raw = group.attrs.get("colnames", [])
    declared = [as_text(c) for c in np.atleast_1d(raw)]
    names = list(dict.fromkeys(c for c in declared if c))
    for name in group:
        if name in names or name == "id":
            continue
        obj = group.get(name)
        kind = as_text(obj.attrs.get("neurodata_type")) if isinstance(obj, h5py.Dataset) else None
        if kind and kind not in _NOT_COLUMNS:
            names.append(name)
    return names


def read_table(
    ctx: NWBContext, group: h5py.Group, *, skip: Iterable[str] = (), label: str | None = None
) -> NwbTable:
    """Read a DynamicTable group: ids plus every column not in `skip`.

    Columns that cannot be stored (object references, compound or scalar datasets, wrong
    length) are dropped with a note; a bad `*_index` is a DecodeError.
    """
    label = label or group.name.lstrip("/")
    table_description = as_text(group.attrs.get("description"))
    if table_description is not None:
        ctx.describe(group.name, "", table_description, None)
    with ctx.reading(f"{label}/id"):
        if "id" in group:
            ids = row_ids(ctx, group["id"], f"{label}/id")
        else:
            ids = np.arange(_guess_rows(group), dtype=np.int64)
            ctx.note(f"{label} has no id column; ids are row numbers")
    skipped = set(skip)
    arrays, fields = [], []
    for name in column_names(group):
        if name in skipped:
            continue
        if name not in group:
            ctx.note(f"{label}: column {name!r} is listed in colnames but absent")
            continue
        if not isinstance(group[name], h5py.Dataset):
            ctx.note(f"{label}: column {name!r} is a group, not a dataset; dropped")
            continue
        with ctx.reading(f"{label}/{name}"):
            array = read_column(ctx, group, name, len(ids), label=label)
        if array is None:
            continue
        _claim_column(ctx, group, name)
        description = as_text(group[name].attrs.get("description")) or ""
        ctx.describe(group.name, name, description, column_layout(group, name))
        arrays.append(array)
        fields.append(pa.field(name, array.type, metadata={"description": description}))
    ctx.claim(group.get("id"))
    return NwbTable(ids=ids, table=_table(arrays, fields, len(ids)))


def _claim_column(ctx: NWBContext, group: h5py.Group, name: str) -> None:
    """Claim a column read into the lake: its data and every index level."""
    ctx.claim(group.get(name))
    index = f"{name}_index"
    while _is_index(group.get(index)):
        ctx.claim(group[index])
        index = f"{index}_index"


def column_layout(group: h5py.Group, name: str) -> int:
    """Index levels of a column: 0 scalar, 1 ragged (`_index`), 2 doubly ragged."""
    levels, index = 0, f"{name}_index"
    while _is_index(group.get(index)):
        levels, index = levels + 1, f"{index}_index"
    return levels


def _table(arrays: list[pa.Array], fields: list[pa.Field], n_rows: int) -> pa.Table:
    """A table of `arrays`; with no columns, still `n_rows` rows long."""
    if arrays:
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return pa.table({"rows": pa.nulls(n_rows)}).drop_columns(["rows"])


def _guess_rows(group: h5py.Group) -> int:
    for name in column_names(group):
        obj = group.get(name)
        if isinstance(obj, h5py.Dataset) and f"{name}_index" not in group and obj.shape:
            return obj.shape[0]
    return 0


def read_column(
    ctx: NWBContext, group: h5py.Group, name: str, n_rows: int, *, label: str
) -> pa.Array | None:
    """One column as an Arrow array (ragged levels as lists), or None when it is dropped."""
    ds = group[name]
    values = dataset_values(ds)
    if values is None:
        ctx.note(
            f"{label}: column {name!r} ({ds.dtype}, shape {ds.shape}) cannot be stored "
            "(object references, records or a scalar); dropped"
        )
        return None
    levels = []
    index_name = f"{name}_index"
    while _is_index(group.get(index_name)):
        levels.append(index_name)
        index_name = f"{index_name}_index"
    for depth, level in enumerate(levels):
        outermost = depth == len(levels) - 1
        ends = index_ends(
            group[level][()],
            len(values),
            n_rows if outermost else None,
            file=ctx.path,
            field=f"{label}/{level}",
        )
        offsets = pa.array(np.concatenate([[0], ends]), type=pa.int64())
        values = pa.LargeListArray.from_arrays(offsets, values).cast(pa.list_(values.type))
    if len(values) != n_rows:
        ctx.note(f"{label}: column {name!r} has {len(values)} rows, the table {n_rows}; dropped")
        return None
    return values


def _is_index(obj: object) -> bool:
    """Whether `obj` is a VectorIndex dataset (a column may legitimately end in `_index`)."""
    if not isinstance(obj, h5py.Dataset):
        return False
    kind = as_text(obj.attrs.get("neurodata_type"))
    return kind == "VectorIndex" or (kind is None and "target" in obj.attrs)


def dataset_values(ds: h5py.Dataset) -> pa.Array | None:
    """A dataset's values as Arrow: first axis = rows, further axes as fixed-size lists.

    Text is decoded as UTF-8 (latin-1 fallback) whatever the declared encoding. Returns None
    for object references, compound records, scalars and other non-numeric types.
    """
    dtype = ds.dtype
    if ds.ndim == 0 or dtype.names is not None or h5py.check_dtype(ref=dtype) is not None:
        return None
    if h5py.check_string_dtype(dtype) is not None or dtype.kind in "SU":
        flat = pa.array(_text_values(ds), type=pa.string())
    elif dtype.kind not in "biuf":
        return None
    else:
        data = np.asarray(ds[()])
        if data.dtype.kind == "f" and data.dtype.itemsize < 4:
            data = data.astype(np.float32)
        flat = pa.array(data.reshape(-1))
    if ds.ndim == 1:
        return flat
    width = int(np.prod(ds.shape[1:]))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _text_values(ds: h5py.Dataset) -> list[str | None]:
    try:
        return ds.asstr(encoding="utf-8")[()].reshape(-1).tolist()
    except UnicodeDecodeError:
        return text_array(ds[()])


def reference_names(ctx: NWBContext, refs: h5py.Dataset) -> list[str | None]:
    """Names (last path part) of the objects a reference dataset points to; None if unresolvable.

    A column of references usually names a few objects (electrode groups) thousands of times,
    and h5py references compare by identity: the raw reference bytes are deduplicated first,
    so each distinct object is resolved once.
    """
    values = refs[()]
    flat = values.ravel()
    try:
        size = refs.id.get_type().get_size()
        raw = np.empty(refs.shape, dtype=np.dtype(f"V{size}"))
        refs.id.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=refs.id.get_type())
        _, first, inverse = np.unique(raw.ravel(), return_index=True, return_inverse=True)
    except (TypeError, ValueError, OSError):  # an unusual reference type: resolve one by one
        first, inverse = np.arange(len(flat)), np.arange(len(flat))
    resolved = np.array([_resolve_name(ctx, flat[i]) for i in first], dtype=object)
    return resolved[inverse.ravel()].tolist() if len(flat) else []


def _resolve_name(ctx: NWBContext, ref: h5py.Reference) -> str | None:
    try:
        target = ctx.fh[ref] if ref else None
    except (KeyError, ValueError, OSError):
        target = None
    return object_name(target)


def object_name(obj: h5py.HLObject | None) -> str | None:
    """Last part of an HDF5 object's path (None for no object or an anonymous one)."""
    path = as_text(obj.name) if obj is not None else None  # a damaged name comes as bytes
    return path.rsplit("/", 1)[-1] if path else None


def set_column(table: pa.Table, name: str, values: pa.Array, description: str = "") -> pa.Table:
    """`table` with column `name` set to `values` (replaced in place or appended)."""
    field_ = pa.field(name, values.type, metadata={"description": description})
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), field_, values)
    return table.append_column(field_, values)


def rename_columns(table: pa.Table, mapping: dict[str, str]) -> pa.Table:
    """Rename source columns to lake names, unless the lake name is already taken."""
    names = list(table.column_names)
    for source, target in mapping.items():
        if source in names and target not in names:
            names[names.index(source)] = target
    return table.rename_columns(names)


def move_reserved(ctx: NWBContext, table: pa.Table, reserved: Iterable[str], label: str):
    """Rename source columns that would clash with columns the decoder derives (`x_source`)."""
    taken = {r.lower() for r in reserved}
    names = list(table.column_names)
    for i, name in enumerate(names):
        if sanitize_column_name(name).lower() in taken:
            names[i] = f"{name}_source"
            ctx.note(f"{label}: source column {name!r} kept as {names[i]!r}")
    return table.rename_columns(names)


def descriptions_table(ctx: NWBContext, skip: tuple[str, ...] = ()) -> pa.Table | None:
    """The `descriptions` rows: the source's description and layout of each column read.

    Paths under `skip` (nplake's own module) are left out.
    """
    rows = [
        {"path": path, "column": column, "description": text, "ragged": ragged}
        for (path, column), (text, ragged) in ctx.described.items()
        if not path.startswith(skip)
    ]
    if not rows:
        return None
    schema = pa.schema(
        [
            ("path", pa.string()),
            ("column", pa.string()),
            ("description", pa.string()),
            ("ragged", pa.int64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)
