-- Event-aligned spike counts and PSTHs, for any set of units and any events, across sessions.
--
-- Arguments shared by the macros:
--   unit_set     name of a table or view with columns (session_id, unit_id): 'units' for all,
--                'units_annotated', or a temporary view you made, e.g.
--                CREATE TEMP VIEW visp AS SELECT session_id, unit_id FROM units_annotated
--                    WHERE structure_acronym = 'VISp';
--   event_name   an event of the events view: 'trials.change_time', 'trials.start_time',
--                'licks', 'rewards', 'intervals.<name>', ...
--   event_table  (named, default 'events') a table or view with columns (session_id, event,
--                event_index, time) to take the events from instead, e.g. your own events.
--
-- Definitions (lake.analysis computes the same numbers; docs/analysis.md):
--   * An event at time t has edges  e_k = t + (win_start + k * bin_width),  k = 0 .. n_bins,
--     computed in float64 in exactly that order; a spike at time s is in bin k when
--     e_k <= s < e_(k+1). aligned_counts has one window: [t + win_start, t + win_stop).
--   * Events whose time is NULL or NaN (e.g. change_time of catch and aborted trials) are
--     dropped; the other events count even at the session edges (nothing is clipped).
--   * Empty windows and units without spikes count 0: aligned_counts / aligned_bins return one
--     row per (unit, event[, bin]) for every unit of unit_set and every event of its session.
--     Units of sessions without such events get no rows.
--   * psth rate_hz = n_spikes / (n_events * bin_width), the mean over the session's events.
--
-- Method: a range join of spikes with the event windows, keyed by session and by a time bucket
-- as long as one window (each spike meets only the windows of its bucket), then exact bin
-- assignment by comparing with the edges. No loop over units or events.

-- _aligned_bucket(width): bucket length for windows of `width` seconds (at least 1 ms).
CREATE OR REPLACE MACRO _aligned_bucket(width) AS greatest(CAST(width AS DOUBLE), 0.001);

-- _aligned_windows(event_table, event_name, lo_offset, hi_offset): the finite events with
-- their window [lo, hi) and the time buckets the window touches (one row per bucket).
CREATE OR REPLACE MACRO _aligned_windows(event_table, event_name, lo_offset, hi_offset) AS TABLE
WITH ev AS (
    SELECT
        session_id,
        event_index,
        time AS event_time,
        time + CAST(lo_offset AS DOUBLE) AS lo,
        time + CAST(hi_offset AS DOUBLE) AS hi
    FROM query_table(event_table)
    WHERE event = event_name AND isfinite(time)
)
SELECT
    *,
    unnest(range(
        CAST(floor(lo / _aligned_bucket(CAST(hi_offset AS DOUBLE) - CAST(lo_offset AS DOUBLE)))
            AS BIGINT),
        CAST(floor(hi / _aligned_bucket(CAST(hi_offset AS DOUBLE) - CAST(lo_offset AS DOUBLE)))
            AS BIGINT) + 1
    )) AS bucket
FROM ev;

-- _aligned_pairs(unit_set, event_table, event_name, lo_offset, hi_offset): one row per
-- (spike, event) with lo <= spike time < hi, for the units of unit_set.
CREATE OR REPLACE MACRO _aligned_pairs(unit_set, event_table, event_name, lo_offset, hi_offset)
AS TABLE
WITH windows AS (
    SELECT * FROM _aligned_windows(event_table, event_name, lo_offset, hi_offset)
),
spk AS (
    SELECT
        s.session_id,
        s.unit_id,
        s.time,
        CAST(floor(s.time / _aligned_bucket(CAST(hi_offset AS DOUBLE) - CAST(lo_offset AS DOUBLE)))
            AS BIGINT) AS bucket
    FROM spikes AS s
    SEMI JOIN (SELECT session_id, unit_id FROM query_table(unit_set)) AS sel
        USING (session_id, unit_id)
)
SELECT spk.session_id, spk.unit_id, spk.time, w.event_index, w.event_time
FROM spk
JOIN windows AS w
    ON spk.session_id = w.session_id AND spk.bucket = w.bucket
WHERE spk.time >= w.lo AND spk.time < w.hi;

-- _aligned_check(win_start, bin_width, n_bins): true, or an error for unusable bins.
CREATE OR REPLACE MACRO _aligned_check(win_start, bin_width, n_bins) AS CASE
    WHEN NOT isfinite(CAST(win_start AS DOUBLE))
        THEN error('win_start must be a finite number of seconds')
    WHEN NOT CAST(bin_width AS DOUBLE) >= 1e-6
        THEN error('bin_width must be at least 1e-6 s')
    WHEN CAST(n_bins AS BIGINT) < 1
        THEN error('n_bins must be at least 1')
    ELSE true
END;

-- _aligned_binned(...): one row per (spike, event) pair in the window, with its bin.
-- k0 = floor((s - t - win_start) / bin_width) is within one of the true bin (bin_width >=
-- 1 µs); comparing s with the edges e_k0 and e_(k0+1) fixes it exactly.
CREATE OR REPLACE MACRO _aligned_binned(
    unit_set, event_table, event_name, win_start, bin_width, n_bins
) AS TABLE
WITH pairs AS (
    SELECT
        p.session_id,
        p.unit_id,
        p.event_index,
        p.time,
        p.event_time,
        CAST(floor(
            (p.time - p.event_time - CAST(win_start AS DOUBLE)) / CAST(bin_width AS DOUBLE)
        ) AS BIGINT) AS k0
    FROM _aligned_pairs(
        unit_set,
        event_table,
        event_name,
        CAST(win_start AS DOUBLE) + CAST(0 AS DOUBLE) * CAST(bin_width AS DOUBLE),
        CAST(win_start AS DOUBLE) + CAST(n_bins AS DOUBLE) * CAST(bin_width AS DOUBLE)
    ) AS p
    WHERE _aligned_check(win_start, bin_width, n_bins)
)
SELECT
    session_id,
    unit_id,
    event_index,
    k0
    - CAST(time < event_time + (CAST(win_start AS DOUBLE)
        + CAST(k0 AS DOUBLE) * CAST(bin_width AS DOUBLE)) AS BIGINT)
    + CAST(time >= event_time + (CAST(win_start AS DOUBLE)
        + CAST(k0 + 1 AS DOUBLE) * CAST(bin_width AS DOUBLE)) AS BIGINT) AS bin
FROM pairs;

-- aligned_counts(unit_set, event_name, win_start, win_stop [, event_table := 'events']):
-- spikes of each unit in [t + win_start, t + win_stop) around each event.
-- Columns: session_id, unit_id, event_index, event_time, n_spikes (0 for an empty window).
CREATE OR REPLACE MACRO aligned_counts(
    unit_set, event_name, win_start, win_stop, event_table := 'events'
) AS TABLE
WITH sel AS (
    SELECT DISTINCT session_id, unit_id FROM query_table(unit_set)
),
ev AS (
    SELECT session_id, event_index, time AS event_time
    FROM query_table(event_table)
    WHERE event = event_name AND isfinite(time)
        AND CASE
            WHEN CAST(win_stop AS DOUBLE) > CAST(win_start AS DOUBLE) THEN true
            ELSE error('aligned_counts: win_stop must be greater than win_start')
        END
),
hits AS (
    SELECT session_id, unit_id, event_index, count(*) AS n_spikes
    FROM _aligned_pairs(unit_set, event_table, event_name, win_start, win_stop)
    GROUP BY ALL
)
SELECT
    sel.session_id,
    sel.unit_id,
    ev.event_index,
    ev.event_time,
    coalesce(h.n_spikes, 0) AS n_spikes
FROM sel
JOIN ev USING (session_id)
LEFT JOIN hits AS h
    ON h.session_id = sel.session_id AND h.unit_id = sel.unit_id
    AND h.event_index = ev.event_index;

-- aligned_bins(unit_set, event_name, win_start, bin_width, n_bins [, event_table := 'events']):
-- spikes of each unit in each bin k = 0 .. n_bins - 1 around each event.
-- Columns: session_id, unit_id, event_index, event_time, bin, bin_start (win_start + bin *
-- bin_width, s from the event), n_spikes.
CREATE OR REPLACE MACRO aligned_bins(
    unit_set, event_name, win_start, bin_width, n_bins, event_table := 'events'
) AS TABLE
WITH sel AS (
    SELECT DISTINCT session_id, unit_id FROM query_table(unit_set)
),
ev AS (
    SELECT session_id, event_index, time AS event_time
    FROM query_table(event_table)
    WHERE event = event_name AND isfinite(time) AND _aligned_check(win_start, bin_width, n_bins)
),
counts AS (
    SELECT session_id, unit_id, event_index, bin, count(*) AS n_spikes
    FROM _aligned_binned(unit_set, event_table, event_name, win_start, bin_width, n_bins)
    GROUP BY ALL
)
SELECT
    sel.session_id,
    sel.unit_id,
    ev.event_index,
    ev.event_time,
    b.bin,
    CAST(win_start AS DOUBLE) + CAST(b.bin AS DOUBLE) * CAST(bin_width AS DOUBLE) AS bin_start,
    coalesce(c.n_spikes, 0) AS n_spikes
FROM sel
JOIN ev USING (session_id)
CROSS JOIN (SELECT range AS bin FROM range(CAST(n_bins AS BIGINT))) AS b
LEFT JOIN counts AS c
    ON c.session_id = sel.session_id AND c.unit_id = sel.unit_id
    AND c.event_index = ev.event_index AND c.bin = b.bin;

-- psth(unit_set, event_name, win_start, bin_width, n_bins [, event_table := 'events']):
-- per unit and bin, the spikes summed over the session's events and the mean rate.
-- Columns: session_id, unit_id, bin, bin_start, n_events, n_spikes,
-- rate_hz = n_spikes / (n_events * bin_width).
CREATE OR REPLACE MACRO psth(
    unit_set, event_name, win_start, bin_width, n_bins, event_table := 'events'
) AS TABLE
WITH sel AS (
    SELECT DISTINCT session_id, unit_id FROM query_table(unit_set)
),
ev_n AS (
    SELECT session_id, count(*) AS n_events
    FROM query_table(event_table)
    WHERE event = event_name AND isfinite(time) AND _aligned_check(win_start, bin_width, n_bins)
    GROUP BY session_id
),
counts AS (
    SELECT session_id, unit_id, bin, count(*) AS n_spikes
    FROM _aligned_binned(unit_set, event_table, event_name, win_start, bin_width, n_bins)
    GROUP BY ALL
)
SELECT
    sel.session_id,
    sel.unit_id,
    b.bin,
    CAST(win_start AS DOUBLE) + CAST(b.bin AS DOUBLE) * CAST(bin_width AS DOUBLE) AS bin_start,
    n.n_events,
    CAST(coalesce(c.n_spikes, 0) AS BIGINT) AS n_spikes,
    CAST(coalesce(c.n_spikes, 0) AS DOUBLE)
        / (CAST(n.n_events AS DOUBLE) * CAST(bin_width AS DOUBLE)) AS rate_hz
FROM sel
JOIN ev_n AS n USING (session_id)
CROSS JOIN (SELECT range AS bin FROM range(CAST(n_bins AS BIGINT))) AS b
LEFT JOIN counts AS c
    ON c.session_id = sel.session_id AND c.unit_id = sel.unit_id AND c.bin = b.bin;

-- psth_by_area(unit_set, event_name, win_start, bin_width, n_bins [, event_table := 'events']):
-- per brain area (the unit's peak channel) and bin, across every session: n_sessions, n_units,
-- rate_hz (mean of the units' psth rate_hz) and rate_hz_sd (their sample standard deviation).
CREATE OR REPLACE MACRO psth_by_area(
    unit_set, event_name, win_start, bin_width, n_bins, event_table := 'events'
) AS TABLE
SELECT
    u.structure_acronym,
    p.bin,
    any_value(p.bin_start) AS bin_start,
    count(DISTINCT p.session_id) AS n_sessions,
    count(*) AS n_units,
    avg(p.rate_hz) AS rate_hz,
    stddev_samp(p.rate_hz) AS rate_hz_sd
FROM psth(unit_set, event_name, win_start, bin_width, n_bins, event_table := event_table) AS p
JOIN units_annotated AS u USING (session_id, unit_id)
GROUP BY u.structure_acronym, p.bin;

-- aligned_spikes(unit_set, event_name, win_start, win_stop [, event_table := 'events']):
-- every spike in [t + win_start, t + win_stop) of every event, for rasters.
-- Columns: session_id, unit_id, event_index, event_time, time, rel_time (= time - event_time).
CREATE OR REPLACE MACRO aligned_spikes(
    unit_set, event_name, win_start, win_stop, event_table := 'events'
) AS TABLE
SELECT
    session_id,
    unit_id,
    event_index,
    event_time,
    time,
    time - event_time AS rel_time
FROM _aligned_pairs(unit_set, event_table, event_name, win_start, win_stop);
