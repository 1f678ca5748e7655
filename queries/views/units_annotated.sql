-- units_annotated: every unit with its probe, its peak channel's position and brain area, where
-- that area sits in the Allen CCF ontology (brain_regions), and its session and subject. A
-- unit's channel comes from its own session's channels (the join is on session_id, probe and
-- channel).
--
-- Where the added columns come from (for an NWB source; a rig source fills the same channels
-- columns from its sorting folder: channel_positions.npy, ccf_regions.csv):
--   peak channel           Allen units `peak_channel_id`, else the first electrode of the unit's
--                          `electrodes` region (peak_channel_electrode_id = its electrodes id)
--   structure_acronym      the brain area, as the source wrote it (never rewritten), from the
--                          first of these that names one (not NULL, not ''):
--                            1. the peak electrode's `location` (channels.structure_acronym);
--                            2. the unit's own `location` column (NWB units `location`: files
--                               whose units have no electrode link but say where they are);
--                            3. its probe's location (the NWB electrode group's `location`).
--   structure_acronym_source  which of them gave it: 'channel', 'unit' or 'probe' (NULL: none)
--   structure_id           the Allen CCF id of structure_acronym (brain_regions), matched
--                          exactly (acronyms are case-sensitive: CM and cm differ). NULL when the
--                          text is not an acronym of the ontology ('hippocampus_right', 'out of
--                          brain', '', a free-text location) and for 'root' and 'void', which
--                          Allen and IBL files use for sites in no annotated structure
--   structure_name, structure_depth, structure_path, structure_path_ids
--                          the structure's name, its depth (root 0) and the parent chain from
--                          root down to it (acronyms and ids), e.g. VISp5:
--                          [root, grey, CH, CTX, CTXpl, Isocortex, VIS, VISp, VISp5]
--   beryl_acronym, beryl_id, cosmos_acronym, cosmos_id
--                          IBL's Beryl area and Cosmos division holding the structure; NULL
--                          when none does (see queries/reference/README.md)
--   channel_structure_id   the peak channel's own structure_id column, when the source has one
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
-- A unit whose peak electrode is unknown has NULL channel, CCF and position columns; its area
-- may still come from its own or its probe's location.
CREATE OR REPLACE VIEW units_annotated AS
WITH located AS (
    SELECT
        u.*,
        c.channel_id AS peak_channel_electrode_id,
        CASE
            WHEN nullif(c.structure_acronym, '') IS NOT NULL THEN c.structure_acronym
            WHEN nullif(CAST(u.location AS VARCHAR), '') IS NOT NULL
                THEN CAST(u.location AS VARCHAR)
            ELSE nullif(p.location, '')
        END AS structure_acronym,
        CASE
            WHEN nullif(c.structure_acronym, '') IS NOT NULL THEN 'channel'
            WHEN nullif(CAST(u.location AS VARCHAR), '') IS NOT NULL THEN 'unit'
            WHEN nullif(p.location, '') IS NOT NULL THEN 'probe'
        END AS structure_acronym_source,
        c.structure_id AS channel_structure_id,
        c.ccf_ap,
        c.ccf_dv,
        c.ccf_ml,
        c.probe_horizontal_position,
        c.probe_vertical_position,
        c.valid AS peak_channel_valid,
        p.probe_id,
        p.model AS probe_model,
        p.sampling_rate AS probe_sampling_rate,
        p.clock_status AS probe_clock_status
    FROM units AS u
    LEFT JOIN channels AS c
        ON c.session_id = u.session_id AND c.probe = u.probe AND c.channel = u.peak_channel
    LEFT JOIN probes AS p
        ON p.session_id = u.session_id AND p.probe = u.probe
)
SELECT
    l.*,
    r.structure_id,
    r.name AS structure_name,
    r.depth AS structure_depth,
    r.path_acronyms AS structure_path,
    r.path_ids AS structure_path_ids,
    r.beryl_acronym,
    r.beryl_id,
    r.cosmos_acronym,
    r.cosmos_id,
    s.session_type,
    s.session_start_time,
    s.rig,
    s.subject_id,
    s.species,
    s.sex,
    s.genotype,
    s.strain,
    s.age_in_days
FROM located AS l
LEFT JOIN brain_regions AS r
    ON r.acronym = l.structure_acronym AND r.depth > 0
JOIN sessions AS s
    ON s.session_id = l.session_id;
