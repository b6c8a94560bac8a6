-- The visitor ids of the exposure rows a scan deduplicates, from the first 10,000 of them: how many
-- were read and their bytes beyond the 12 the embedded engine keeps inline, what a part's memory
-- grows with besides its rows (src/warehouse/split.rs). One row: `ids, heap_bytes`.
SELECT CAST(count(*) AS BIGINT) AS ids,
       CAST(coalesce(sum(CASE WHEN length(anonymous_id) > 12 THEN length(anonymous_id) ELSE 0 END), 0) AS BIGINT) AS heap_bytes
FROM (
    SELECT CAST(e.{{anonymous_id}} AS {{text}}) AS anonymous_id
    FROM {{exposure_relation}} AS e
    WHERE CAST(e.{{optimization_id}} AS {{text}}) = CAST($optimization AS {{text}})
      AND e.{{timestamp}} >= {{timestamp_of_us}}(CAST($exposures_from_us AS BIGINT))
      AND e.{{timestamp}} < {{timestamp_of_us}}(CAST($late_from_us AS BIGINT))
    LIMIT 10000
) AS s
