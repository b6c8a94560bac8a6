-- The rows of the result that report a numeric metric's value checks (reasons 5, 6 and 7).
    UNION ALL
    SELECT 5, false, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), null_values, null_values, CAST(0 AS BIGINT),
           '0', '0', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT)
    FROM value_checks WHERE null_values > 0
    UNION ALL
    SELECT 6, false, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), non_finite, non_finite, CAST(0 AS BIGINT),
           '0', '0', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT)
    FROM value_checks WHERE non_finite > 0
    UNION ALL
    SELECT 7, false, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), out_of_range, out_of_range, CAST(0 AS BIGINT),
           '0', '0', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT)
    FROM value_checks WHERE out_of_range > 0
