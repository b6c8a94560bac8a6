-- Each distinct context string with its key: `factor=value` pairs in $context_factors order,
-- joined by `|`; a missing value (or a context that is not a JSON object) is empty.
context_factors AS (
    SELECT unnest(f) AS name, generate_subscripts(f, 1) AS position
    FROM (SELECT from_json(CAST($context_factors AS VARCHAR), '["VARCHAR"]') AS f)
),
context_keys AS (
    SELECT d.context,
           string_agg(f.name || '=' || coalesce(
               CASE WHEN CASE WHEN json_valid(d.context) THEN json_type(CAST(d.context AS JSON)) = 'OBJECT' ELSE false END
                    THEN CAST(d.context AS JSON) ->> f.name END, ''), '|' ORDER BY f.position) AS key
    FROM (SELECT DISTINCT context FROM shown) AS d, context_factors AS f
    GROUP BY d.context
),
