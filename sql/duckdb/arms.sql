-- $arms (a JSON list of {arm_id, canonical}) as rows.
SELECT a.arm_id, a.canonical
    FROM (SELECT unnest(from_json(CAST($arms AS VARCHAR), '[{"arm_id":"INTEGER","canonical":"VARCHAR"}]')) AS a)
