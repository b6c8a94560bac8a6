-- The exposure rows of one optimization that a scan deduplicates into units (`source` of
-- sql/aggregation.sql, from $exposures_from_us to $late_from_us), per batch: what the parts of a
-- split scan are sized and cut by (src/warehouse/query.rs).
SELECT {{epoch_us}}(CAST(e.{{timestamp}} AS TIMESTAMP)) {{div}} CAST($batch_us AS BIGINT) AS batch,
       CAST(count(*) AS BIGINT) AS exposures
FROM {{exposure_relation}} AS e
WHERE CAST(e.{{optimization_id}} AS {{text}}) = CAST($optimization AS {{text}})
  AND e.{{timestamp}} >= {{timestamp_of_us}}(CAST($exposures_from_us AS BIGINT))
  AND e.{{timestamp}} < {{timestamp_of_us}}(CAST($late_from_us AS BIGINT))
GROUP BY 1
ORDER BY 1
