-- A numeric metric's value checks: its NULL, non-finite and too large values (rows, and credited
-- units whose summed value lies beyond the bound); `value_checks` for the reward, `guardrail_<i>_checks`
-- for guardrail i, whose credited units are those of `metric = i` ({{credited_metric}}).
{{checks_cte}} AS (
    SELECT CAST(coalesce(sum(null_values), 0) AS BIGINT) AS null_values,
           CAST(coalesce(sum(non_finite), 0) AS BIGINT) AS non_finite,
           CAST(coalesce(sum(out_of_range), 0)
                + (SELECT count(*) FROM credited
                   WHERE abs(unit_value) > CAST({{bound_micro}} AS {{wide}})
                     AND unit_ts >= {{epoch_us}}(CAST($owned_from AS TIMESTAMP)){{credited_metric}}) AS BIGINT) AS out_of_range
    FROM {{rows_cte}}
),
