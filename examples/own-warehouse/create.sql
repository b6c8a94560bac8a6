-- A tiny warehouse built from scratch, for docs/own-warehouse.md: one optimization, `signup_button`,
-- with two colours, 4,000 visitors over three days, and the sign-ups they made. Run it with the DuckDB
-- command line (`duckdb warehouse.duckdb < create.sql`) or any DuckDB client.

-- One row per time a visitor was shown the button: who, when, which optimization, which variant.
-- `variant` is a JSON object with one level per design factor, exactly as the YAML spells them.
CREATE TABLE exposures AS
SELECT 'visitor-' || i AS anonymous_id,
       TIMESTAMP '2026-03-01 00:00:00' + to_seconds((i * 7919) % 259200) AS timestamp,
       'signup_button' AS optimization_id,
       CASE WHEN i % 2 = 0 THEN '{"color": "green"}' ELSE '{"color": "blue"}' END AS variant
FROM range(4000) AS visitors(i);

-- The reward: one row per sign-up, 20 minutes after the exposure, for 12% of green and 8% of blue.
CREATE TABLE signups AS
SELECT anonymous_id, timestamp + INTERVAL 20 MINUTE AS created_at
FROM exposures
WHERE (CAST(substr(anonymous_id, 9) AS INTEGER) * 37) % 100
      < CASE WHEN variant LIKE '%green%' THEN 12 ELSE 8 END;
