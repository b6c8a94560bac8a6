-- The rows of the result that count the late rows (sql/aggregation.sql) per reason: unmatched rows,
-- and the time range of the valid ones. Left out of a time part before the last, whose late rows
-- belong to later parts. Guardrail sums are zero ({{guardrail_zero_sums}}).
    UNION ALL
    SELECT reason, false, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT),
           CAST(count(*) AS BIGINT), CAST(count(*) AS BIGINT), CAST(0 AS BIGINT),
           '0', '0', min(ts), max(ts){{guardrail_zero_sums}}
    FROM late_tagged
    GROUP BY reason
