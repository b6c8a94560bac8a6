-- Each distinct variant string that is a JSON object, with its canonical key (the same key
-- canonical_variant() in src/warehouse/sql.rs computes for an arm): pairs sorted by key, each written
-- as its lengths and texts; a value is its JSON text (strings unquoted), a JSON null is `~` (no level
-- is null). An object with a repeated key matches no arm.
SELECT variant,
           array_join(transform(array_sort(map_entries(pairs)), p -> concat(length(p.key), ':', p.key, coalesce(concat(length(p.value), ':', p.value), '~'))), '') AS canonical
    FROM (
        SELECT variant, json_object_keys(variant) AS keys, from_json(variant, 'map<string,string>') AS pairs
        FROM (SELECT DISTINCT variant FROM shown)
    )
    WHERE keys IS NOT NULL AND size(keys) = size(pairs)
