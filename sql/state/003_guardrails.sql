-- Version 3: guardrail metrics (docs/design.md §3.21). Each batch aggregate keeps the sums of every
-- guardrail metric of its optimization, and each report row the arm's estimate on each guardrail,
-- as JSON arrays in the definition's order (NULL without guardrails).
ALTER TABLE batch_stats ADD COLUMN IF NOT EXISTS guardrails JSON;
ALTER TABLE arm_reports ADD COLUMN IF NOT EXISTS guardrails JSON;
