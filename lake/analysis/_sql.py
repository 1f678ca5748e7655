"""The SQL `lake.analysis` runs through `Lake.sql`, in one place; names are validated first.

Every query reads a table each lake connection holds in memory (units_annotated,
units_quality, task_events) or the interval_starts view, so no spikes are read here.
"""

from __future__ import annotations

from lake.presets import preset
from schemas.ids import validate_name

UNITS_ANNOTATED = "SELECT * FROM units_annotated"
TRIALS_COLUMNS = "SELECT * FROM trials LIMIT 0"
INTERVAL_NAMES = "SELECT DISTINCT name FROM interval_starts ORDER BY 1"
_EVENT_KINDS = ("trials", "licks", "rewards", "intervals")


def unit_selection(preset_name: str | None) -> str:
    """(session_id, unit_id) of every unit, or of those passing a preset, sorted.

    The same rows as lk.scan("units") and the same booleans as `preset_expr` (tested).
    """
    where = f"WHERE {preset(preset_name).name}" if preset_name is not None else ""
    return f"SELECT session_id, unit_id FROM units_quality {where} ORDER BY 1, 2"


def session_units(session_id: str) -> str:
    """unit_id of every unit of one session (a session id validated by `Lake.require_session`)."""
    return f"SELECT unit_id FROM units_quality WHERE session_id = '{session_id}'"


def event_rows(name: str) -> str:
    """(session_id, event_index, time) of one event of the `events` view.

    The same rows as ``SELECT ... FROM events WHERE event = name`` (tested), read from the
    per-connection task_events table (trials, licks, rewards) or from intervals.
    """
    kind, _, rest = name.partition(".")
    if kind not in _EVENT_KINDS or (kind in ("trials", "intervals")) != bool(rest):
        msg = (
            f"event {name!r}: use 'trials.<column>' (e.g. trials.change_time), 'licks', "
            "'rewards' or 'intervals.<table name>'"
        )
        raise ValueError(msg)
    order = "ORDER BY session_id, event_index"
    if kind == "intervals":
        table = validate_name(rest, what="interval table")
        return (
            'SELECT session_id, "row" AS event_index, start_time AS time FROM interval_starts '
            f"WHERE name = '{table}' AND isfinite(start_time) {order}"
        )
    if kind == "trials":
        column = validate_name(rest, what="trials column")
        if not column.endswith("_time"):
            msg = f"event {name!r}: trial events are the *_time columns of trials"
            raise ValueError(msg)
        name = f"trials.{column}"
    return f"SELECT session_id, event_index, time FROM task_events WHERE event = '{name}' {order}"
