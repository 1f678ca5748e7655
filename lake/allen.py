"""`lake.allen`: the lake seen through Allen SDK names, for people coming from the AllenSDK.

The project tables mirror the Visual Behavior Neuropixels (VBN) cache tables and their column
names: `get_ecephys_session_table()`, `get_unit_table()`, `get_probe_table()`,
`get_channel_table()`; per-session helpers return spike times as a dict of arrays and the
task tables as frames. They are computed from the lake over every session, so they work for
NWB files and rig sessions from any lab, not only Allen's.

Differences from the AllenSDK, on purpose:

- frames are polars (pass ``pandas=True`` for a pandas frame indexed by the Allen id);
- ids are the lake's: `ecephys_session_id` is the lake's session_id (text; Allen's are
  numbers), `ecephys_probe_id` / `ecephys_channel_id` are the source's ids when it has them;
- columns that nplake cannot know for any source (behavior_session_id, project_code,
  image_set, experience_level, ...) are left out rather than filled with guesses;
- no quality filter is applied unless you ask (``preset="allen_visual_coding"``), as in VBN;
- a per-session helper given a session id the lake does not hold raises `UnknownSession` (with
  close matches), where the SDK would fail somewhere inside; an id that cannot be a session id
  raises `InvalidSessionId`.

Examples
--------
>>> units = lk.allen.get_unit_table(preset="allen_visual_coding")  # doctest: +SKIP
>>> spikes = lk.allen.get_spike_times("1087245247", units["unit_id"][:5])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from lake.presets import PRESETS
from schemas.errors import InvalidName

if TYPE_CHECKING:
    from lake.lake import Lake

_SESSIONS_SQL = """
WITH structures AS (
    SELECT session_id, list_sort(list(DISTINCT structure_acronym)) AS structure_acronyms,
           count(*) AS channel_count
    FROM channels GROUP BY session_id
),
probe_counts AS (SELECT session_id, count(*) AS probe_count FROM probes GROUP BY session_id)
SELECT
    s.session_id AS ecephys_session_id,
    s.session_start_time AS date_of_acquisition,
    s.rig AS equipment_name,
    s.session_type,
    s.subject_id AS mouse_id,
    s.genotype,
    s.sex,
    s.age_in_days,
    coalesce(s.n_units, 0) AS unit_count,
    coalesce(p.probe_count, 0) AS probe_count,
    coalesce(c.channel_count, 0) AS channel_count,
    c.structure_acronyms,
    s.species,
    s.strain,
    s.institution,
    s.session_description
FROM sessions AS s
LEFT JOIN structures AS c USING (session_id)
LEFT JOIN probe_counts AS p USING (session_id)
ORDER BY s.session_id
"""

_PROBES_SQL = """
WITH unit_counts AS (
    SELECT session_id, probe, count(*) AS unit_count FROM units GROUP BY ALL
),
channel_stats AS (
    SELECT session_id, probe, count(*) AS channel_count,
           list_sort(list(DISTINCT structure_acronym)) AS structure_acronyms
    FROM channels GROUP BY ALL
)
SELECT
    p.probe_id AS ecephys_probe_id,
    p.session_id AS ecephys_session_id,
    p.probe AS name,
    p.sampling_rate,
    p.lfp_sampling_rate,
    p.model AS phase,
    p.has_lfp_data,
    coalesce(u.unit_count, 0) AS unit_count,
    coalesce(c.channel_count, 0) AS channel_count,
    c.structure_acronyms
FROM probes AS p
LEFT JOIN unit_counts AS u USING (session_id, probe)
LEFT JOIN channel_stats AS c USING (session_id, probe)
ORDER BY p.session_id, p.probe
"""

_CHANNELS_SQL = """
WITH unit_counts AS (
    SELECT session_id, probe, peak_channel AS channel, count(*) AS unit_count
    FROM units GROUP BY ALL
)
SELECT
    c.channel_id AS ecephys_channel_id,
    p.probe_id AS ecephys_probe_id,
    c.session_id AS ecephys_session_id,
    c.probe AS probe_name,
    c.channel AS probe_channel_number,
    c.probe_vertical_position,
    c.probe_horizontal_position,
    c.ccf_ap AS anterior_posterior_ccf_coordinate,
    c.ccf_dv AS dorsal_ventral_ccf_coordinate,
    c.ccf_ml AS left_right_ccf_coordinate,
    c.structure_acronym,
    c.structure_id,
    coalesce(u.unit_count, 0) AS unit_count,
    c.valid AS valid_data
FROM channels AS c
LEFT JOIN probes AS p USING (session_id, probe)
LEFT JOIN unit_counts AS u USING (session_id, probe, channel)
ORDER BY c.session_id, c.probe, c.channel
"""

#: units_annotated column -> Allen VBN unit table column.
_UNIT_RENAMES = {
    "session_id": "ecephys_session_id",
    "peak_channel_id": "ecephys_channel_id",
    "probe_id": "ecephys_probe_id",
    "probe": "probe_name",
    "peak_channel": "probe_channel_number",
    "ccf_ap": "anterior_posterior_ccf_coordinate",
    "ccf_dv": "dorsal_ventral_ccf_coordinate",
    "ccf_ml": "left_right_ccf_coordinate",
    "peak_channel_valid": "valid_data",
}
#: units_annotated columns that belong to the session table in the AllenSDK.
_SESSION_COLUMNS = (
    "peak_channel_electrode_id",
    "session_type",
    "session_start_time",
    "rig",
    "subject_id",
    "species",
    "sex",
    "genotype",
    "strain",
    "age_in_days",
    "probe_clock_status",
    "probe_model",
    "probe_sampling_rate",
)


class AllenAccessors:
    """AllenSDK-style tables and per-session helpers over one lake; get it as `lk.allen`."""

    def __init__(self, lake: Lake) -> None:
        self._lake = lake

    # ----------------------------------------------------------------------- project tables
    def get_ecephys_session_table(self, *, pandas: bool = False) -> Any:
        """One row per session, with VBN column names.

        ecephys_session_id, date_of_acquisition, equipment_name, session_type, mouse_id,
        genotype, sex, age_in_days, unit_count, probe_count, channel_count, structure_acronyms
        (a list), and a few more.
        """
        return _out(self._lake.sql(_SESSIONS_SQL), "ecephys_session_id", pandas)

    def get_unit_table(self, *, preset: str | None = None, pandas: bool = False) -> Any:
        """One row per unit, with VBN column names.

        unit_id, ecephys_channel_id, ecephys_probe_id, ecephys_session_id, CCF coordinates,
        structure_acronym, valid_data, and every metric the source has.

        Parameters
        ----------
        preset
            Keep only units passing this quality preset (`lake.presets.PRESETS`); default all.
        pandas
            Return a pandas frame indexed by unit_id (unit ids are unique per session only).
        """
        query = "SELECT * FROM units_annotated"
        if preset is not None:
            if preset not in PRESETS:
                msg = f"unknown quality preset {preset!r}; presets: {', '.join(PRESETS)}"
                raise InvalidName(msg)
            query = f"SELECT * FROM units_with_preset('{preset}')"
        frame = self._lake.sql(query + " ORDER BY session_id, unit_id")
        frame = frame.drop([c for c in _SESSION_COLUMNS if c in frame.columns])
        frame = frame.rename({k: v for k, v in _UNIT_RENAMES.items() if k in frame.columns})
        first = ["unit_id", "ecephys_channel_id", "ecephys_probe_id", "ecephys_session_id"]
        frame = frame.select(first + [c for c in frame.columns if c not in first])
        return _out(frame, "unit_id", pandas)

    def get_probe_table(self, *, pandas: bool = False) -> Any:
        """One row per probe, with VBN column names.

        ecephys_probe_id, ecephys_session_id, name, sampling_rate, lfp_sampling_rate, phase,
        has_lfp_data, unit_count, channel_count, structure_acronyms.
        """
        return _out(self._lake.sql(_PROBES_SQL), "ecephys_probe_id", pandas)

    def get_channel_table(self, *, pandas: bool = False) -> Any:
        """One row per channel, with VBN column names.

        ecephys_channel_id, ecephys_probe_id, ecephys_session_id, probe_channel_number,
        positions, CCF coordinates, structure_acronym, unit_count, valid_data.
        """
        return _out(self._lake.sql(_CHANNELS_SQL), "ecephys_channel_id", pandas)

    # ---------------------------------------------------------------------- one session
    def get_spike_times(
        self, session_id: str, unit_ids: list[int] | np.ndarray | pl.Series | None = None
    ) -> dict[int, np.ndarray]:
        """Spike times (s) per unit of one session, like `session.spike_times` in the SDK.

        Examples
        --------
        >>> times = lk.allen.get_spike_times("1087245247")  # doctest: +SKIP
        >>> times[1157045547][:3]  # doctest: +SKIP
        array([0.1402, 0.7817, 1.2025])
        """
        sid = self._lake.require_session(session_id)
        ids = None if unit_ids is None else np.asarray(unit_ids, dtype=np.int64)
        return self._lake.analysis.spike_times(sid, ids)

    def get_units(self, session_id: str, *, preset: str | None = None) -> pl.DataFrame:
        """The unit table of one session (see `get_unit_table`)."""
        sid = self._lake.require_session(session_id)
        table = self.get_unit_table(preset=preset)
        return table.filter(pl.col("ecephys_session_id") == sid)

    def get_trials(self, session_id: str) -> pl.DataFrame:
        """The trials of one session with the task columns it has.

        Columns that only other sessions fill (the trials table is shared) are left out.
        """
        rows = self._session_rows("trials", session_id).sort("trial_index")
        return rows.select(_filled(rows, keep=("trial_index", "start_time", "stop_time")))

    def get_licks(self, session_id: str) -> pl.DataFrame:
        """Licks of one session: timestamps (s) and source."""
        rows = self._session_rows("licks", session_id).sort("time", "source")
        return rows.select(pl.col("time").alias("timestamps"), "source")

    def get_rewards(self, session_id: str) -> pl.DataFrame:
        """Rewards of one session: timestamps (s), volume (mL), auto_rewarded."""
        rows = self._session_rows("rewards", session_id).sort("time")
        return rows.select(pl.col("time").alias("timestamps"), "volume", "auto_rewarded")

    def get_stimulus_presentations(self, session_id: str) -> pl.DataFrame:
        """Stimulus presentations: rows of the session's `*_presentations` interval tables.

        In time order, with the columns they use (stimulus_name, image_name, is_change, ...),
        typed as the source typed them (table stimulus_presentations).
        """
        rows = self._session_rows("stimulus_presentations", session_id)
        used = _filled(rows, keep=("name", "row", "start_time", "stop_time"))
        return rows.select(used).sort("start_time", "name", "row")

    def _session_rows(self, table: str, session_id: str) -> pl.DataFrame:
        sid = self._lake.require_session(session_id)
        rows = self._lake.scan(table).filter(pl.col("session_id") == sid).collect()
        return rows.drop("session_id")


def _filled(rows: pl.DataFrame, *, keep: tuple[str, ...]) -> list[str]:
    """Columns with at least one value (the open tables carry other sessions' columns too)."""
    return [c for c in rows.columns if c in keep or rows[c].null_count() < rows.height]


def _out(frame: pl.DataFrame, index: str, pandas: bool) -> Any:
    """The frame as polars, or as pandas indexed by `index` (the AllenSDK's habit)."""
    if not pandas:
        return frame
    return frame.to_pandas().set_index(index)
