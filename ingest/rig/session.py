"""The raw rig session decoder: one session folder -> one validated SessionBundle.

Pieces are found by name (`_layout.py`, docs/rig.md); then:

1. the sync file is decoded ONCE (`sync.decode_sync`: every edge of every line, 8 bytes an
   edge) and kept as the `sync_edges` table, a stream whose columns are made batch by batch as
   the lake writes it; frame times are the falling edges of `vsync_stim` (FORMATS.md 2.4: a
   frame's time is its vsync falling edge), barcodes are decoded from `barcode_ephys` with the
   recording's end (`total_samples`) as the end time, licks are the rising edges of
   `lick_sensor`;
2. each probe folder is read (`sorting.read_sorting`), its TTL barcodes decoded, its clock fitted
   (`align.fit_clock`) and audited (`clock_alignment`); spikes are streamed probe by probe on
   the master clock (`align.apply`), sorted by (unit_id, time);
3. behaviour comes from the TaskControl file, else from a camstim pickle the user named
   (`DecodeOptions.pickles`; a pickle found but not named is never opened, a note says how to
   allow it); licks prefer the sync `lick_sensor` rising edges when the line has any and the
   behaviour is on the sync clock;
4. the sessions row comes from session.json, the folder name and the files (`_metadata.py`).

Policies: a probe that cannot be aligned (no TTL events, no matching barcodes, no sync file) is
kept on its own clock: `probes.clock_status = 'unaligned'`, the reason in `clock_note`, and a
note in the bundle (the ingest summary prints it). Without a sync file, behaviour times are on
the behaviour file's own clock (cumulative frame intervals from its first frame) and every probe
is unaligned; notes say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from ingest.base import DecodeOptions
from ingest.rig import _layout
from ingest.rig._metadata import SessionInfo, read_session_json, session_fields
from ingest.rig._probes import DEFAULT_BATCH_SPIKES, ProbeResult, SyncClock, read_probe
from ingest.rig._probes import spikes_source as probe_spikes
from ingest.rig.barcodes import Barcodes, decode_barcodes
from ingest.rig.camstim import decode_camstim
from ingest.rig.sorting import find_sorting_folder
from ingest.rig.sync import DEFAULT_CHUNK_ROWS, SyncFile, decode_sync, line_edges, read_sync
from ingest.rig.task import SYNC_LICK_SOURCE, BehaviourTables, decode_task, licks_table
from schemas import (
    LAKE_FILLED,
    DecodeError,
    SessionBundle,
    is_valid_session_id,
    rows_table,
)
from schemas.bundle import TableData

FRAME_LINES = ("vsync_stim", "stim_vsync")
BARCODE_LINES = ("barcode_ephys", "barcode", "barcodes")
LICK_LINES = ("lick_sensor",)
#: The sync period assumed when a session has no sync file (only used in audit limits).
_DEFAULT_SYNC_PERIOD = 1e-5


class RigDecoder:
    """Decode raw rig session folders: sync file, sorted probes, TaskControl / camstim behaviour.

    Parameters
    ----------
    frame_lines, barcode_lines, lick_lines
        Sync line labels tried in order for display frames (falling edges), the barcode signal
        and the lick sensor (rising edges).
    ttl_line
        The probes' Open Ephys TTL line carrying the barcodes (Allen rigs: 1).
    batch_spikes
        Spikes per record batch of the spikes stream (bounds memory).
    sync_chunk_rows
        Sync rows each decoding thread reads per chunk (bounds the memory for rows).

    Examples
    --------
    >>> bundle = RigDecoder().decode(Path("668755_2023-08-31"), DecodeOptions())  # doctest: +SKIP
    """

    name = "rig"
    version = "2"

    def __init__(
        self,
        *,
        frame_lines: tuple[str, ...] = FRAME_LINES,
        barcode_lines: tuple[str, ...] = BARCODE_LINES,
        lick_lines: tuple[str, ...] = LICK_LINES,
        ttl_line: int = 1,
        batch_spikes: int = DEFAULT_BATCH_SPIKES,
        sync_chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        self.frame_lines = frame_lines
        self.barcode_lines = barcode_lines
        self.lick_lines = lick_lines
        self.ttl_line = ttl_line
        self.batch_spikes = batch_spikes
        self.sync_chunk_rows = sync_chunk_rows

    def sniff(self, path: Path) -> bool:
        """Whether `path` is a folder with a sync file, a TaskControl file or a probe folder.

        Looks at names only (no file is opened, no pickle ever loaded).
        """
        return _layout.looks_like_session(Path(path))

    def inputs(self, path: Path, options: DecodeOptions) -> list[Path]:
        """Every file `decode` reads: session.json, sync, behaviour, sorting and TTL files."""
        layout = _layout.find_layout(Path(path))
        files = [f for f in (layout.session_json, layout.sync, layout.task) if f is not None]
        if layout.task is None:
            files += [p for p in layout.pickles if options.allows_pickle(p)]
        for probe in layout.probes:
            files += _layout.sorting_inputs(probe.folder)
            sorting = find_sorting_folder(probe.folder)
            ttl = _layout.choose_ttl_folder(probe.folder, sorting)
            files += _layout.ttl_inputs(ttl) if ttl is not None else []
        return sorted(set(files))

    def decode(self, path: Path, options: DecodeOptions) -> SessionBundle:
        """Decode one session folder into a validated SessionBundle."""
        layout = _layout.find_layout(Path(path))
        info = read_session_json(layout.session_json)
        session_id = _session_id(layout, info, options)
        notes: list[str] = []
        tables: dict[str, TableData] = {}
        sync, clock, frame_times, sync_licks = self._sync(layout, tables, notes)
        behaviour = _behaviour(layout, options, frame_times, sync_licks, notes)
        probes = [
            read_probe(
                probe,
                index,
                layout.folder,
                clock,
                info=info.probes.get(probe.name),
                ttl_line=self.ttl_line,
            )
            for index, probe in enumerate(layout.probes)
        ]
        for probe in probes:
            notes.extend(probe.notes)
        unused = sorted(set(info.probes) - {p.name for p in probes})
        if unused:
            notes.append(f"session.json describes probes {unused} that have no probe folder")
        tables.update(_probe_tables(session_id, probes, self.batch_spikes))
        if behaviour is not None:
            tables.update(
                trials=behaviour.trials,
                licks=behaviour.licks,
                rewards=behaviour.rewards,
                running_speed=behaviour.running_speed,
            )
            notes.extend(behaviour.notes)
        elif sync_licks is not None:
            tables["licks"] = licks_table(sync_licks, SYNC_LICK_SOURCE)
        row = _session_row(layout, info, session_id, sync, behaviour, tables, notes)
        row.update(
            source_kind=self.name,
            source_uri=str(layout.folder.resolve()),
            decoder_version=self.version,
            decoder_options=json.dumps(options.to_json_dict(), sort_keys=True),
        )
        tables["sessions"] = rows_table("sessions", [row])
        return SessionBundle(session_id, tables, notes).validate(source=path)

    def _sync(
        self, layout: _layout.RigLayout, tables: dict[str, TableData], notes: list[str]
    ) -> tuple[SyncFile | None, SyncClock, np.ndarray | None, np.ndarray | None]:
        """Decode the sync file once: edges table, probe clock, frame times, sync licks."""
        empty = Barcodes(np.empty(0), np.empty(0, dtype=np.int64))
        if layout.sync is None:
            notes.append(
                "no sync file: behaviour times are on the behaviour file's own clock and every "
                "probe stays on its own clock (unaligned)"
            )
            missing = "no sync file in the session folder"
            return None, SyncClock(empty, _DEFAULT_SYNC_PERIOD, missing), None, None
        sync = read_sync(layout.sync)
        edges = decode_sync(sync, chunk_rows=self.sync_chunk_rows)
        tables["sync_edges"] = edges  # a BatchSource: streamed when the lake writes it
        frame_line = _line(sync, self.frame_lines)
        frame_times = None
        if frame_line is not None:
            frame_times = line_edges(edges, frame_line, rising=False)
        elif layout.task is not None or layout.pickles:
            notes.append(
                f"{layout.sync.name}: no frame line {list(self.frame_lines)}; behaviour stays "
                "on its own clock"
            )
        barcode_line = _line(sync, self.barcode_lines)
        missing = None
        barcodes = empty
        if barcode_line is None:
            missing = f"the sync file has no barcode line {list(self.barcode_lines)}"
        else:
            barcodes = decode_barcodes(
                line_edges(edges, barcode_line, rising=True),
                line_edges(edges, barcode_line, rising=False),
                end_time=sync.duration,
            )
        lick_line = _line(sync, self.lick_lines)
        licks = line_edges(edges, lick_line, rising=True) if lick_line is not None else None
        if licks is not None and licks.size == 0:
            licks = None
        return sync, SyncClock(barcodes, sync.sample_period, missing), frame_times, licks


def _line(sync: SyncFile, labels: tuple[str, ...]) -> str | None:
    """The first of `labels` that names exactly one line of the sync file."""
    for label in labels:
        if sync.line_labels.count(label) == 1:
            return label
    return None


def _session_id(layout: _layout.RigLayout, info: SessionInfo, options: DecodeOptions) -> str:
    """The user's id, else session.json's, else the folder name."""
    candidate = options.session_id or info.session_id or layout.folder.name
    if not is_valid_session_id(candidate):
        msg = (
            f"{candidate!r} is not a valid session id (1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit); set session_id in session.json or pass one"
        )
        raise DecodeError(msg, file=layout.folder, field="session_id")
    return candidate


def _behaviour(
    layout: _layout.RigLayout,
    options: DecodeOptions,
    frame_times: np.ndarray | None,
    sync_licks: np.ndarray | None,
    notes: list[str],
) -> BehaviourTables | None:
    """Trials, licks, rewards, running from the TaskControl file or a named camstim pickle."""
    named = [p for p in layout.pickles if options.allows_pickle(p)]
    if layout.task is not None:
        if layout.pickles:
            names = [p.name for p in layout.pickles]
            notes.append(f"pickles {names} not used: {layout.task.name} is the behaviour file")
        licks = sync_licks if frame_times is not None else None
        if sync_licks is not None and frame_times is None:
            notes.append("sync lick_sensor edges not used: behaviour is not on the sync clock")
        return decode_task(layout.task, frame_times=frame_times, lick_times_from_sync=licks)
    for pickle in layout.pickles:
        if pickle not in named:
            notes.append(
                f"{pickle.name}: a behaviour pickle found but NOT loaded (loading a pickle can run "
                f"code; nplake loads only pickles you name). If you trust it: nplake ingest ... "
                f"--pickle {pickle}"
            )
    if len(named) > 1:
        msg = f"several behaviour pickles named {[p.name for p in named]}; name one"
        raise DecodeError(msg, file=layout.folder, field="pickles")
    if not named:
        return None
    tables = decode_camstim(named[0], options=options, frame_times=frame_times)
    if sync_licks is None or frame_times is None:
        return tables
    notes.append(
        f"{len(sync_licks)} licks from the sync lick_sensor line used; the pickle's "
        f"{tables.licks.num_rows} lick events were not"
    )
    licks = licks_table(sync_licks, SYNC_LICK_SOURCE)
    return BehaviourTables(
        tables.trials,
        licks,
        tables.rewards,
        tables.running_speed,
        tables.frame_times,
        tables.notes,
        tables.metadata,
    )


def _probe_tables(
    session_id: str, probes: list[ProbeResult], batch_spikes: int
) -> dict[str, TableData]:
    """probes, channels, units, spikes and clock_alignment of all probes."""
    if not probes:
        return {}
    rows = rows_table("probes", [{"session_id": session_id, **p.row} for p in probes])
    return {
        "probes": rows,
        "channels": _concat([p.channels for p in probes], probes, "channels"),
        "units": _concat([p.units for p in probes], probes, "units"),
        "spikes": probe_spikes(probes, batch_spikes),
        "clock_alignment": pa.concat_tables([p.fit.audit for p in probes]),
    }


def _concat(tables: list[pa.Table], probes: list[ProbeResult], what: str) -> pa.Table:
    """Tables of several probes in one (columns a probe lacks are null, numbers widened)."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        folders = [str(p.sorting_folder) for p in probes]
        msg = f"the probes' {what} columns disagree in type ({exc}); folders {folders}"
        raise DecodeError(msg, field=what) from None


def _session_row(
    layout: _layout.RigLayout,
    info: SessionInfo,
    session_id: str,
    sync: SyncFile | None,
    behaviour: BehaviourTables | None,
    tables: dict[str, TableData],
    notes: list[str],
) -> dict:
    """The sessions row: metadata, age, flags and notes (provenance is added by the caller)."""
    from ingest.nwb import age_in_days

    sync_start = sync.meta.get("start_time") if sync is not None else None
    row = {
        "session_id": session_id,
        **session_fields(
            layout.folder,
            info,
            task_file=layout.task,
            behaviour=behaviour.metadata if behaviour is not None else {},
            sync_start=sync_start if isinstance(sync_start, str) else None,
            notes=notes,
        ),
    }
    row["age_in_days"] = age_in_days(row["age"], row["date_of_birth"], row["session_start_time"])
    units = tables.get("units")
    row.update(
        nwb_version=None,
        has_ephys=units is not None and units.num_rows > 0,
        has_task=behaviour is not None,
        has_sync=sync is not None,
        notes="; ".join(notes) or None,
        **dict.fromkeys(LAKE_FILLED),
    )
    return row
