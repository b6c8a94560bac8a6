-- The aggregation of one optimization (docs/design.md §2.12), around the user's exposure source and
-- metric SQL. src/warehouse/sql.rs fills the {{placeholders}}: the dialect's names and types
-- ({{text}}, {{wide}}, {{div}}, {{once}}, {{epoch_us}}, {{timestamp_of_us}}, sql/duckdb/ or
-- sql/spark/ for {{arms}} and {{variant_keys}}), the quoted column names of the exposure source, and
-- what the model needs ({{holdout}}, {{unit_partition}}, {{touch}}, the contextual parts, the
-- rewards of sql/rewards_bool.sql or sql/rewards_numeric.sql). Values are bound parameters ($name).
--
-- The exposure rows are read in two disjoint parts: the early rows (`source`), which become units,
-- and the late rows (`late_source`, from $late_from_us on), which never count. A late row only
-- competes for rewards: it takes a reward from an earlier unit exactly when the unit of its batch
-- would (that unit starts no later than the row and after every earlier unit), so late rows skip
-- deduplication. On an hourly run nearly all rows are late. The distinct variant (and context)
-- strings come from a pass of their own (`shown`), so that the early rows stream through the heavy
-- steps once instead of being held in memory for two readers (docs/performance.md).
--
-- `arm_key = 2 * arm_id + holdout` (plus $arm_span * context_id for contextual models) is the one
-- small integer the heavy steps carry per exposure. A reward goes to the latest (last touch) or
-- earliest (first touch) unit of the same visitor with `t <= reward <= t + window`; a late row that
-- wins carries the arm key -1 and credits no unit. Values are summed exactly, as whole micro-units in
-- a wide integer, so that the sums do not depend on the order the engine adds them in, and returned
-- as the text of that integer. `valued` lists the credited units before the units, which keeps
-- DuckDB to one copy of the units more often (docs/performance.md).
--
-- Split scans (docs/design.md §2.14): every step is per visitor, so the aggregates of parts sum to
-- those of the whole scan, exactly. A hash part keeps the visitors whose hash of `anonymous_id`
-- modulo $parts is $part ({{exposure_part}}, {{metric_part}}). A time part is an incremental scan
-- from its first batch whose late rows end at $rivals_until_us ({{rivals_until}}) and count
-- nowhere ({{late_rows}} is empty: they are read once, as rivals, and never held in memory); only
-- the first part reads rows without a timestamp
-- ({{null_timestamps}}), and a part counts the unmatched rows from $owned_from on
-- ({{lookback_unmatched}}). On a whole scan these placeholders keep the rows as described above.
--
-- Guardrails (docs/design.md §3.21) are attributed in the same pass: the rewards of every metric are
-- one relation with a `metric` column (0 the reward, i guardrail i; {{all_rewards}}), attributed and
-- credited per metric, and each guardrail adds its conversions and sums as three columns before
-- `context` ({{guardrail_values}}, {{guardrail_sums}}). Without guardrails these placeholders are
-- empty and the query is the reward's alone.
--
-- Rows: reason, counted, batch, arm_key, exposures, units, conversions, value_sum (micro-units),
-- value_sq_sum (squared micro-units), first_us, last_us, then per guardrail its conversions,
-- value_sum and value_sq_sum, and last context. `reason = 0` rows with `counted`
-- are the aggregates; `reason = 0` rows without it are units that are immature or lie before
-- $from_batch_us, and the late rows (only their time range is used); other reasons count unmatched
-- rows (src/warehouse/sql.rs, `Unmatched`).
WITH
arms AS (
    {{arms}}
),
source AS (
    SELECT
        CAST(e.{{anonymous_id}} AS {{text}}) AS anonymous_id,
        {{epoch_us}}(CAST(e.{{timestamp}} AS TIMESTAMP)) AS ts,
        CAST(e.{{variant}} AS {{text}}) AS variant,
        {{holdout}} AS holdout{{context_column}}
    FROM {{exposure_relation}} AS e
    WHERE CAST(e.{{optimization_id}} AS {{text}}) = CAST($optimization AS {{text}})
      AND (e.{{timestamp}} >= {{timestamp_of_us}}(CAST($exposures_from_us AS BIGINT)){{null_timestamps}})
      AND (e.{{timestamp}} < {{timestamp_of_us}}(CAST($late_from_us AS BIGINT)){{null_timestamps}}){{exposure_part}}
),
late_source AS (
    SELECT
        CAST(e.{{anonymous_id}} AS {{text}}) AS anonymous_id,
        {{epoch_us}}(CAST(e.{{timestamp}} AS TIMESTAMP)) AS ts,
        CAST(e.{{variant}} AS {{text}}) AS variant,
        {{holdout}} AS holdout{{context_column}}
    FROM {{exposure_relation}} AS e
    WHERE CAST(e.{{optimization_id}} AS {{text}}) = CAST($optimization AS {{text}})
      AND (e.{{timestamp}} >= {{timestamp_of_us}}(CAST($exposures_from_us AS BIGINT)) OR e.{{timestamp}} IS NULL)
      AND e.{{timestamp}} >= {{timestamp_of_us}}(CAST($late_from_us AS BIGINT)){{rivals_until}}{{exposure_part}}
),
shown AS (
    SELECT DISTINCT CAST(e.{{variant}} AS {{text}}) AS variant{{context_column}}
    FROM {{exposure_relation}} AS e
    WHERE CAST(e.{{optimization_id}} AS {{text}}) = CAST($optimization AS {{text}})
      AND (e.{{timestamp}} >= {{timestamp_of_us}}(CAST($exposures_from_us AS BIGINT)) OR e.{{timestamp}} IS NULL){{rivals_until}}{{exposure_part}}
),
variant_keys AS (
    {{variant_keys}}
),
variants AS{{once}} (
    SELECT k.variant, a.arm_id FROM variant_keys AS k JOIN arms AS a ON a.canonical = k.canonical
),{{contexts}}
tagged AS (
    SELECT s.anonymous_id, s.ts, s.ts {{div}} CAST($batch_us AS BIGINT) AS batch,
           2 * v.arm_id + CAST(s.holdout AS INTEGER){{context_term}} AS arm_key,
           CASE WHEN s.anonymous_id IS NULL THEN 1
                WHEN s.ts IS NULL THEN 2
                WHEN s.ts >= CAST($as_of_us AS BIGINT) THEN 3
                WHEN v.arm_id IS NULL THEN 4
                ELSE 0 END AS reason
    FROM source AS s LEFT JOIN variants AS v ON s.variant = v.variant{{context_join}}
),
late_tagged AS (
    SELECT s.anonymous_id, s.ts, s.ts {{div}} CAST($batch_us AS BIGINT) AS batch,
           2 * v.arm_id + CAST(s.holdout AS INTEGER){{context_term}} AS arm_key,
           CASE WHEN s.anonymous_id IS NULL THEN 1
                WHEN s.ts IS NULL THEN 2
                WHEN s.ts >= CAST($as_of_us AS BIGINT) THEN 3
                WHEN v.arm_id IS NULL THEN 4
                ELSE 0 END AS reason
    FROM late_source AS s LEFT JOIN variants AS v ON s.variant = v.variant{{context_join}}
),
exposed AS (
    SELECT anonymous_id, ts, batch, arm_key, reason FROM tagged{{lookback_unmatched}}
    QUALIFY reason <> 0 OR row_number() OVER (PARTITION BY reason, {{unit_partition}} ORDER BY ts, arm_key) = 1
),
{{rewards}}{{all_rewards}}
attributed AS (
    SELECT r.anonymous_id{{metric_of_r}}, {{touch}}(u.ts) AS unit_ts, {{touch}}_by(u.arm_key, u.ts) AS arm_key,
           any_value(r.value) AS value
    FROM {{reward_relation}} AS r JOIN (
        SELECT anonymous_id, ts, arm_key FROM exposed WHERE reason = 0
        UNION ALL
        SELECT anonymous_id, ts, -1 FROM late_tagged WHERE reason = 0
    ) AS u
      ON u.anonymous_id = r.anonymous_id
     AND u.ts <= r.ts AND r.ts <= u.ts + CAST($window_us AS BIGINT)
    GROUP BY r.anonymous_id, r.ts{{metric_of_r}}
),
credited AS (
    SELECT unit_ts, arm_key{{metric}}, {{unit_value}} AS unit_value
    FROM attributed
    WHERE arm_key >= 0
    GROUP BY anonymous_id, unit_ts, arm_key{{metric}}
),{{value_checks}}
valued AS (
    SELECT 0 AS reason, unit_ts {{div}} CAST($batch_us AS BIGINT) AS batch, arm_key, unit_ts, 0 AS units, {{reward_conversion}} AS conversions, {{reward_value}} AS unit_value{{guardrail_values}}
    FROM credited
    UNION ALL
    SELECT reason, batch, arm_key, ts, 1, 0, CAST(0 AS {{wide}}){{guardrail_zeros}}
    FROM exposed
),
aggregated AS (
    SELECT reason,
           reason = 0
               AND unit_ts + CAST($window_us AS BIGINT) <= CAST($as_of_us AS BIGINT)
               AND batch * CAST($batch_us AS BIGINT) >= CAST($from_batch_us AS BIGINT) AS counted,
           CASE WHEN reason = 0 THEN batch END AS batch,
           CASE WHEN reason = 0 THEN arm_key END AS arm_key,
           CAST(sum(units) AS BIGINT) AS exposures,
           CAST(sum(units) AS BIGINT) AS units,
           CAST(sum(conversions) AS BIGINT) AS conversions,
           CAST(sum(unit_value) AS {{text}}) AS value_sum,
           CAST(coalesce(sum(CASE WHEN abs(unit_value) <= CAST({{bound_micro}} AS {{wide}}) THEN unit_value * unit_value END), 0) AS {{text}}) AS value_sq_sum,
           min(unit_ts) AS first_us,
           max(unit_ts) AS last_us{{guardrail_sums}}
    FROM valued
    GROUP BY ALL{{late_rows}}{{value_check_rows}}
)
SELECT *, CASE WHEN reason = 0 AND counted THEN {{context_out}} END AS context
FROM aggregated
ORDER BY reason, counted, batch, arm_key
