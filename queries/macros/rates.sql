-- rates_by_area(unit_set): per session and brain area, for the units listed in the table or
-- view named unit_set (columns session_id, unit_id; e.g. 'units', or a view of the units
-- passing a preset):
--   n_units, n_spikes (sum of the units' spike counts), mean_rate_hz (mean over units of
--   unit_rates.mean_rate_hz), mean_firing_rate (mean over units of the source's firing_rate,
--   NULL/NaN values left out).
-- Units whose peak channel has no structure are grouped under a NULL structure_acronym.
CREATE OR REPLACE MACRO rates_by_area(unit_set) AS TABLE
SELECT
    r.session_id,
    r.structure_acronym,
    count(*) AS n_units,
    CAST(sum(r.n_spikes) AS BIGINT) AS n_spikes,
    avg(r.mean_rate_hz) AS mean_rate_hz,
    avg(r.firing_rate) FILTER (WHERE NOT isnan(r.firing_rate)) AS mean_firing_rate
FROM unit_rates AS r
SEMI JOIN (SELECT session_id, unit_id FROM query_table(unit_set)) AS sel
    USING (session_id, unit_id)
GROUP BY r.session_id, r.structure_acronym;
