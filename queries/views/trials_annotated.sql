-- trials_annotated: every trial with its session and subject, and what happened in it.
--
-- Added columns:
--   duration             stop_time - start_time (s), as the source has them (NaN when the
--                        source's stop_time is NaN)
--   effective_stop_time  where the trial's licks and rewards are counted up to (s): stop_time
--                        when it is a finite number, else the start_time of the session's next
--                        trial with a finite start (in start_time, trial_index order); NULL
--                        for the last such trial of a session when its stop_time is not
--                        finite, and for a trial whose start_time is not finite
--   has_change           whether change_time is a finite number (false for catch and aborted
--                        trials, whose change_time is NaN, and where a source has no change_time)
--   n_licks              licks (every source) in [start_time, effective_stop_time)
--   first_lick_time      the first of them (NULL when none)
--   n_rewards            rewards in [start_time, effective_stop_time)
--   reward_volume_ml     their summed volume (NULL when none or unknown)
--   session and subject columns: session_type, session_start_time, rig, subject_id, species,
--   sex, genotype, strain, age_in_days
--
-- A lick or reward belongs to the latest trial that started at or before it (an as-of join;
-- of trials with the same start_time, the one with the highest trial_index), if it is before
-- that trial's effective_stop_time. A trial whose start_time is not finite gets none. Some sources leave stop_time NaN on every
-- trial (the Janelia ALM file of DANDI 000006: 178 trials, 1,798 licks); the next trial's start
-- then closes the trial, so those licks are counted instead of silently giving 0. That is only
-- as good as the source's start times: in that file the response period (start_time +
-- cue_start_time) mostly begins after the next trial's start, so its licks count in the next
-- trial; count licks around such events instead (docs/cookbook.md). The stored stop_time is
-- never changed. Source columns with the name of an added column are replaced by
-- the added one.
--
-- trial_relative_events: the *_time columns of trials (all but start_time) read as seconds
-- FROM THE TRIAL'S START, i.e. at start_time + value, in the columns of the events view
-- (session_id, event = 'trials.<column>', event_index = trial_index, time); finite times only.
-- Use it for sources whose trial times are relative to the trial start (DANDI 000006 stores
-- pole_in_time, pole_out_time and cue_start_time so: 3.8 to 24.6 s while its trials start at
-- 302 s and later), as the events of the aligned-count macros:
--   SELECT * FROM aligned_counts('units', 'trials.pole_in_time', 0.0, 0.5,
--                                event_table := 'trial_relative_events');
-- The lake stores those columns as the source has them; the events view lists them unshifted.
CREATE OR REPLACE VIEW trials_annotated AS
WITH bounded AS (
    -- the next trial is the next one with a finite start (a NaN start sorts last in DuckDB)
    SELECT
        session_id,
        trial_index,
        start_time,
        CASE
            WHEN isfinite(stop_time) THEN stop_time
            WHEN isfinite(start_time) THEN lead(start_time) OVER (
                PARTITION BY session_id, isfinite(start_time) ORDER BY start_time, trial_index
            )
        END AS effective_stop_time
    FROM trials
),
owners AS (
    -- the trials events can belong to: finite starts; of trials starting together, the last
    SELECT *
    FROM bounded
    WHERE isfinite(start_time)
    QUALIFY row_number() OVER (
        PARTITION BY session_id, start_time ORDER BY trial_index DESC
    ) = 1
),
lick_trial AS (
    SELECT t.session_id, t.trial_index, l.time
    FROM licks AS l
    ASOF JOIN owners AS t
        ON l.session_id = t.session_id AND l.time >= t.start_time
    WHERE isfinite(l.time) AND l.time < t.effective_stop_time
),
lick_stats AS (
    SELECT session_id, trial_index, count(*) AS n_licks, min(time) AS first_lick_time
    FROM lick_trial
    GROUP BY session_id, trial_index
),
reward_trial AS (
    SELECT t.session_id, t.trial_index, r.volume
    FROM rewards AS r
    ASOF JOIN owners AS t
        ON r.session_id = t.session_id AND r.time >= t.start_time
    WHERE isfinite(r.time) AND r.time < t.effective_stop_time
),
reward_stats AS (
    SELECT session_id, trial_index, count(*) AS n_rewards, sum(volume) AS reward_volume_ml
    FROM reward_trial
    GROUP BY session_id, trial_index
),
own AS (
    SELECT COLUMNS(lambda c: c NOT IN (
        'duration', 'effective_stop_time', 'has_change', 'n_licks', 'first_lick_time',
        'n_rewards', 'reward_volume_ml', 'session_type', 'session_start_time', 'rig',
        'subject_id', 'species', 'sex', 'genotype', 'strain', 'age_in_days'
    ))
    FROM trials
)
SELECT
    t.*,
    t.stop_time - t.start_time AS duration,
    b.effective_stop_time,
    coalesce(isfinite(t.change_time), false) AS has_change,
    coalesce(ls.n_licks, 0) AS n_licks,
    ls.first_lick_time,
    coalesce(rs.n_rewards, 0) AS n_rewards,
    rs.reward_volume_ml,
    s.session_type,
    s.session_start_time,
    s.rig,
    s.subject_id,
    s.species,
    s.sex,
    s.genotype,
    s.strain,
    s.age_in_days
FROM own AS t
JOIN sessions AS s USING (session_id)
JOIN bounded AS b USING (session_id, trial_index)
LEFT JOIN lick_stats AS ls USING (session_id, trial_index)
LEFT JOIN reward_stats AS rs USING (session_id, trial_index);

CREATE OR REPLACE VIEW trial_relative_events AS
WITH offsets AS (
    UNPIVOT (
        SELECT
            session_id,
            trial_index,
            start_time AS trial_start,
            TRY_CAST(COLUMNS(lambda c: c LIKE '%\_time' ESCAPE '\' AND c <> 'start_time') AS DOUBLE)
        FROM trials
    )
    ON COLUMNS(lambda c: c LIKE '%\_time' ESCAPE '\' AND c <> 'start_time')
    INTO NAME trial_column VALUE offset_s
)
SELECT
    session_id,
    'trials.' || trial_column AS event,
    trial_index AS event_index,
    trial_start + offset_s AS time
FROM offsets
WHERE isfinite(trial_start + offset_s);
