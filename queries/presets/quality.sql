-- Unit quality presets: NaN-safe boolean macros, the view units_quality, and the table macro
-- units_with_preset(name). GENERATED from lake/presets.py by lake.presets.write_sql(): edit the
-- thresholds there (a test checks that this file is up to date).
--
-- A unit passes a preset when it passes every criterion. A metric that is NULL (the source has
-- no such column, or no value) or NaN (the sorter could not compute it) FAILS its criterion:
-- DuckDB orders NaN above every number, so a bare `snr > 1` would be true for a NaN snr.
-- Presets are off by default; use them explicitly, e.g.
--   SELECT * FROM units_annotated JOIN units_quality USING (session_id, unit_id)
--   WHERE allen_visual_coding;
--   SELECT * FROM units_with_preset('visual_behavior');

-- nan_safe_compare(x, op, threshold): x <op> threshold, false when x is NULL or NaN.
CREATE OR REPLACE MACRO nan_safe_compare(x, op, threshold) AS coalesce(
    NOT isnan(x) AND CASE op
        WHEN '<' THEN x < threshold
        WHEN '<=' THEN x <= threshold
        WHEN '>' THEN x > threshold
        WHEN '>=' THEN x >= threshold
        WHEN '=' THEN x = threshold
        ELSE error('nan_safe_compare: unknown operator ' || op)
    END,
    false
);

-- Allen Visual Coding Neuropixels defaults: amplitude_cutoff <= 0.1; presence_ratio >= 0.95; isi_violations <= 0.5; quality == 'good'.
CREATE OR REPLACE MACRO passes_allen_visual_coding(amplitude_cutoff, presence_ratio, isi_violations, quality) AS (
    nan_safe_compare(TRY_CAST(amplitude_cutoff AS DOUBLE), '<=', CAST('0.1' AS DOUBLE))
    AND nan_safe_compare(TRY_CAST(presence_ratio AS DOUBLE), '>=', CAST('0.95' AS DOUBLE))
    AND nan_safe_compare(TRY_CAST(isi_violations AS DOUBLE), '<=', CAST('0.5' AS DOUBLE))
    AND coalesce(CAST(quality AS VARCHAR) = 'good', false)
);

-- Visual Behavior Neuropixels tutorial filter (looser): snr > 1.0; isi_violations < 1.0; firing_rate > 0.1.
CREATE OR REPLACE MACRO passes_visual_behavior(snr, isi_violations, firing_rate) AS (
    nan_safe_compare(TRY_CAST(snr AS DOUBLE), '>', CAST('1.0' AS DOUBLE))
    AND nan_safe_compare(TRY_CAST(isi_violations AS DOUBLE), '<', CAST('1.0' AS DOUBLE))
    AND nan_safe_compare(TRY_CAST(firing_rate AS DOUBLE), '>', CAST('0.1' AS DOUBLE))
);

-- IBL single-unit label (all three criteria): slidingRP_viol == 1.0; noise_cutoff < 5.0; amp_median > 5e-05.
CREATE OR REPLACE MACRO passes_ibl(slidingRP_viol, noise_cutoff, amp_median) AS (
    nan_safe_compare(TRY_CAST(slidingRP_viol AS DOUBLE), '=', CAST('1.0' AS DOUBLE))
    AND nan_safe_compare(TRY_CAST(noise_cutoff AS DOUBLE), '<', CAST('5.0' AS DOUBLE))
    AND nan_safe_compare(TRY_CAST(amp_median AS DOUBLE), '>', CAST('5e-05' AS DOUBLE))
);

-- IBL-style label: the fraction of the IBL criteria a unit passes (1.0 = all pass; a
-- missing metric counts as failed).
CREATE OR REPLACE MACRO ibl_label(slidingRP_viol, noise_cutoff, amp_median) AS (
    (CAST(nan_safe_compare(TRY_CAST(slidingRP_viol AS DOUBLE), '=', CAST('1.0' AS DOUBLE)) AS INTEGER)
    + CAST(nan_safe_compare(TRY_CAST(noise_cutoff AS DOUBLE), '<', CAST('5.0' AS DOUBLE)) AS INTEGER)
    + CAST(nan_safe_compare(TRY_CAST(amp_median AS DOUBLE), '>', CAST('5e-05' AS DOUBLE)) AS INTEGER)
    ) / 3.0
);

-- units_quality: one row per unit, one boolean column per preset, and ibl_label. It
-- reads units_annotated (every units column; materialized per connection: fast).
CREATE OR REPLACE VIEW units_quality AS
SELECT
    session_id,
    unit_id,
    passes_allen_visual_coding(amplitude_cutoff, presence_ratio, isi_violations, quality) AS allen_visual_coding,
    passes_visual_behavior(snr, isi_violations, firing_rate) AS visual_behavior,
    passes_ibl(slidingRP_viol, noise_cutoff, amp_median) AS ibl,
    ibl_label(slidingRP_viol, noise_cutoff, amp_median) AS ibl_label
FROM units_annotated;

-- units_with_preset(name): the rows of units_annotated passing preset `name`
-- (one of 'allen_visual_coding', 'visual_behavior', 'ibl').
CREATE OR REPLACE MACRO units_with_preset(preset_name) AS TABLE
SELECT *
FROM units_annotated
WHERE CASE preset_name
        WHEN 'allen_visual_coding' THEN passes_allen_visual_coding(amplitude_cutoff, presence_ratio, isi_violations, quality)
        WHEN 'visual_behavior' THEN passes_visual_behavior(snr, isi_violations, firing_rate)
        WHEN 'ibl' THEN passes_ibl(slidingRP_viol, noise_cutoff, amp_median)
        ELSE error('unknown quality preset ' || preset_name)
    END;
