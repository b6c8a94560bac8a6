-- Contextual models: each distinct context JSON string gets its key (sql/duckdb/context_keys.sql or
-- sql/spark/context_keys.sql) and a small integer id once; the id rides inside the arm key.
{{context_keys}}
contexts AS{{once}} (
    SELECT context, key, CAST(dense_rank() OVER (ORDER BY key) AS INTEGER) AS context_id FROM context_keys
),
