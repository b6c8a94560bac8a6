-- The rewards of a numeric metric per (visitor, time): the rows of the user's metric SQL in
-- [$start, $end) with a finite value within ±{{value_bound}}, summed as whole micro-units; and per
-- (visitor, time) the counts of rows with a NULL (reason 5), a non-finite (6) or a too large value
-- (7), which are no rewards (src/warehouse/sql.rs, `Unmatched` and `BadValue`), counted for the
-- rows in [$owned_from, $owned_until) (the part of a split scan that owns them). The CTEs are
-- `reward_rows` and `rewards` for the reward, `guardrail_<i>_rows` and `guardrail_<i>` for guardrail i.
{{rows_cte}} AS (
    SELECT anonymous_id, ts,
           sum(CASE WHEN problem = 0 THEN CAST(round(v * 1000000) AS {{wide}}) END) AS value,
           sum(CASE WHEN problem = 0 THEN 1 ELSE 0 END) AS valid_rows,
           sum(CASE WHEN problem = 5 AND owned THEN 1 ELSE 0 END) AS null_values,
           sum(CASE WHEN problem = 6 AND owned THEN 1 ELSE 0 END) AS non_finite,
           sum(CASE WHEN problem = 7 AND owned THEN 1 ELSE 0 END) AS out_of_range
    FROM (
    SELECT CAST(m.anonymous_id AS {{text}}) AS anonymous_id,
           {{epoch_us}}(CAST(m.timestamp AS TIMESTAMP)) AS ts,
           CAST(m.value AS DOUBLE) AS v,
           CASE WHEN m.value IS NULL THEN 5
                WHEN NOT {{is_finite}} THEN 6
                WHEN abs(CAST(m.value AS DOUBLE)) > {{value_bound}} THEN 7
                ELSE 0 END AS problem,
           m.timestamp >= CAST($owned_from AS TIMESTAMP) AND m.timestamp < CAST($owned_until AS TIMESTAMP) AS owned
    FROM (
{{metric_sql}}
    ) AS m
    WHERE m.anonymous_id IS NOT NULL
      AND m.timestamp >= CAST($start AS TIMESTAMP) AND m.timestamp < CAST($end AS TIMESTAMP){{metric_part}}
    ) AS m
    GROUP BY 1, 2
),
{{rewards_cte}} AS (
    SELECT anonymous_id, ts, value FROM {{rows_cte}} WHERE valid_rows > 0
),
