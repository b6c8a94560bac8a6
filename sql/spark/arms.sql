-- $arms (a JSON list of {arm_id, canonical}) as rows.
SELECT arm_id, canonical
    FROM (SELECT inline(from_json(CAST($arms AS STRING), 'array<struct<arm_id:int,canonical:string>>')))
