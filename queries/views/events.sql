-- events: every time-stamped event of every session in one long table, to align spikes to.
--
--   event               time                          event_index
--   'trials.<column>'   each *_time column of trials  trial_index
--                       (start_time, change_time, response_time, cue_start_time, ...)
--   'licks'             licks (every source)          0, 1, ... in (time, source) order per session
--   'rewards'           rewards                       0, 1, ... in time order per session
--   'intervals.<name>'  start_time of each row of     row
--                       interval table <name> (the
--                       intervals table, and stimulus
--                       presentation tables such as
--                       Natural_Images_presentations)
--
-- Only finite times are listed: a NULL or NaN time (e.g. the change_time of a catch or aborted
-- trial) is no event, and the event_index of licks and rewards counts finite times only. A
-- trials column whose name ends in _time but that holds no numbers gives no events.
--
-- task_events holds the trial, lick and reward events (the lake keeps its rows in memory, per
-- connection: a few per trial); events adds the interval starts, read from the intervals
-- table when asked for (stimulus tables can hold millions of rows).
CREATE OR REPLACE VIEW task_events AS
WITH trial_times AS (
    UNPIVOT (
        SELECT session_id, trial_index, TRY_CAST(COLUMNS('_time$') AS DOUBLE)
        FROM trials
    )
    ON COLUMNS('_time$')
    INTO NAME trial_column VALUE time
),
lick_times AS (
    SELECT session_id, time, source FROM licks WHERE isfinite(time)
),
reward_times AS (
    SELECT session_id, time FROM rewards WHERE isfinite(time)
)
SELECT session_id, 'trials.' || trial_column AS event, trial_index AS event_index, time
FROM trial_times
WHERE isfinite(time)
UNION ALL
SELECT
    session_id,
    'licks' AS event,
    row_number() OVER (PARTITION BY session_id ORDER BY time, source) - 1 AS event_index,
    time
FROM lick_times
UNION ALL
SELECT
    session_id,
    'rewards' AS event,
    row_number() OVER (PARTITION BY session_id ORDER BY time) - 1 AS event_index,
    time
FROM reward_times
ORDER BY event, session_id, event_index;

-- interval_starts: the start of every row of every interval table, stimulus presentations
-- included (they have a table of their own, for their types).
CREATE OR REPLACE VIEW interval_starts AS
SELECT session_id, name, "row", start_time FROM intervals
UNION ALL
SELECT session_id, name, "row", start_time FROM stimulus_presentations;

CREATE OR REPLACE VIEW events AS
SELECT session_id, event, event_index, time
FROM task_events
UNION ALL
SELECT session_id, 'intervals.' || name AS event, "row" AS event_index, start_time AS time
FROM interval_starts
WHERE isfinite(start_time);
