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
-- Method: the chosen units get integer keys (ukey, and skey per session); the spikes of those
-- units (an inner join on (session_id, unit_id): DuckDB hands up to 1,024 chosen units to the
-- Parquet scan, which skips the row groups and pages holding none of them) meet the event
-- windows in a hash join on (skey, time bucket), buckets being a quarter of a window long;
-- then the exact bin comes from comparing with the float64 edges, and counts are grouped by
-- integer keys. No loop over units or events.

-- _finite_seconds(x): x as DOUBLE, or an error when it is not finite (NaN would pass every
-- comparison with a number, then fail a cast with a message naming neither argument).
CREATE OR REPLACE MACRO _finite_seconds(x) AS CASE
    WHEN isfinite(CAST(x AS DOUBLE)) THEN CAST(x AS DOUBLE)
    ELSE error('window bounds must be finite numbers of seconds (win_start, win_stop, bin_width)')
END;

-- _aligned_bucket(lo_offset, hi_offset): bucket length for windows [t + lo, t + hi) (a quarter
-- of their width, at least 1 ms): a window touches at most 5 buckets, and a spike meets the
-- windows of its own bucket only.
CREATE OR REPLACE MACRO _aligned_bucket(lo_offset, hi_offset) AS
    greatest((_finite_seconds(hi_offset) - _finite_seconds(lo_offset)) / 4, 0.001);

-- _aligned_units(unit_set): the distinct (session_id, unit_id) of unit_set, numbered: ukey =
-- 0, 1, ... in (session_id, unit_id) order, skey = 1, 2, ... per session.
CREATE OR REPLACE MACRO _aligned_units(unit_set) AS TABLE
SELECT
    session_id,
    unit_id,
    CAST(row_number() OVER (ORDER BY session_id, unit_id) - 1 AS BIGINT) AS ukey,
    CAST(dense_rank() OVER (ORDER BY session_id) AS BIGINT) AS skey
FROM (SELECT DISTINCT session_id, unit_id FROM query_table(unit_set));

-- _aligned_events(event_table, event_name): (session_id, event_index, time, ekey) of the
-- finite events named event_name; ekey = 1, 2, ... in (session_id, event_index, time) order
-- tells events apart even when an event_table repeats an event_index. For the events view,
-- the rows are read from task_events (in memory) or, for 'intervals.<name>', from
-- interval_starts WHERE name = '<name>' (intervals and stimulus presentations; pruned by
-- their row groups). Both arguments are constants, so only
-- the tables needed are bound and read.
CREATE OR REPLACE MACRO _aligned_events(event_table, event_name) AS TABLE
SELECT
    *,
    CAST(row_number() OVER (ORDER BY session_id, event_index, time) AS BIGINT) AS ekey
FROM (
    SELECT session_id, event_index, time
    FROM query_table(if(event_table = 'events', 'task_events', event_table))
    WHERE NOT (event_table = 'events' AND starts_with(event_name, 'intervals.'))
        AND event = event_name AND isfinite(time)
    UNION ALL
    SELECT session_id, "row" AS event_index, start_time AS time
    FROM query_table(if(
        event_table = 'events' AND starts_with(event_name, 'intervals.'),
        'interval_starts',
        '_no_intervals'
    ))
    WHERE event_table = 'events' AND starts_with(event_name, 'intervals.')
        AND name = substr(event_name, 11) AND isfinite(start_time)
);

-- _no_intervals: no rows, the columns _aligned_events reads from interval_starts.
CREATE OR REPLACE VIEW _no_intervals AS
SELECT
    CAST(NULL AS VARCHAR) AS session_id,
    CAST(NULL AS VARCHAR) AS name,
    CAST(NULL AS BIGINT) AS "row",
    CAST(NULL AS DOUBLE) AS start_time
WHERE false;

-- _aligned_pairs(unit_set, event_table, event_name, lo_offset, hi_offset): one row per
-- (spike, event) with t + lo_offset <= spike time < t + hi_offset, for the units of unit_set:
-- ukey, session_id, unit_id, ekey, event_index, event_time, time.
CREATE OR REPLACE MACRO _aligned_pairs(unit_set, event_table, event_name, lo_offset, hi_offset)
AS TABLE
WITH sel AS (
    SELECT * FROM _aligned_units(unit_set)
),
windows AS (
    SELECT
        k.skey,
        e.ekey,
        e.event_index,
        e.time AS event_time,
        e.time + _finite_seconds(lo_offset) AS lo,
        e.time + _finite_seconds(hi_offset) AS hi
    FROM _aligned_events(event_table, event_name) AS e
    JOIN (SELECT DISTINCT session_id, skey FROM sel) AS k USING (session_id)
),
buckets AS (
    SELECT
        *,
        unnest(range(
            CAST(floor(lo / _aligned_bucket(lo_offset, hi_offset))
                AS BIGINT),
            CAST(floor(hi / _aligned_bucket(lo_offset, hi_offset))
                AS BIGINT) + 1
        )) AS bucket
    FROM windows
),
spk AS (
    SELECT
        sel.ukey,
        sel.skey,
        sel.session_id,
        sel.unit_id,
        s.time,
        CAST(floor(s.time / _aligned_bucket(lo_offset, hi_offset))
            AS BIGINT) AS bucket
    FROM spikes AS s
    JOIN sel USING (session_id, unit_id)
)
SELECT spk.ukey, spk.session_id, spk.unit_id, b.ekey, b.event_index, b.event_time, spk.time
FROM spk
JOIN buckets AS b
    ON spk.skey = b.skey AND spk.bucket = b.bucket
WHERE spk.time >= b.lo AND spk.time < b.hi;

-- _finite_window(win_start, win_stop): both finite and win_stop > win_start (NaN compares
-- greater than every number in DuckDB, so a bare win_stop > win_start passes a NaN).
CREATE OR REPLACE MACRO _finite_window(win_start, win_stop) AS
    isfinite(CAST(win_start AS DOUBLE)) AND isfinite(CAST(win_stop AS DOUBLE))
    AND CAST(win_stop AS DOUBLE) > CAST(win_start AS DOUBLE);

-- _aligned_check(win_start, bin_width, n_bins): true, or an error for unusable bins.
CREATE OR REPLACE MACRO _aligned_check(win_start, bin_width, n_bins) AS CASE
    WHEN NOT isfinite(CAST(win_start AS DOUBLE))
        THEN error('win_start must be a finite number of seconds')
    WHEN NOT (isfinite(CAST(bin_width AS DOUBLE)) AND CAST(bin_width AS DOUBLE) >= 1e-6)
        THEN error('bin_width must be a finite number of seconds, at least 1e-6')
    WHEN CAST(n_bins AS BIGINT) < 1
        THEN error('n_bins must be at least 1')
    ELSE true
END;

-- _aligned_binned(...): one row per (spike, event) pair in the window: ukey, ekey, bin.
-- k0 = floor((s - t - win_start) / bin_width) is within one of the true bin (bin_width >=
-- 1 µs); comparing s with the edges e_k0 and e_(k0+1) fixes it exactly.
CREATE OR REPLACE MACRO _aligned_binned(
    unit_set, event_table, event_name, win_start, bin_width, n_bins
) AS TABLE
WITH pairs AS (
    SELECT
        p.ukey,
        p.ekey,
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
    ukey,
    ekey,
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
    SELECT * FROM _aligned_units(unit_set)
),
ev AS (
    SELECT session_id, ekey, event_index, time AS event_time
    FROM _aligned_events(event_table, event_name)
    WHERE CASE
        WHEN _finite_window(win_start, win_stop) THEN true
        ELSE error('aligned_counts: win_start and win_stop must be finite, win_stop > win_start')
    END
),
hits AS (
    SELECT ukey, ekey, count(*) AS n_spikes
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
    ON h.ukey = sel.ukey AND h.ekey = ev.ekey;

-- aligned_bins(unit_set, event_name, win_start, bin_width, n_bins [, event_table := 'events']):
-- spikes of each unit in each bin k = 0 .. n_bins - 1 around each event.
-- Columns: session_id, unit_id, event_index, event_time, bin, bin_start (win_start + bin *
-- bin_width, s from the event), n_spikes.
CREATE OR REPLACE MACRO aligned_bins(
    unit_set, event_name, win_start, bin_width, n_bins, event_table := 'events'
) AS TABLE
WITH sel AS (
    SELECT * FROM _aligned_units(unit_set)
),
ev AS (
    SELECT session_id, ekey, event_index, time AS event_time
    FROM _aligned_events(event_table, event_name)
    WHERE _aligned_check(win_start, bin_width, n_bins)
),
counts AS (
    SELECT ukey, ekey, bin, count(*) AS n_spikes
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
    ON c.ukey = sel.ukey AND c.ekey = ev.ekey AND c.bin = b.bin;

-- psth(unit_set, event_name, win_start, bin_width, n_bins [, event_table := 'events']):
-- per unit and bin, the spikes summed over the session's events and the mean rate.
-- Columns: session_id, unit_id, bin, bin_start, n_events, n_spikes,
-- rate_hz = n_spikes / (n_events * bin_width).
CREATE OR REPLACE MACRO psth(
    unit_set, event_name, win_start, bin_width, n_bins, event_table := 'events'
) AS TABLE
WITH sel AS (
    SELECT * FROM _aligned_units(unit_set)
),
ev_n AS (
    SELECT session_id, count(*) AS n_events
    FROM _aligned_events(event_table, event_name)
    WHERE _aligned_check(win_start, bin_width, n_bins)
    GROUP BY session_id
),
counts AS (  -- one integer key per (unit, bin)
    SELECT ukey * CAST(n_bins AS BIGINT) + bin AS key, count(*) AS n_spikes
    FROM _aligned_binned(unit_set, event_table, event_name, win_start, bin_width, n_bins)
    GROUP BY 1
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
    ON c.key = sel.ukey * CAST(n_bins AS BIGINT) + b.bin;

-- psth_by_area(unit_set, event_name, win_start, bin_width, n_bins [, event_table := 'events']
-- [, level := 'structure']): per brain area and bin, across every session: n_sessions,
-- n_units, rate_hz (mean of the units' psth rate_hz) and rate_hz_sd (their sample standard
-- deviation). level groups the units as in rates_by_area ('structure', 'beryl', 'cosmos' or a
-- depth of the Allen ontology); the group's acronym is in structure_acronym.
CREATE OR REPLACE MACRO psth_by_area(
    unit_set, event_name, win_start, bin_width, n_bins, event_table := 'events',
    level := 'structure'
) AS TABLE
SELECT
    _area_at(
        u.structure_acronym, u.beryl_acronym, u.cosmos_acronym, u.structure_path, level
    ) AS structure_acronym,
    p.bin,
    any_value(p.bin_start) AS bin_start,
    count(DISTINCT p.session_id) AS n_sessions,
    count(*) AS n_units,
    avg(p.rate_hz) AS rate_hz,
    stddev_samp(p.rate_hz) AS rate_hz_sd
FROM psth(unit_set, event_name, win_start, bin_width, n_bins, event_table := event_table) AS p
JOIN units_annotated AS u USING (session_id, unit_id)
GROUP BY 1, p.bin;

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
FROM _aligned_pairs(unit_set, event_table, event_name, win_start, win_stop)
WHERE CASE
    WHEN _finite_window(win_start, win_stop) THEN true
    ELSE error('aligned_spikes: win_start and win_stop must be finite, win_stop > win_start')
END;
