-- A few of the values behind an optimization's unmatched exposure rows (docs/design.md §2.2), for the
-- warning that shows them: the distinct variant texts of the rows from $exposures_from_us to $as_of_us
-- that match no arm (as in sql/aggregation.sql, through the dialect's {{variant_keys}}), and, for a
-- source with no row of the optimization there, the other distinct optimization ids it has. At most
-- five of each, in order. Rows: kind ('variant' or 'optimization_id'), value.
WITH
arms AS (
    {{arms}}
),
scanned AS (
    SELECT CAST(e.{{variant}} AS {{text}}) AS variant
    FROM {{exposure_relation}} AS e
    WHERE CAST(e.{{optimization_id}} AS {{text}}) = CAST($optimization AS {{text}})
      AND e.{{timestamp}} >= {{timestamp_of_us}}(CAST($exposures_from_us AS BIGINT))
      AND e.{{timestamp}} < {{timestamp_of_us}}(CAST($as_of_us AS BIGINT))
),
shown AS (
    SELECT DISTINCT variant FROM scanned
),
variant_keys AS (
    {{variant_keys}}
),
known AS (
    SELECT k.variant FROM variant_keys AS k JOIN arms AS a ON a.canonical = k.canonical
),
unknown AS (
    SELECT s.variant AS value
    FROM shown AS s LEFT JOIN known AS k ON s.variant = k.variant
    WHERE k.variant IS NULL
    ORDER BY 1 NULLS FIRST
    LIMIT 5
),
elsewhere AS (
    SELECT DISTINCT CAST(e.{{optimization_id}} AS {{text}}) AS value
    FROM {{exposure_relation}} AS e
    WHERE NOT EXISTS (SELECT 1 FROM scanned)
      AND CAST(e.{{optimization_id}} AS {{text}}) IS DISTINCT FROM CAST($optimization AS {{text}})
    ORDER BY 1 NULLS FIRST
    LIMIT 5
)
SELECT 'variant' AS kind, value FROM unknown
UNION ALL
SELECT 'optimization_id' AS kind, value FROM elsewhere
