-- units_annotated: every unit with its probe, its peak channel's position and brain area, and
-- its session and subject. A unit's area comes from its own session's channels (the join is on
-- session_id, probe and channel).
--
-- Where the added columns come from (for an NWB source; a rig source fills the same channels
-- columns from its sorting folder: channel_positions.npy, ccf_regions.csv):
--   peak channel           Allen units `peak_channel_id`, else the first electrode of the unit's
--                          `electrodes` region (peak_channel_electrode_id = its electrodes id)
--   structure_acronym      the peak electrode's `location`
--   structure_id           the electrodes column of that name, when the source has one
--   ccf_ap, ccf_dv, ccf_ml the peak electrode's x, y, z (CCF µm in Allen files; other labs may
--                          use other units there, e.g. the Janelia files)
--   probe_vertical_position, probe_horizontal_position
--                          depth along the probe and position across it (µm): the electrodes
--                          columns `probe_vertical_position` / `probe_horizontal_position`
--                          (Allen), else `rel_y` / `rel_x`. NULL when the source has no
--                          electrode positions (none of the three real files in
--                          ../shared/realdata has them; the Janelia ALM file's units carry their
--                          own `depth` column instead, kept as a units column as it is)
--   probe_*                the electrode group's probe row; session and subject columns from
--                          sessions (NULL where the source does not say, e.g. session_type)
-- A unit whose peak electrode is unknown has NULL channel, area, CCF and position columns.
CREATE OR REPLACE VIEW units_annotated AS
SELECT
    u.*,
    c.channel_id AS peak_channel_electrode_id,
    c.structure_acronym,
    c.structure_id,
    c.ccf_ap,
    c.ccf_dv,
    c.ccf_ml,
    c.probe_horizontal_position,
    c.probe_vertical_position,
    c.valid AS peak_channel_valid,
    p.probe_id,
    p.model AS probe_model,
    p.sampling_rate AS probe_sampling_rate,
    p.clock_status AS probe_clock_status,
    s.session_type,
    s.session_start_time,
    s.rig,
    s.subject_id,
    s.species,
    s.sex,
    s.genotype,
    s.strain,
    s.age_in_days
FROM units AS u
LEFT JOIN channels AS c
    ON c.session_id = u.session_id AND c.probe = u.probe AND c.channel = u.peak_channel
LEFT JOIN probes AS p
    ON p.session_id = u.session_id AND p.probe = u.probe
JOIN sessions AS s
    ON s.session_id = u.session_id;
