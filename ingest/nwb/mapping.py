"""Where lake columns live in an NWB file: the one NWB <-> lake name map, read both ways.

The decoder renames NWB columns to lake names with it; the lake's NWB exporter writes lake
columns back under the NWB names, so that an exported file decodes to the rows it came from.
"""

from __future__ import annotations

#: NWB electrodes column -> lake channels column (Allen `local_index`, CCF `x, y, z` in µm).
ELECTRODE_COLUMNS: dict[str, str] = {
    "local_index": "channel",
    "x": "ccf_ap",
    "y": "ccf_dv",
    "z": "ccf_ml",
    "location": "structure_acronym",
    "valid_data": "valid",
}
#: NWB electrodes position on the probe -> lake channels column; used only when the file has
#: no Allen `probe_horizontal_position` column of its own.
PROBE_POSITIONS: dict[str, str] = {
    "rel_x": "probe_horizontal_position",
    "rel_y": "probe_vertical_position",
}
#: Sessions columns stored as `/general` text datasets of the same name.
GENERAL_TEXT = ("institution", "lab", "experiment_description")
#: More `/general` text datasets -> the sessions columns that keep them.
GENERAL_FIELDS: dict[str, str] = {
    "notes": "nwb_notes",
    "protocol": "protocol",
    "surgery": "surgery",
    "virus": "virus",
    "pharmacology": "pharmacology",
    "slices": "slices",
    "data_collection": "data_collection",
    "source_script": "source_script",
}
#: `/general` text lists (one value or an array) -> list columns of the same name.
GENERAL_LISTS = ("keywords", "related_publications")
#: Tables whose rows make a session's `has_task` true.
TASK_TABLES = ("trials", "licks", "rewards", "intervals")
