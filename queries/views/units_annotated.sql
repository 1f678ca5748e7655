-- units_annotated: every unit with its probe, its peak channel's position and brain area, and
-- its session and subject. A unit's area comes from its own session's channels (the join is on
-- session_id, probe and channel).
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
