-- Each distinct context string with its key: `factor=value` pairs in $context_factors order,
-- joined by `|`; a missing value (or a context that is not a JSON object) is empty.
context_keys AS (
    SELECT context,
           array_join(transform(from_json(CAST($context_factors AS STRING), 'array<string>'),
               f -> concat(f, '=', coalesce(CASE WHEN json_object_keys(context) IS NOT NULL
                   THEN try_element_at(from_json(context, 'map<string,string>'), f) END, ''))), '|') AS key
    FROM (SELECT DISTINCT context FROM shown)
),
