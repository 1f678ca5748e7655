-- session_spans: per session, the first and the last spike time over all its units and the
-- span between them (duration_s): the recording time nplake can see in every source. Sessions
-- without spikes have no row.
CREATE OR REPLACE VIEW session_spans AS
SELECT
    session_id,
    min(time) AS first_spike_time,
    max(time) AS last_spike_time,
    max(time) - min(time) AS duration_s,
    count(*) AS n_spikes
FROM spikes
GROUP BY session_id;

-- unit_rates: one row per unit with its spike count and mean rate, beside its area.
--   n_spikes      rows of the unit in spikes (= units.spike_count, checked at ingest); 0 for a
--                 unit without spikes
--   duration_s    the session's span (session_spans)
--   mean_rate_hz  n_spikes / duration_s (NULL when the session has no span)
--   firing_rate   the rate the source reported, kept as it is
CREATE OR REPLACE VIEW unit_rates AS
SELECT
    u.session_id,
    u.unit_id,
    u.probe,
    u.structure_acronym,
    u.quality,
    u.spike_count AS n_spikes,
    s.duration_s,
    CASE WHEN s.duration_s > 0 THEN u.spike_count / s.duration_s END AS mean_rate_hz,
    u.firing_rate
FROM units_annotated AS u
LEFT JOIN session_spans AS s USING (session_id);

-- area_rates: per session and brain area (peak channel's structure_acronym), over every unit:
-- units, spikes, mean of the units' mean_rate_hz and of the source's firing_rate. For a
-- selection of units (e.g. a quality preset) use the macro rates_by_area('<table or view>').
CREATE OR REPLACE VIEW area_rates AS
SELECT * FROM rates_by_area('units');
