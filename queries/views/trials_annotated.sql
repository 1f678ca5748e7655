-- trials_annotated: every trial with its session and subject, and what happened in it.
--
-- Added columns:
--   duration          stop_time - start_time (s)
--   has_change        whether change_time is a finite number (false for catch and aborted
--                     trials, whose change_time is NaN, and where a source has no change_time)
--   n_licks           licks (every source) in [start_time, stop_time)
--   first_lick_time   the first of them (NULL when none)
--   n_rewards         rewards in [start_time, stop_time)
--   reward_volume_ml  their summed volume (NULL when none or unknown)
--   session and subject columns: session_type, session_start_time, rig, subject_id, species,
--   sex, genotype, strain, age_in_days
--
-- A lick or reward belongs to the latest trial that started at or before it (an as-of join),
-- if it is before that trial's stop_time; a trial whose stop_time is not finite gets none.
-- Source columns with the name of an added column are replaced by the added one.
CREATE OR REPLACE VIEW trials_annotated AS
WITH lick_trial AS (
    SELECT t.session_id, t.trial_index, l.time
    FROM licks AS l
    ASOF JOIN trials AS t
        ON l.session_id = t.session_id AND l.time >= t.start_time
    WHERE isfinite(l.time) AND isfinite(t.stop_time) AND l.time < t.stop_time
),
lick_stats AS (
    SELECT session_id, trial_index, count(*) AS n_licks, min(time) AS first_lick_time
    FROM lick_trial
    GROUP BY session_id, trial_index
),
reward_trial AS (
    SELECT t.session_id, t.trial_index, r.volume
    FROM rewards AS r
    ASOF JOIN trials AS t
        ON r.session_id = t.session_id AND r.time >= t.start_time
    WHERE isfinite(r.time) AND isfinite(t.stop_time) AND r.time < t.stop_time
),
reward_stats AS (
    SELECT session_id, trial_index, count(*) AS n_rewards, sum(volume) AS reward_volume_ml
    FROM reward_trial
    GROUP BY session_id, trial_index
),
own AS (
    SELECT COLUMNS(lambda c: c NOT IN (
        'duration', 'has_change', 'n_licks', 'first_lick_time', 'n_rewards', 'reward_volume_ml',
        'session_type', 'session_start_time', 'rig', 'subject_id', 'species', 'sex', 'genotype',
        'strain', 'age_in_days'
    ))
    FROM trials
)
SELECT
    t.*,
    t.stop_time - t.start_time AS duration,
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
LEFT JOIN lick_stats AS ls USING (session_id, trial_index)
LEFT JOIN reward_stats AS rs USING (session_id, trial_index);
