-- Each distinct variant string that is a JSON object, with its canonical key (the same key
-- canonical_variant() in src/warehouse/sql.rs computes for an arm): pairs sorted by key, each written
-- as its lengths and texts; a value is its JSON text (strings unquoted), a JSON null is `~` (no level
-- is null). An object with a repeated key matches no arm.
SELECT d.variant,
           string_agg(CAST(length(j.key) AS VARCHAR) || ':' || j.key
                      || coalesce(CAST(length(json_extract_string(j.value, '$')) AS VARCHAR) || ':' || json_extract_string(j.value, '$'), '~'),
                      '' ORDER BY j.key) AS canonical
    FROM (
        SELECT DISTINCT variant FROM shown
        WHERE CASE WHEN json_valid(variant) THEN json_type(CAST(variant AS JSON)) = 'OBJECT' ELSE false END
    ) AS d, json_each(CAST(d.variant AS JSON)) AS j
    GROUP BY d.variant
