-- Version 2: the reward metric each run was trained on, for the report's `metric` column.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS metric VARCHAR;
