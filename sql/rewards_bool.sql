-- The rewards of a bool metric per (visitor, time): any row of the user's metric SQL in [$start, $end).
-- The CTE is `rewards` for the reward and `guardrail_<i>` for guardrail i ({{rewards_cte}}).
{{rewards_cte}} AS (
    SELECT CAST(m.anonymous_id AS {{text}}) AS anonymous_id,
           {{epoch_us}}(CAST(m.timestamp AS TIMESTAMP)) AS ts,
           CAST(NULL AS {{wide}}) AS value
    FROM (
{{metric_sql}}
    ) AS m
    WHERE m.anonymous_id IS NOT NULL
      AND m.timestamp >= CAST($start AS TIMESTAMP) AND m.timestamp < CAST($end AS TIMESTAMP){{metric_part}}
    GROUP BY 1, 2
),
