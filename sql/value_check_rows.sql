-- The rows of the result that report a numeric metric's value checks: reasons 5, 6 and 7 for the
-- reward, 10·i + 5, 6, 7 for guardrail i ({{null_code}}, …), with zero sums of every guardrail
-- ({{guardrail_zero_sums}}).
    UNION ALL
    SELECT {{null_code}}, false, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), null_values, null_values, CAST(0 AS BIGINT),
           '0', '0', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT){{guardrail_zero_sums}}
    FROM {{checks_cte}} WHERE null_values > 0
    UNION ALL
    SELECT {{non_finite_code}}, false, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), non_finite, non_finite, CAST(0 AS BIGINT),
           '0', '0', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT){{guardrail_zero_sums}}
    FROM {{checks_cte}} WHERE non_finite > 0
    UNION ALL
    SELECT {{range_code}}, false, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), out_of_range, out_of_range, CAST(0 AS BIGINT),
           '0', '0', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT){{guardrail_zero_sums}}
    FROM {{checks_cte}} WHERE out_of_range > 0
