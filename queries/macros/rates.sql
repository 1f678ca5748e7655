-- rates_by_area(unit_set [, level := 'structure']): per session and brain area, for the units
-- listed in the table or view named unit_set (columns session_id, unit_id; e.g. 'units', or a
-- WITH query of the units passing a preset):
--   n_units, n_spikes (sum of the units' spike counts), mean_rate_hz (mean over units of
--   unit_rates.mean_rate_hz), mean_firing_rate (mean over units of the source's firing_rate,
--   NULL/NaN values left out).
-- level groups the units by (queries/macros/regions.sql): 'structure' (units_annotated's
-- structure_acronym as the source wrote it), 'beryl' or 'cosmos' (IBL's areas), or a depth of
-- the Allen ontology (6 puts VISp, VISl and VISp5 in VIS). The group's acronym is in the
-- structure_acronym column at every level. Units without an area at that level (no area, an
-- acronym not in the ontology, or none of IBL's areas holds it) form the NULL group.
CREATE OR REPLACE MACRO rates_by_area(unit_set, level := 'structure') AS TABLE
SELECT
    r.session_id,
    _area_at(
        u.structure_acronym, u.beryl_acronym, u.cosmos_acronym, u.structure_path, level
    ) AS structure_acronym,
    count(*) AS n_units,
    CAST(sum(r.n_spikes) AS BIGINT) AS n_spikes,
    avg(r.mean_rate_hz) AS mean_rate_hz,
    avg(r.firing_rate) FILTER (WHERE NOT isnan(r.firing_rate)) AS mean_firing_rate
FROM unit_rates AS r
JOIN units_annotated AS u USING (session_id, unit_id)
SEMI JOIN (SELECT session_id, unit_id FROM query_table(unit_set)) AS sel
    USING (session_id, unit_id)
GROUP BY ALL;
